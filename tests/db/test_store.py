"""store.write_snapshot puts every figure of a snapshot into rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.collector.scrape import Collector, CollectorOptions
from app.db import models as m
from app.db import store
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from tests.conftest import ERAS, HOST


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def _collector(root: Path) -> Collector:
    return Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys"),
                                      page_size_bytes=4096))


def test_host_capture_rows(sessions: sessionmaker[Session]) -> None:
    snap = _collector(HOST).collect()
    with sessions.begin() as s:
        sid = store.write_snapshot(s, snap)
    with sessions() as s:
        scrape = s.get_one(m.Scrape, sid)
        assert (scrape.memcg_num_cgroups_total, scrape.memcg_visible_total,
                scrape.memcg_dying_total) == (32, 6, 26)
        assert scrape.slab_bytes == snap.meminfo["Slab"]
        assert scrape.taken_at == snap.taken_at  # tz-aware UTC round trip
        assert s.scalar(select(func.count()).select_from(m.SlabSample)) == 235
        dentry = s.execute(select(m.SlabSample.num_objs_total, m.SlabSample.slab_bytes)
                           .join(m.SlabCache).where(m.SlabCache.name == "dentry")).one()
        c = next(c for c in snap.caches if c.name == "dentry")
        assert tuple(dentry) == (c.num_objs, c.bytes)
        host = s.scalars(select(m.Host)).one()
        assert (host.name, host.era, host.cgroup_layout) == ("vm", "objcg-kmem", "hybrid")
        assert s.scalar(select(func.count()).select_from(m.CgroupSample)) == len(snap.cgroups)


def test_pre53_per_memcg_rows_and_removal(sessions: sessionmaker[Session],
                                          tmp_path: Path) -> None:
    root = tmp_path / "t"
    shutil.copytree(ERAS / "pre-5.3-v1-memcg-sysfs", root, symlinks=True)
    col = _collector(root)
    first = col.collect()
    with sessions.begin() as s:
        store.write_snapshot(s, first)
    shutil.rmtree(root / "sys/fs/cgroup/memory/system.slice/cron.service")
    second = col.collect()
    with sessions.begin() as s:
        store.write_snapshot(s, second)
    with sessions() as s:
        kids = s.execute(select(m.MemcgCacheSample.cgroup_name, m.MemcgCacheSample.slabs_total)
                         .order_by(m.MemcgCacheSample.id)).all()
        assert len(kids) == 10 and ("<img src=x onerror=alert(1)>", 1) in kids
        kmem = s.execute(select(m.CgroupKmemCacheSample.name,
                                m.CgroupKmemCacheSample.num_objs_total)).all()
        assert sorted(kmem) == [("dentry", 840), ("kmalloc-64", 128)]  # first scrape only
        (gone,) = s.scalars(select(m.RemovedCgroup)).all()
        assert gone.path == "/system.slice/cron.service"
        assert (gone.file_bytes, gone.last_memory_usage_bytes) == (2_048_000, 2_900_000)
        assert gone.removed_at == second.taken_at and gone.last_seen_at == first.taken_at
        cg = s.scalars(select(m.Cgroup).where(m.Cgroup.path == gone.path,
                                             m.Cgroup.hierarchy == "memory")).one()
        assert cg.removed_at == second.taken_at
        caches = s.scalars(select(m.SlabCache).where(m.SlabCache.name == "kmalloc-64")).one()
        assert caches.aliases_json == ["eventpoll_pwq", "fasync_cache"]


def test_repeated_cache_names_are_summed_not_lost(sessions: sessionmaker[Session]) -> None:
    snap = _collector(ERAS / "slab-statistics-4.14").collect()
    with sessions.begin() as s:
        store.write_snapshot(s, snap)
    with sessions() as s:
        q = select(m.SlabCache.name, m.SlabSample.num_objs_total).join(m.SlabSample)
        rows = {r[0]: r[1] for r in s.execute(q).all()}
    assert rows == {"dentry": 840, "kmalloc-64": 128 + 64}


def test_snapshot_id_is_idempotent(sessions: sessionmaker[Session]) -> None:
    snap = _collector(ERAS / "v2-6.12-subsys").collect()
    with sessions.begin() as s:
        store.write_snapshot(s, snap, snapshot_id="abc")
    with pytest.raises(store.SnapshotConflict), sessions.begin() as s:
        store.write_snapshot(s, snap, snapshot_id="abc")
    with sessions() as s:
        assert store.count_scrapes(s) == 1
        assert store.count_scrapes(s, "ci-runner-612") == 1


def test_latest_cgroups_seeds_removal_after_restart(sessions: sessionmaker[Session]) -> None:
    snap = _collector(ERAS / "v2-5.15-dying").collect()
    with sessions.begin() as s:
        store.write_snapshot(s, snap)
    with sessions() as s:
        seed = store.latest_cgroups(s, "k8s-node-515")
    assert seed is not None
    cgroups, taken_at = seed
    assert taken_at == snap.taken_at
    assert {c.path: c.nr_dying_descendants for c in cgroups} == {
        c.path: c.nr_dying_descendants for c in snap.cgroups}
