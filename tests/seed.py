"""Synthetic but realistic history for API, page and browser tests.

Each host is this VM's real capture (235 caches with their real names and geometry) replayed
at a fixed interval, with a dying count that grows by a known amount per scrape, cache sizes
that grow, 50 cgroup2 cgroups (one with a hostile name) and removals every few scrapes.
Written through store.write_snapshot, the collector's own path, with the per-cgroup parts as
the collector sends them: every cgroup new (whole memory.stat) and a full table in the first
scrape, a series table in every scrape.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.db import store
from app.domain import cgtable as ct
from app.domain.samples import CgroupSample, MemcgCount, RemovedCgroup, Snapshot
from tests.conftest import HOST
from tests.snapshots import host_snapshot, stat_row, table

HOSTILE = "<img src=x onerror=alert(1)>"
BASE = host_snapshot(HOST, datetime(2026, 11, 26, tzinfo=UTC))


def cgroup_paths(n: int = 50) -> list[str]:
    """n cgroup paths, nested three deep, one of them with a hostile name."""
    paths = ["/system.slice", "/user.slice", "/kubepods.slice"]
    i = 0
    while len(paths) < n - 1:
        parent = paths[i % 3]
        paths.append(f"{parent}/unit-{i}.service")
        if i % 5 == 0 and len(paths) < n - 1:
            paths.append(f"{parent}/unit-{i}.service/child-{i}")
        i += 1
    paths.append(f"/system.slice/{HOSTILE}")
    return paths


def snapshot(host: str, k: int, at: datetime, dying0: int, per_scrape: int) -> Snapshot:
    """The k-th scrape of a synthetic host."""
    dying = dying0 + per_scrape * k
    caches = tuple(c._replace(num_objs=c.num_objs + 10 * k, active_objs=c.active_objs + 9 * k,
                              num_slabs=c.num_slabs + k,
                              bytes=(c.num_slabs + k) * c.pages_per_slab * 4096)
                   for c in BASE.caches)
    paths = cgroup_paths()
    cgroups = [CgroupSample("unified", "/", {"anon": 1 << 20, "file": 8 << 20}, None, None,
                            None, {"nr_descendants": len(paths), "nr_dying_descendants": dying})]
    for j, p in enumerate(paths):
        cgroups.append(CgroupSample(
            "unified", p, {"anon": 4096 * (j + 1), "file": 65536 * j, "shmem": 4096 * (j % 3),
                           "slab": 8192 * j, "kernel_stack": 16384},
            1_000_000 + j, None, None,
            {"nr_descendants": 0, "nr_dying_descendants": j % 4}))
    rows = {(c.hierarchy, c.path): stat_row(c.memory_stat, c.memory_usage_bytes, c.cgroup_stat,
                                            keys=ct.SERIES_STAT_KEYS) for c in cgroups}
    removed: tuple[RemovedCgroup, ...] = ()
    if k % 5 == 4:
        removed = (RemovedCgroup("unified", f"/system.slice/job-{k}.service",
                                 at - timedelta(seconds=60), at,
                                 {"file": 65536 * (k % 2), "shmem": 4096 * (k % 3 == 0)},
                                 70000, stat_read_at=at - timedelta(seconds=60)),)
    meminfo = dict(BASE.meminfo)
    meminfo["Percpu"] = 700_000 + 4096 * dying
    meminfo["SUnreclaim"] = 25_000_000 + 12_600 * dying
    return replace(BASE, taken_at=at, host=replace(BASE.host, hostname=host),
                   memcg=MemcgCount(dying + len(paths) + 1, len(paths) + 1, dying, "v2: test"),
                   caches=caches, new_cgroups=tuple(cgroups) if k == 0 else (),
                   series=table(rows),
                   full=table({(c.hierarchy, c.path): stat_row(c.memory_stat)
                               for c in cgroups}) if k == 0 else None,
                   removed=removed, meminfo=meminfo, errors=())


def seed(sessions: sessionmaker[Session], *, hosts: int = 3, scrapes: int = 30,
         interval: timedelta = timedelta(minutes=1), end: datetime | None = None,
         stale_host: bool = True) -> datetime:
    """Write `scrapes` per host ending at `end` (now); the last host stopped an hour earlier."""
    end = end or datetime.now(UTC).replace(microsecond=0)
    for h in range(hosts):
        host_end = end - timedelta(hours=1) if stale_host and h == hosts - 1 else end
        for k in range(scrapes):
            at = host_end - interval * (scrapes - 1 - k)
            with sessions.begin() as s:
                store.write_snapshot(s, snapshot(f"host-{h}", k, at, 10 * (h + 1), h + 1))
    return end
