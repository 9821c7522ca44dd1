"""Fault injection on fake roots: every bad file or tree ends the collect in bounded time.

Each case copies the host-6.18 fixture, breaks one thing, and collects in a thread with a
deadline: a hang fails the test instead of hanging it, and the break must show up as an
`errors` entry (or, for odd but valid input, as exact figures) with everything else kept.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.collector.scrape import Collector, CollectorOptions
from app.domain.samples import Snapshot
from tests.collector import faultroots as fr
from tests.collector.faultroots import CHILD

DEADLINE = 60.0  # seconds; every case takes well under one


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return fr.copy_host(tmp_path / "host")


def collect(root: Path) -> Snapshot:
    """One collect of a fake root, in a thread that must end before DEADLINE."""
    out: list[Snapshot | BaseException] = []

    def run() -> None:
        try:
            c = Collector(CollectorOptions(proc_root=str(root / "proc"),
                                           sys_root=str(root / "sys")))
            out.append(c.collect())
        except BaseException as err:  # reported by the test thread
            out.append(err)

    t = threading.Thread(target=run, daemon=True)  # daemon: a hung read cannot hold pytest
    t.start()
    t.join(DEADLINE)
    assert not t.is_alive(), f"collect still running after {DEADLINE}s (a blocking read?)"
    assert len(out) == 1
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def errors_for(s: Snapshot, suffix: str) -> list[str]:
    return [e.message for e in s.errors if e.path.endswith(suffix)]


@pytest.mark.parametrize("make", ["fifo", "/dev/zero"])
def test_fifo_or_dev_zero_as_a_proc_file_is_an_error(root: Path, make: str) -> None:
    fr.proc_files_as(root, make)
    s = collect(root)
    for name in ("proc/slabinfo", "proc/meminfo"):
        msgs = errors_for(s, name)
        assert msgs == ["not a regular file (a FIFO, device or socket?): not read"], msgs
    assert s.caches == () and s.meminfo == {}
    assert len(s.vmstat) > 100  # the rest arrived


@pytest.mark.parametrize("make", ["fifo", "/dev/zero"])
def test_fifo_or_dev_zero_as_a_cgroup_file_is_an_error(root: Path, make: str) -> None:
    fr.cgroup_file_as(root, make)
    s = collect(root)
    assert errors_for(s, "process_api/memory.stat") == [
        "not a regular file (a FIFO, device or socket?): not read"]
    # The cgroup is still live (its directory exists): listed, not reported removed.
    assert s.series is not None and "/process_api" in s.series.paths
    assert s.removed == ()


def test_symlink_loop_in_place_of_a_file_is_an_error(root: Path) -> None:
    fr.symlink_loop_files(root)
    s = collect(root)
    assert errors_for(s, "process_api/memory.stat") == ["Too many levels of symbolic links"]
    assert errors_for(s, "proc/vmstat") == ["Too many levels of symbolic links"]


def test_symlink_loops_in_the_cgroup_tree_are_not_followed(root: Path) -> None:
    fr.symlink_loops_in_tree(root)
    s = collect(root)
    assert s.full is not None
    paths = {p for h, p in zip(s.full.hierarchies, s.full.paths, strict=True) if h == "memory"}
    assert not any("self" in p or "up" in p for p in paths)
    assert "/process_api" in paths


def test_a_file_longer_than_its_bound_is_an_error(root: Path) -> None:
    fr.long_file(root)
    s = collect(root)
    assert errors_for(s, "process_api/memory.stat") == ["longer than 1048576 bytes: not read"]


def test_truncated_binary_and_empty_files(root: Path) -> None:
    fr.truncated_binary_empty(root)
    s = collect(root)
    assert len(errors_for(s, "proc/slabinfo")) == 1
    vm = errors_for(s, "proc/vmstat")
    # Nothing was left; each bad line says so, five at most, then how many more.
    assert len(vm) == 7 and vm[0] == "empty file, expected one figure a line", vm
    assert vm[1].startswith("line 1: expected 'key value', got '\\x00")
    assert vm[6] == "and 12 more bad lines"
    assert errors_for(s, "proc/meminfo") == ["empty file, expected one figure a line"]
    assert errors_for(s, "process_api/memory.stat") == [
        "empty file, expected 'key value' lines"]
    assert errors_for(s, CHILD + "/memory.usage_in_bytes") == [
        "line 1: expected an integer, got b'\\x00\\xff\\xfe'"]
    assert s.vmstat == {} and s.meminfo == {}
    # The cgroup whose files are broken is live: kept in the series, not removed.
    assert s.series is not None and "/process_api" in s.series.paths and s.removed == ()


def test_empty_vmstat_is_an_error(root: Path) -> None:
    fr.empty_vmstat(root)
    s = collect(root)
    assert errors_for(s, "proc/vmstat") == ["empty file, expected one figure a line"]


def test_u64_values_are_kept_exactly_and_huge_ones_are_errors(root: Path) -> None:
    fr.u64_and_huge(root)
    s = collect(root)
    assert errors_for(s, "process_api/memory.stat") == []
    assert errors_for(s, "aef8847759c1271ed33ecf6b4153e8fb/memory.stat") == [
        f"line 1: cache {fr.HUGE} is outside the 64-bit range: left out"]
    assert s.full is not None
    row = s.full.row(s.full.paths.index("/process_api"))
    assert (row["memory.stat:cache"], row["memory.stat:rss"]) == (2**64 - 1, 2**63 + 5)


def test_non_utf8_cgroup_names(root: Path) -> None:
    fr.non_utf8_name(root)
    s = collect(root)
    assert s.errors == ()
    assert s.full is not None
    assert "/process_api/caf\\xe9-\\xff" in s.full.paths


def test_a_tree_10000_wide(root: Path) -> None:
    fr.wide_tree(root, 10_000)
    s = collect(root)
    assert s.errors == ()
    assert s.full is not None
    assert sum(1 for p in s.full.paths if p.startswith("/process_api/w")) == 10_000


def test_a_tree_2000_deep(root: Path) -> None:
    try:
        fr.deep_tree(root, 2_000)
        s = collect(root)
    finally:
        fr.remove_tree(root)  # else pytest's own cleanup of old runs crashes on it
    assert s.full is not None
    deep = [p for p in s.full.paths if p.startswith("/process_api/d")]
    assert len(deep) >= 900  # read by full path while it is short enough
    # Past PATH_MAX a cgroup cannot be listed or opened: errors, never a crash or a hang.
    assert s.errors, "the levels past PATH_MAX must be reported"
    assert all("File name too long" in e.message for e in s.errors), s.errors[:3]
