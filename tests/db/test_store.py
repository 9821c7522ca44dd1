"""store.write_snapshot puts every figure of a snapshot into rows, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import fleetstate, frames, slabframes, store
from app.db import models as m
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.domain import cgtable as ct
from app.domain.samples import (
    CgroupKmemSlabinfo,
    CgroupSample,
    MemcgChildCache,
    RemovedCgroup,
    SlabinfoRow,
    Snapshot,
)
from app.services import hosts as views
from tests.conftest import ERAS, HOST
from tests.snapshots import host_snapshot, stat_row, table

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
U = "unified"


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def _stat(j: int, k: int) -> dict[str, int]:
    return {"anon": 4096 * (j + k), "file": 65536 * j + k, "shmem": 4096 * (j % 2),
            "slab": 8192 * j, "kernel_stack": 16384, "pgfault": 1000 * k + j,
            "active_file": 4096 * k}


def _tick(k: int, paths: list[str], *, new: Sequence[str] = (),
          removed: tuple[RemovedCgroup, ...] = (), series: bool = True,
          full: bool = False) -> Snapshot:
    """The k-th tick of a host whose cgroups are `paths` (a minute apart)."""
    base = host_snapshot(HOST, T0 + timedelta(minutes=k))
    rows = {(U, p): stat_row(_stat(j, k), 1_000_000 * j + k, {"nr_dying_descendants": j + k},
                             keys=ct.SERIES_STAT_KEYS) for j, p in enumerate(paths)}
    whole = {(U, p): stat_row(_stat(j, k)) for j, p in enumerate(paths)}
    return replace(
        base, new_cgroups=tuple(CgroupSample(U, p, _stat(paths.index(p), k)) for p in new),
        series=table(rows) if series else None, full=table(whole) if full else None,
        removed=removed, host_full=full)


def _ids(s: Session) -> dict[str, int]:
    return {p: i for p, i in s.execute(select(m.Cgroup.path, m.Cgroup.id)).all()}


def test_host_capture_rows(sessions: sessionmaker[Session]) -> None:
    snap = host_snapshot(HOST, T0)
    with sessions.begin() as s:
        sid = store.write_snapshot(s, snap)
        lean = store.write_snapshot(s, replace(snap, taken_at=T0 + timedelta(seconds=15),
                                               host_full=False))
    with sessions() as s:
        scrape = s.get_one(m.Scrape, sid)
        assert scrape.memcg_num_cgroups_total == 32
        assert scrape.slab_bytes == snap.meminfo["Slab"]
        assert scrape.taken_at == snap.taken_at  # tz-aware UTC round trip
        assert scrape.meminfo_json == snap.meminfo and scrape.vmstat_json == snap.vmstat
        other = s.get_one(m.Scrape, lean)
        assert (other.meminfo_json, other.vmstat_json) == (None, None)
        assert other.slab_bytes == snap.meminfo["Slab"]  # the columns every tick
        assert s.scalar(select(func.count()).select_from(m.SlabFrame)) == 2  # one a scrape
        frame = slabframes.decode(s.scalars(select(m.SlabFrame.data)
                                            .where(m.SlabFrame.scrape_id == sid)).one())
        assert len(frame) == 235
        names = dict(s.execute(select(m.SlabCache.name, m.SlabCache.id)).all())
        for c in snap.caches:
            assert frame[names[c.name]] == {
                "active_objs": c.active_objs, "num_objs": c.num_objs,
                "num_slabs": c.num_slabs, "slab_bytes": c.bytes,
                "partial_slabs": c.partial_slabs, "cpu_slabs": c.cpu_slabs}
        host = s.scalars(select(m.Host)).one()
        assert (host.name, host.era, host.last_seen_at) == ("vm", "objcg-kmem",
                                                           T0 + timedelta(seconds=15))
        assert s.scalar(select(func.count()).select_from(m.SlabCache)) == 235


def test_repeated_cache_names_are_summed_not_lost(sessions: sessionmaker[Session]) -> None:
    snap = host_snapshot(ERAS / "slab-statistics-4.14", T0)
    with sessions.begin() as s:
        store.write_snapshot(s, snap)
    with sessions() as s:
        names = {i: n for n, i in s.execute(select(m.SlabCache.name, m.SlabCache.id)).all()}
        frame = slabframes.decode(s.scalars(select(m.SlabFrame.data)).one())
        rows = {names[cid]: v["num_objs"] for cid, v in frame.items()}
    assert rows == {"dentry": 840, "kmalloc-64": 128 + 64}


def test_snapshot_id_is_idempotent(sessions: sessionmaker[Session]) -> None:
    snap = _tick(0, ["/a"], new=["/a"])
    with sessions.begin() as s:
        store.write_snapshot(s, snap, snapshot_id="abc")
    with pytest.raises(store.SnapshotConflict), sessions.begin() as s:
        store.write_snapshot(s, snap, snapshot_id="abc")
    with sessions.begin() as s:  # another id is another scrape
        store.write_snapshot(s, replace(snap, new_cgroups=()), snapshot_id="abd")
    with sessions() as s:
        assert fleetstate.count_scrapes(s) == 2
        assert fleetstate.count_scrapes(s, "vm") == 2
        assert s.scalar(select(func.count()).select_from(m.Cgroup)) == 1


def test_new_cgroups_frames_and_removals(sessions: sessionmaker[Session]) -> None:
    paths = ["/", "/a.service", "/b.service"]
    first = _tick(0, paths, new=paths, full=True)
    gone = RemovedCgroup(U, "/b.service", T0, T0 + timedelta(minutes=1), _stat(2, 0) | {
        "zswap_new_key": (1 << 64) - 1}, 12345, stat_read_at=T0)
    second = _tick(1, [*paths[:2], "/c.service"], new=["/c.service"], removed=(gone,))
    with sessions.begin() as s:
        store.write_snapshot(s, first)
        store.write_snapshot(s, second)
    with sessions() as s:
        ids = _ids(s)
        cg = {c.path: c for c in s.scalars(select(m.Cgroup))}
        assert ct.unpack_stat(cg["/a.service"].first_memory_stat) == _stat(1, 0)
        assert ct.unpack_stat(cg["/c.service"].first_memory_stat) == _stat(2, 1)
        assert cg["/b.service"].removed_at == T0 + timedelta(minutes=1)
        assert cg["/b.service"].last_seen_at == T0  # the removal's last sighting
        assert cg["/c.service"].removed_at is None
        fr = s.execute(select(m.CgroupFrame.kind, m.CgroupFrame.taken_at,
                              m.CgroupFrame.rows_total, m.CgroupFrame.data)
                       .order_by(m.CgroupFrame.taken_at, m.CgroupFrame.kind)).all()
        assert [(f.kind, f.taken_at, f.rows_total) for f in fr] == [
            ("full", T0, 3), ("series", T0, 3), ("series", T0 + timedelta(minutes=1), 3)]
        assert frames.decode(fr[0].data) == {ids[p]: stat_row(_stat(j, 0))
                                             for j, p in enumerate(paths)}
        assert frames.decode(fr[2].data)[ids["/c.service"]] == stat_row(
            _stat(2, 1), 2_000_001, {"nr_dying_descendants": 3}, keys=ct.SERIES_STAT_KEYS)
        r = s.scalars(select(m.RemovedCgroup)).one()
        assert ct.unpack_stat(r.last_memory_stat) == gone.last_memory_stat
        assert (r.cgroup_id, r.stat_read_at, r.file_bytes, r.slab_bytes,
                r.last_memory_usage_bytes) == (ids["/b.service"], T0, 65536 * 2, 16384, 12345)


def test_a_path_that_comes_back_is_the_same_row_live_again(
        sessions: sessionmaker[Session]) -> None:
    gone = RemovedCgroup(U, "/job.service", T0, T0 + timedelta(minutes=1), {"file": 1}, None)
    with sessions.begin() as s:
        store.write_snapshot(s, _tick(0, ["/", "/job.service"], new=["/", "/job.service"]))
        store.write_snapshot(s, _tick(1, ["/"], series=False, removed=(gone,)))
        old = _ids(s)["/job.service"]
        store.write_snapshot(s, _tick(2, ["/", "/job.service"], new=["/job.service"],
                                      series=False))
    with sessions() as s:
        c = s.get_one(m.Cgroup, old)
        assert (c.removed_at, c.first_seen_at) == (None, T0 + timedelta(minutes=2))
        assert ct.unpack_stat(c.first_memory_stat or b"") == _stat(1, 2)
        assert s.scalar(select(func.count()).select_from(m.Cgroup)) == 2


def test_a_walk_row_of_an_unknown_path_gets_a_cgroup(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:  # a collector restarted without its seed: no new_cgroups
        store.write_snapshot(s, _tick(0, ["/", "/x"]))
    with sessions() as s:
        ids = _ids(s)
        data = s.scalars(select(m.CgroupFrame.data)).one()
        assert set(frames.decode(data)) == {ids["/"], ids["/x"]}
        assert s.get_one(m.Cgroup, ids["/x"]).first_memory_stat is None


def test_kmem_slabinfo_and_per_memcg_caches(sessions: sessionmaker[Session]) -> None:
    row = SlabinfoRow("dentry", 800, 840, 192, 21, 1, 0, 0, 0, 40, 40, 0)
    snap = replace(host_snapshot(ERAS / "pre-5.3-v1-memcg-sysfs", T0), kmem_slabinfo=(
        CgroupKmemSlabinfo("memory", "/system.slice", (row,)),), memcg_caches=(
        MemcgChildCache("dentry", 7, "<img src=x onerror=alert(1)>", 1, 21, None, 0, 192,
                        21),))
    with sessions.begin() as s:
        store.write_snapshot(s, snap)
    with sessions() as s:
        kmem = s.execute(select(m.Cgroup.path, m.CgroupKmemCacheSample.name,
                                m.CgroupKmemCacheSample.num_objs_total)
                         .join(m.Cgroup)).all()
        assert [tuple(k) for k in kmem] == [("/system.slice", "dentry", 840)]
        kids = s.execute(select(m.MemcgCacheSample.cgroup_name,
                                m.MemcgCacheSample.slabs_total)).all()
        assert [tuple(k) for k in kids] == [("<img src=x onerror=alert(1)>", 1)]


def test_latest_cgroups_seeds_removal_after_restart(sessions: sessionmaker[Session]) -> None:
    paths = ["/", "/a.service", "/b.service"]
    with sessions.begin() as s:
        store.write_snapshot(s, _tick(0, paths, new=paths, full=True))
        store.write_snapshot(s, _tick(1, [*paths, "/new"], new=["/new"], series=False))
        store.write_snapshot(s, _tick(2, [*paths, "/new"]))
        store.write_snapshot(s, _tick(3, [*paths, "/newer"], new=["/newer"], series=False))
    with sessions() as s:
        seed = store.latest_cgroups(s, "vm")
        assert store.latest_cgroups(s, "nobody") is None
        boot = s.scalar(select(m.Scrape.boot_id).limit(1))
        assert boot is not None and store.latest_cgroups(s, "vm", boot) is not None
        # After a reboot the stored cgroups were not removed: nothing to seed from.
        assert store.latest_cgroups(s, "vm", "another-boot-id") is None
    assert seed is not None
    got, taken_at = seed
    assert taken_at == T0 + timedelta(minutes=3)
    by = {c.path: c for c in got}
    assert list(by) == ["/", "/a.service", "/b.service", "/new", "/newer"]
    a = by["/a.service"]  # whole stat of the full frame, newer series figures over it
    assert a.memory_stat == _stat(1, 0) | {k: v for k, v in _stat(1, 2).items()
                                           if k in ct.SERIES_STAT_KEYS}
    assert (a.memory_usage_bytes, a.nr_dying_descendants) == (1_000_002, 3)
    assert by["/new"].memory_stat == _stat(3, 1) | {k: v for k, v in _stat(3, 2).items()
                                                    if k in ct.SERIES_STAT_KEYS}
    assert by["/newer"].memory_stat == _stat(3, 3)  # only its first-seen stat
    assert by["/newer"].memory_usage_bytes is None


def test_cgroup_tree_at_an_instant_reads_frames_at_or_before_it(
        sessions: sessionmaker[Session]) -> None:
    paths = ["/", "/a.service", "/b.service"]
    gone = RemovedCgroup(U, "/b.service", T0 + timedelta(minutes=1), T0 + timedelta(minutes=2),
                         _stat(2, 1), None)
    with sessions.begin() as s:
        store.write_snapshot(s, _tick(0, paths, new=paths, full=True))
        store.write_snapshot(s, _tick(1, [*paths, "/c"], new=["/c"], series=False))
        store.write_snapshot(s, _tick(2, ["/", "/a.service", "/c"], series=False,
                                      removed=(gone,)))
        store.write_snapshot(s, _tick(3, ["/", "/a.service", "/c"]))
    with sessions() as s:
        hid = s.scalar(select(m.Host.id))
        assert hid is not None
        at1, _ = views.cgroups(s, hid, T0 + timedelta(minutes=1, seconds=30))
        at3, when = views.cgroups(s, hid, None)
    assert when == T0 + timedelta(minutes=3)
    one = {c.path: c for c in at1}
    assert list(one) == ["/", "/a.service", "/b.service", "/c"]
    assert one["/a.service"].memory_usage_bytes == 1_000_000  # the series frame of tick 0
    assert one["/a.service"].memory_stat == _stat(1, 0)  # the full frame
    assert one["/"].dying_descendants == 0 and one["/"].live_descendants == 3
    c = one["/c"]  # first seen after the frame: its first-seen stat
    assert (c.file_bytes, c.memory_usage_bytes, c.memory_stat) == (65536 * 3 + 1, None,
                                                                  _stat(3, 1))
    three = {c.path: c for c in at3}
    assert list(three) == ["/", "/a.service", "/c"]  # /b.service was removed at tick 2
    assert (three["/c"].memory_usage_bytes, three["/c"].file_bytes) == (2_000_003,
                                                                       65536 * 2 + 3)
    assert three["/c"].memory_stat == _stat(3, 1)  # whole stat: still the first seen


def test_statements_per_tick_stay_few(sessions: sessionmaker[Session], db_url: str) -> None:
    paths = ["/"] + [f"/u{j}" for j in range(200)]
    gone = tuple(RemovedCgroup(U, f"/u{j}", T0, T0 + timedelta(minutes=2), _stat(j, 1), None)
                 for j in range(190, 200))
    with sessions.begin() as s:
        store.write_snapshot(s, _tick(0, paths, new=paths, full=True))
    counts: list[int] = []
    engine = sessions.kw["bind"]

    def count(*_: Any) -> None:
        counts[-1] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        for snap in (_tick(1, paths, new=[], series=False),
                     _tick(2, [*paths[:190], "/n1", "/n2"], new=[], removed=gone),
                     _tick(3, paths[:190], series=False)):
            counts.append(0)
            with sessions.begin() as s:
                store.write_snapshot(s, snap)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # host, scrape, caches (select, touch), slab rows; a walk tick adds the live cgroups,
    # paths, new rows, frame, touch, removed rows and their update. (COPY is not counted.)
    print("statements per tick", counts)
    assert counts[0] <= 8 and counts[1] <= 15 and counts[2] <= 8, counts
