"""The collector's churn counter (CgroupTracker.count_churn) across ticks: the baseline, the
stride measured from a leaf (and again when an interval is inexact), wraps and reboots.

The hierarchy is a directory tree built here whose leaves hold control files, as cgroupfs
shows them; listings carry the directory ids the kernel would give (app/domain/churn.py).
"""

from __future__ import annotations

from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.collector.cgstate import Listing
from app.collector.cgwalk import CgroupTracker
from app.collector.sources.cgroups import Hierarchy
from app.domain.samples import HierarchyChurn

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
FILES = ("cgroup.procs", "memory.stat", "memory.usage_in_bytes", "tasks")
S = 1 + len(FILES)


def tree(root: Path, leaves: list[str]) -> None:
    for name in leaves:
        d = root / name.lstrip("/")
        d.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            (d / f).write_text("0\n")


def at(k: int) -> datetime:
    return T0 + timedelta(seconds=15 * k)


def listing(ids: dict[str, int]) -> Listing:
    return Listing(list(ids), array("Q", ids.values()))


def tracker(root: Path, kind: str = "memory", memory: bool = True) -> CgroupTracker:
    return CgroupTracker([Hierarchy(kind, "/sys/fs/cgroup/memory", str(root), memory)])


def test_the_first_tick_is_a_baseline_then_hidden_cgroups_are_counted(tmp_path: Path) -> None:
    tree(tmp_path, ["/a", "/b"])
    t = tracker(tmp_path)
    base = {"/": 1, "/a": 100, "/b": 100 + S}
    assert t.count_churn({"memory": listing(base)}, 40, at(0)) == []
    # 10 cgroups made and removed between ticks, then /c made (and kept): 11 made, 10 gone;
    # num_cgroups rose by 5: 6 of the 11 were freed already.
    tree(tmp_path, ["/c"])
    now = {**base, "/c": 100 + 12 * S}
    got = t.count_churn({"memory": listing(now)}, 45, at(1))
    assert got == [HierarchyChurn("memory", at(0), 11, 10, 6, True)]
    # Nothing happens: nothing counted, and the newest id is kept though /c goes.
    (tmp_path / "c").rename(tmp_path / "gone")
    got = t.count_churn({"memory": listing(base)}, 45, at(2))
    assert got == [HierarchyChurn("memory", at(1), 0, 1, 0, True)]


def test_without_a_leaf_the_baseline_waits_and_nothing_is_lost(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    assert t.count_churn({"memory": listing({"/": 1})}, 1, at(0)) == []
    # cgroups came and went, none listed, no leaf to measure the stride: no count yet
    assert t.count_churn({"memory": listing({"/": 1})}, 3, at(1)) == []
    tree(tmp_path, ["/job-7"])
    got = t.count_churn({"memory": listing({"/": 1, "/job-7": 1 + 7 * S})}, 5, at(2))
    # since the first tick: 7 made (6 gone, 1 listed); num_cgroups 1 -> 5: 3 freed
    assert got == [HierarchyChurn("memory", at(0), 7, 6, 3, True)]


def test_an_inexact_interval_measures_the_stride_again(tmp_path: Path) -> None:
    tree(tmp_path, ["/a"])
    t = tracker(tmp_path, "unified")
    assert t.count_churn({"unified": listing({"/": 1, "/a": 50})}, 10, at(0)) == []
    t.count_churn({"unified": listing({"/": 1, "/a": 50})}, 10, at(1))  # stride S measured
    # A controller enabled: new cgroups have one more file. Two made since.
    tree(tmp_path, ["/b"])
    (tmp_path / "b" / "memory.current").write_text("0\n")
    got = t.count_churn({"unified": listing({"/": 1, "/a": 50, "/b": 50 + 2 * (S + 1)})},
                        12, at(2))
    assert got == [HierarchyChurn("unified", at(1), 2, 1, 0, True)]
    # Ids taken by files alone (+memory on /a): not a whole number of cgroups, flagged.
    got = t.count_churn({"unified": listing({"/": 1, "/a": 50, "/b": 50 + 2 * (S + 1) + 3})},
                        12, at(3))
    assert got == [HierarchyChurn("unified", at(2), 0, 0, 0, False)]


def test_a_wrap_counts_nothing_and_restarts_the_baseline(tmp_path: Path) -> None:
    tree(tmp_path, ["/a"])
    t = tracker(tmp_path)
    t.count_churn({"memory": listing({"/": 1, "/a": 10})}, 5, at(0))
    got = t.count_churn({"memory": listing({"/": 1, "/a": 10 + (1 << 30) + S})}, 5, at(1))
    assert got == []  # ids jumped past half the range: no count across it
    got = t.count_churn({"memory": listing({"/": 1, "/a": 10 + (1 << 30) + 2 * S})}, 5, at(2))
    assert got == [HierarchyChurn("memory", at(1), 1, 1, 1, True)]


def test_a_hierarchy_without_the_memory_controller_has_no_freed(tmp_path: Path) -> None:
    tree(tmp_path, ["/a"])
    t = tracker(tmp_path, "unified", memory=False)
    t.count_churn({"unified": listing({"/": 1, "/a": 10})}, 99, at(0))
    got = t.count_churn({"unified": listing({"/": 1, "/a": 10 + S})}, 99, at(1))
    assert got == [HierarchyChurn("unified", at(0), 1, 1, None, True)]


def test_through_the_collector_a_new_boot_starts_a_new_baseline(tmp_path: Path) -> None:
    import shutil

    from app.collector.scrape import Collector, CollectorOptions
    from tests.conftest import ERAS
    root = tmp_path / "tree"
    shutil.copytree(ERAS / "pre-5.3-v1-memcg-sysfs", root, symlinks=True)
    c = Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys")))
    first = c.collect()
    assert first.churn == ()
    shutil.rmtree(root / "sys/fs/cgroup/memory/system.slice/cron.service")
    second = c.collect()
    # one removed, none made; /proc/cgroups did not move: the removed one is not freed.
    # The tree's cgroup2 hierarchy (hybrid) runs no memory controller: freed unknown.
    assert second.churn == (HierarchyChurn("unified", first.taken_at, 0, 0, None, True),
                            HierarchyChurn("memory", first.taken_at, 0, 1, 0, True))
    (root / "proc/sys/kernel/random/boot_id").write_text("another-boot\n")
    rebooted = c.collect()
    assert rebooted.churn == ()  # ids of another boot: no count across it
    assert [x for x in c.collect().churn if x.hierarchy == "memory"] == [
        HierarchyChurn("memory", rebooted.taken_at, 0, 0, 0, True)]


def test_ids_that_lag_carry_the_num_cgroups_baseline_to_the_interval_that_counts(
        tmp_path: Path) -> None:
    """200 cgroups made and removed within a tick, then nothing: num_cgroups rose by 200,
    the ids (no later directory listed) by 1 cgroup. The next interval a stayer appears:
    the ids count the 200 and it. Freed is unknown for the first interval, and the second
    counts it from the first one's baseline: never more freed than made."""
    tree(tmp_path, ["/a"])
    t = tracker(tmp_path)
    ids = {"/": 1, "/a": 1000}
    assert t.count_churn({"memory": listing(ids)}, 400, at(0)) == []
    tree(tmp_path, ["/b"])
    ids1 = {**ids, "/b": 1000 + S}  # the newest listed: the 200 after it are not counted
    got = t.count_churn({"memory": listing(ids1)}, 600, at(1))
    assert got == [HierarchyChurn("memory", at(0), 1, 0, None, False)]
    tree(tmp_path, ["/e"])
    ids2 = {**ids1, "/e": 1000 + (1 + 201) * S}
    got = t.count_churn({"memory": listing(ids2)}, 598, at(2))
    # 202 counted since num_cgroups read 400; it rose by 198: 4 freed, not 201 - (-2) = 203.
    assert got == [HierarchyChurn("memory", at(1), 201, 200, 4, True)]
    got = t.count_churn({"memory": listing(ids2)}, 596, at(3))  # 2 more freed: from 598
    assert got == [HierarchyChurn("memory", at(2), 0, 0, 2, True)]
