"""Per-cgroup cadences on a fake v2 root: listing every tick, new cgroups at once, the walk,
series and full tables, removals with the memory.stat last read. Time is stepped, not slept."""

from __future__ import annotations

import shutil
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.collector import cgwalk
from app.collector.cgstate import Listing
from app.collector.scrape import Collector, CollectorOptions
from app.collector.sources.cgroups import Hierarchy
from app.domain.cgtable import STAT, USAGE
from app.domain.samples import CgroupSample, Snapshot
from tests.conftest import ERAS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """Monotonic seconds and the matching wall time, stepped by the test."""

    def __init__(self) -> None:
        self.t = 0.0

    def mono(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.t)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    shutil.copytree(ERAS / "v2-5.15-dying", root, symlinks=True)
    return root


def _cg(root: Path) -> Path:
    return root / "sys/fs/cgroup"


def _collector(root: Path, clock: Clock, **kw: float) -> Collector:
    return Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys"),
                                      **kw), clock=clock.mono, wall=clock.wall)


def _at(c: Collector, clock: Clock, t: float) -> Snapshot:
    clock.t = t
    return c.collect()


def _live(c: Collector, path: str) -> CgroupSample:
    return next(x for x in c.live_cgroups() if x.path == path)


STAT_A = "anon 4096\nfile 8192\nshmem 0\nkernel_stack 16384\n"
STAT_B = "anon 40960\nfile 81920\nshmem 12288\nkernel_stack 32768\n"


def _mk(root: Path, rel: str, stat: str = STAT_A, current: int = 12288) -> Path:
    d = _cg(root) / rel.lstrip("/")
    d.mkdir(parents=True)
    (d / "memory.stat").write_text(stat)
    (d / "memory.current").write_text(f"{current}\n")
    (d / "cgroup.stat").write_text("nr_descendants 0\nnr_dying_descendants 0\n")
    return d


def test_first_tick_has_tables_and_no_new_cgroups(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    s = _at(c, clock, 0)
    # Cgroups already there at start are not "new": they arrive in the full table.
    assert s.new_cgroups == () and s.host_full is True
    assert s.series is not None and s.full is not None
    assert len(s.series) == len(s.full) == 6
    i = s.full.paths.index("/system.slice/sshd.service")
    assert s.full.row(i) == {STAT + k: v for k, v in (
        ("anon", 1000), ("file", 2000), ("kernel_stack", 16384), ("percpu", 480), ("sock", 0),
        ("shmem", 0), ("slab", 70000), ("slab_reclaimable", 50000),
        ("slab_unreclaimable", 20000), ("some_future_key", 7))}
    assert s.series.row(s.series.paths.index("/kubepods.slice"))[USAGE] == 50_000_000
    s2 = _at(c, clock, 15)
    assert (s2.series, s2.full, s2.host_full, s2.new_cgroups) == (None, None, False, ())


def test_new_cgroup_is_read_the_tick_it_appears(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    _at(c, clock, 0)
    _mk(tree, "/system.slice/cron.service")
    s = _at(c, clock, 15)
    (n,) = s.new_cgroups
    assert (n.hierarchy, n.path, n.memory_usage_bytes) == ("unified",
                                                          "/system.slice/cron.service", 12288)
    assert n.memory_stat == {"anon": 4096, "file": 8192, "shmem": 0, "kernel_stack": 16384}
    assert n.cgroup_stat == {"nr_descendants": 0, "nr_dying_descendants": 0}
    assert _at(c, clock, 30).new_cgroups == ()  # reported once


def test_walk_series_and_full_cadences(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    d = _mk(tree, "/job")
    _at(c, clock, 0)
    (d / "memory.stat").write_text(STAT_B)
    # Between walks the compact copy keeps the last walk's figures.
    for t in (15, 30, 45):
        s = _at(c, clock, t)
        assert s.series is None and _live(c, "/job").memory_stat["anon"] == 4096
    s = _at(c, clock, 60)  # the walk
    assert s.series is None and s.full is None
    assert _live(c, "/job").memory_stat["anon"] == 40960
    seen = {t: _at(c, clock, t) for t in range(75, 301, 15)}
    assert [t for t, x in seen.items() if x.series is not None] == [300]
    series = seen[300].series
    assert series is not None and seen[300].full is None
    assert series.row(series.paths.index("/job"))[STAT + "shmem"] == 12288
    assert _at(c, clock, 21_600).full is not None
    assert _at(c, clock, 3_600 * 7).host_full is True


def test_cadences_follow_settings(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock, walk_interval_seconds=30, series_interval_seconds=30,
                   full_interval_seconds=90, host_full_interval_seconds=45)
    got = [(t, x.series is not None, x.full is not None, x.host_full)
           for t in range(0, 100, 15) for x in [_at(c, clock, t)]]
    assert got == [(0, True, True, True), (15, False, False, False), (30, True, False, False),
                   (45, False, False, True), (60, True, False, False),
                   (75, False, False, False), (90, True, True, True)]


def test_removed_cgroup_reports_the_last_walk_not_the_file(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    d = _mk(tree, "/job")
    _at(c, clock, 0)  # walk: STAT_A
    (d / "memory.stat").write_text(STAT_B)
    _at(c, clock, 15)  # no walk: STAT_B is never read
    shutil.rmtree(d)
    s = _at(c, clock, 30)
    (r,) = s.removed
    assert (r.hierarchy, r.path) == ("unified", "/job")
    assert r.last_memory_stat == {"anon": 4096, "file": 8192, "shmem": 0,
                                  "kernel_stack": 16384}
    assert r.stat_read_at == T0 and r.last_memory_usage_bytes == 12288
    assert (r.last_seen_at, r.removed_by) == (T0 + timedelta(seconds=15), s.taken_at)
    assert _at(c, clock, 45).removed == ()


def test_removed_cgroup_reports_the_walk_that_read_the_change(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    d = _mk(tree, "/job")
    _at(c, clock, 0)
    (d / "memory.stat").write_text(STAT_B)
    (d / "memory.current").write_text("99\n")
    _at(c, clock, 60)  # the walk reads STAT_B
    (d / "memory.stat").write_text("anon 1\nfile 1\nshmem 1\nkernel_stack 1\n")
    _at(c, clock, 75)
    shutil.rmtree(d)
    (r,) = _at(c, clock, 90).removed
    assert r.last_memory_stat == {"anon": 40960, "file": 81920, "shmem": 12288,
                                  "kernel_stack": 32768}
    assert (r.last_memory_usage_bytes, r.stat_read_at) == (99, T0 + timedelta(seconds=60))


def test_cgroup_removed_before_any_walk_has_its_first_read(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    _at(c, clock, 0)
    d = _mk(tree, "/short", STAT_B)
    assert len(_at(c, clock, 15).new_cgroups) == 1
    (d / "memory.stat").write_text(STAT_A)
    shutil.rmtree(d)
    (r,) = _at(c, clock, 30).removed
    assert r.last_memory_stat["anon"] == 40960 and r.stat_read_at == T0 + timedelta(seconds=15)


def test_every_removed_cgroup_that_lived_a_walk_has_its_stat(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    _at(c, clock, 0)
    _mk(tree, "/batch")
    dirs = [_mk(tree, f"/batch/job-{i}", f"anon {i}\nfile {2 * i}\n", i) for i in range(40)]
    assert len(_at(c, clock, 15).new_cgroups) == 41  # /batch and its jobs
    removed = []
    for k, t in enumerate(range(30, 30 + 15 * 41, 15)):
        if k < len(dirs):
            shutil.rmtree(dirs[k])
        removed += _at(c, clock, t).removed
    assert sorted(r.path for r in removed) == sorted(f"/batch/job-{i}" for i in range(40))
    assert all(r.last_memory_stat == {"anon": int(r.path.rsplit("-", 1)[1]),
                                      "file": 2 * int(r.path.rsplit("-", 1)[1])}
               for r in removed)


def test_read_error_on_an_existing_directory_is_never_a_removal(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    d = _mk(tree, "/job")
    _at(c, clock, 0)
    (d / "memory.stat").write_text("anon twelve\n")  # garbage: a parse error
    s = _at(c, clock, 60)
    assert s.removed == ()
    (e,) = [x for x in s.errors if x.source == "cgroup"]
    assert e.path.endswith("/job/memory.stat") and "line 1" in e.message
    assert _live(c, "/job").memory_stat["anon"] == 4096  # the last good read is kept
    (d / "memory.stat").unlink()  # +memory gone from the parent: the directory stays
    s = _at(c, clock, 120)
    assert s.removed == () and _live(c, "/job").memory_stat["anon"] == 4096
    shutil.rmtree(d)
    (r,) = _at(c, clock, 135).removed
    assert r.last_memory_stat["anon"] == 4096 and r.stat_read_at == T0


def test_listing_that_misses_an_existing_directory_removes_nothing(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    _mk(tree, "/job")
    _at(c, clock, 0)
    real = cgwalk.listing
    def missing_job(h: Hierarchy) -> Listing:
        full = real(h)
        keep = [i for i, p in enumerate(full.paths) if p != "/job"]
        return Listing([full.paths[i] for i in keep], array("Q", (full.inodes[i] for i in keep)))

    monkeypatch.setattr(cgwalk, "listing", missing_job)
    s = _at(c, clock, 15)
    assert s.removed == ()
    assert any("listing did not reach it" in e.message for e in s.errors)
    monkeypatch.setattr(cgwalk, "listing", real)
    assert _at(c, clock, 30).removed == () and _live(c, "/job").memory_stat["anon"] == 4096


def test_u64_values_above_2_63_and_out_of_range_values(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    big, top = (1 << 63) + 5, (1 << 64) - 1
    text = f"anon {big}\nfile {top}\nshmem -4096\nkernel_stack {1 << 64}\n"
    d = _mk(tree, "/odd", text, current=top)
    s = _at(c, clock, 0)
    # s64 and u64 values are kept exactly; one no kernel prints (past u64) is a line error.
    want = {"anon": big, "file": top, "shmem": -4096}
    assert _live(c, "/odd").memory_stat == want
    assert [e.message for e in s.errors if e.path.endswith("/odd/memory.stat")] == [
        "line 3: shmem -4096 is outside u64 (per-CPU drift?): kept as printed",
        f"line 4: kernel_stack {1 << 64} is outside the 64-bit range: left out"]
    assert s.full is not None
    # In the u64 tables the values that are not u64 are absent; the exact ones are exact.
    assert s.full.row(s.full.paths.index("/odd")) == {STAT + "anon": big, STAT + "file": top}
    assert s.series is not None
    assert s.series.row(s.series.paths.index("/odd"))[USAGE] == top
    shutil.rmtree(d)
    (r,) = _at(c, clock, 15).removed
    assert r.last_memory_stat == want  # the removal record keeps every value exactly


def test_key_schema_mismatch(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    _mk(tree, "/a")
    _mk(tree, "/b", STAT_A + "zswap 7\n")
    d = _mk(tree, "/c", "file 1\nanon 2\n")  # another order
    s = _at(c, clock, 0)
    assert _live(c, "/b").memory_stat == {"anon": 4096, "file": 8192, "shmem": 0,
                                          "kernel_stack": 16384, "zswap": 7}
    assert _live(c, "/c").memory_stat == {"file": 1, "anon": 2}
    assert s.full is not None and STAT + "zswap" in s.full.columns
    assert s.full.row(s.full.paths.index("/a")) == {STAT + k: v for k, v in (
        ("anon", 4096), ("file", 8192), ("shmem", 0), ("kernel_stack", 16384))}
    assert s.full.row(s.full.paths.index("/c")) == {STAT + "file": 1, STAT + "anon": 2}
    (d / "memory.stat").write_text(STAT_B)  # a cgroup whose key set changes between walks
    _at(c, clock, 60)
    assert _live(c, "/c").memory_stat == {"anon": 40960, "file": 81920, "shmem": 12288,
                                          "kernel_stack": 32768}


def test_seed_after_restart(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    gone = CgroupSample("unified", "/gone.scope", {"anon": 5, "file": 6}, 11, None, None,
                        {"nr_descendants": 0})
    kept = CgroupSample("unified", "/system.slice", {"anon": 1}, 2, None, None, None)
    c.seed_previous([gone, kept], T0 - timedelta(minutes=5))
    _mk(tree, "/fresh")
    s = _at(c, clock, 0)
    (r,) = s.removed
    assert (r.path, r.last_memory_stat, r.last_memory_usage_bytes) == (
        "/gone.scope", {"anon": 5, "file": 6}, 11)
    assert (r.last_seen_at, r.stat_read_at) == (T0 - timedelta(minutes=5),) * 2
    # Not in the stored scrape: new since the daemon stopped.
    assert sorted(n.path for n in s.new_cgroups) == [
        "/", "/fresh", "/kubepods.slice", "/kubepods.slice/pod-a",
        "/kubepods.slice/pod-a/ctr-1", "/system.slice/sshd.service"]


def test_new_boot_starts_over(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    _at(c, clock, 0)
    shutil.rmtree(_cg(tree) / "system.slice/sshd.service")
    (tree / "proc/sys/kernel/random").mkdir(parents=True, exist_ok=True)
    (tree / "proc/sys/kernel/random/boot_id").write_text("another-boot\n")
    s = _at(c, clock, 15)
    assert s.removed == () and s.new_cgroups == ()
    assert s.series is not None and s.full is not None  # a new boot: tables at once


def test_a_tick_a_little_early_still_counts() -> None:
    from app.collector.scrape import Cadence
    c = Cadence(60)
    assert c.due(0.0) and not c.due(58.5) and c.due(59.5)  # 0.5 s of jitter: on time
    assert not c.due(60.0) and c.due(119.6)
    big = Cadence(21_600)
    assert big.due(0.0) and not big.due(21_590) and big.due(21_599.5)


def test_empty_seed_is_a_fresh_start(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    c.seed_previous([], T0 - timedelta(minutes=5))
    s = _at(c, clock, 0)
    assert s.new_cgroups == () and s.removed == () and s.full is not None


def test_a_cgroup_whose_read_fails_is_retried_by_the_walk_not_every_tick(tree: Path) -> None:
    clock = Clock()
    c = _collector(tree, clock)
    _at(c, clock, 0)
    d = _mk(tree, "/broken")
    (d / "memory.stat").write_text("anon twelve\n")  # no good line: the read fails

    def errs(s: Snapshot) -> int:
        return sum(1 for e in s.errors if e.path.endswith("/broken/memory.stat"))

    assert errs(_at(c, clock, 15)) == 1  # first sight
    assert errs(_at(c, clock, 30)) == 0  # not again on a plain tick
    assert errs(_at(c, clock, 60)) == 1  # the walk retries it, once
