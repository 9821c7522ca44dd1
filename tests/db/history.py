"""Days of raw history written row by row (scrapes and slab frames), for retention tests.

Independent of the collector and of store.write_snapshot: values follow a known formula, so
tests can say what every hour's average must be. Partitions are made the way the writer
path makes them (partitions.ensure).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import models as m
from app.db import partitions, slabframes

CACHES = ("dentry", "inode_cache", "kmalloc-64", "filp", "radix_tree_node")


def host_row(name: str, at: datetime) -> dict[str, Any]:
    """A host row."""
    return {"name": name, "kernel_release": "6.18.0", "era": "objcg-kmem",
            "cgroup_layout": "v2", "possible_cpus_total": 2, "numa_nodes_total": 1,
            "page_size_bytes": 4096, "first_seen_at": at, "last_seen_at": at}


def scrape_row(host_id: int, at: datetime, k: int) -> dict[str, Any]:
    """The k-th scrape of a host: figures that grow by a known amount per scrape."""
    return {"host_id": host_id, "taken_at": at, "duration_seconds": 0.01,
            "kernel_release": "6.18.0", "era": "objcg-kmem", "memcg_method": "v2: test",
            "memcg_total": 100 + 2 * k, "memcg_visible_total": 100 + k,
            "memcg_dying_total": 10 + k + host_id, "slab_bytes": 5_000_000 + 4096 * k,
            "sreclaimable_bytes": 2_000_000 + k, "sunreclaim_bytes": 3_000_000 + 3 * k,
            "percpu_bytes": 700_000 + 4096 * k, "kernel_stack_bytes": 16384,
            "shmem_bytes": 8192 * (k % 7), "errors_total": 0, "meminfo_json": {},
            "vmstat_json": {}, "proc_cgroups_json": []}


def write_scrape(s: Session, host_id: int, cache_ids: dict[str, int], at: datetime,
                 k: int) -> int:
    """One scrape and its slab frame, as the writer does it (partitions first)."""
    partitions.ensure(s, at, now=at)
    sid = int(s.execute(insert(m.Scrape).values(**scrape_row(host_id, at, k))
                        .returning(m.Scrape.id)).scalar_one())
    day = partitions.day_of(at)
    s.execute(insert(m.SlabFrame).values(
        scrape_id=sid, host_id=host_id, taken_at=at, data=slabframes.pack({
            cid: {"active_objs": 90 * j + k, "num_objs": 100 * j + 3 * k,
                  "num_slabs": 10 * j + k, "slab_bytes": 4096 * (10 * j + k)}
            for j, cid in enumerate(cache_ids.values())})))
    if k % 50 == 0:
        s.execute(insert(m.ScrapeError).values(scrape_id=sid, taken_day=day, source="test",
                                               path="/proc/test", message="seeded"))
    return sid


def seed_history(sessions: sessionmaker[Session], *, hosts: int, start: datetime,
                 scrapes: int, interval: timedelta) -> dict[str, int]:
    """`scrapes` scrapes per host from `start`; return host name -> id."""
    ids: dict[str, int] = {}
    for h in range(hosts):
        with sessions.begin() as s:
            hid = int(s.execute(insert(m.Host).values(**host_row(f"host-{h}", start))
                                .returning(m.Host.id)).scalar_one())
            s.execute(insert(m.SlabCache), [
                {"host_id": hid, "name": n, "aliases_json": [], "object_size_bytes": 64,
                 "objs_per_slab_total": 64, "pages_per_slab_total": 1, "first_seen_at": start,
                 "last_seen_at": start} for n in CACHES])
            caches = dict(s.execute(select(m.SlabCache.name, m.SlabCache.id)
                                    .where(m.SlabCache.host_id == hid)).all())
            for k in range(scrapes):
                write_scrape(s, hid, caches, start + k * interval, k)
        ids[f"host-{h}"] = hid
    return ids


def cache_ids(s: Session, host_id: int) -> dict[str, int]:
    """A host's cache ids by name."""
    return dict(s.execute(select(m.SlabCache.name, m.SlabCache.id)
                          .where(m.SlabCache.host_id == host_id)).all())
