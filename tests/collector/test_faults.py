"""Fault injection on fake roots: every bad file or tree ends the collect in bounded time.

Each case copies the host-6.18 fixture, breaks one thing, and collects in a thread with a
deadline: a hang fails the test instead of hanging it, and the break must show up as an
`errors` entry (or, for odd but valid input, as exact figures) with everything else kept.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from app.collector.scrape import Collector, CollectorOptions
from app.domain.samples import Snapshot
from tests.conftest import ROOT

FIXTURE = ROOT / "tests/fixtures/host-6.18"
MEM = "sys/fs/cgroup/memory"
CHILD = "process_api/aef8847759c1271ed33ecf6b4153e8fb"
DEADLINE = 60.0  # seconds; every case takes well under one


@pytest.fixture
def root(tmp_path: Path) -> Path:
    dst = tmp_path / "host"
    shutil.copytree(FIXTURE, dst, symlinks=True)
    return dst


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


def replace_with(path: Path, make: str) -> None:
    path.unlink()
    if make == "fifo":
        os.mkfifo(path)
    else:
        os.symlink(make, path)


@pytest.mark.parametrize("make", ["fifo", "/dev/zero"])
def test_fifo_or_dev_zero_as_a_proc_file_is_an_error(root: Path, make: str) -> None:
    replace_with(root / "proc/slabinfo", make)
    replace_with(root / "proc/meminfo", make)
    s = collect(root)
    for name in ("proc/slabinfo", "proc/meminfo"):
        msgs = errors_for(s, name)
        assert msgs == ["not a regular file (a FIFO, device or socket?): not read"], msgs
    assert s.caches == () and s.meminfo == {}
    assert len(s.vmstat) > 100  # the rest arrived


@pytest.mark.parametrize("make", ["fifo", "/dev/zero"])
def test_fifo_or_dev_zero_as_a_cgroup_file_is_an_error(root: Path, make: str) -> None:
    replace_with(root / MEM / "process_api/memory.stat", make)
    s = collect(root)
    assert errors_for(s, "process_api/memory.stat") == [
        "not a regular file (a FIFO, device or socket?): not read"]
    # The cgroup is still live (its directory exists): listed, not reported removed.
    assert s.series is not None and "/process_api" in s.series.paths
    assert s.removed == ()


def test_symlink_loop_in_place_of_a_file_is_an_error(root: Path) -> None:
    p = root / MEM / "process_api/memory.stat"
    p.unlink()
    os.symlink("memory.stat.b", p)
    os.symlink("memory.stat", p.with_name("memory.stat.b"))
    replace_with(root / "proc/vmstat", str(root / "proc/vmstat"))  # points at itself
    s = collect(root)
    assert errors_for(s, "process_api/memory.stat") == ["Too many levels of symbolic links"]
    assert errors_for(s, "proc/vmstat") == ["Too many levels of symbolic links"]


def test_symlink_loops_in_the_cgroup_tree_are_not_followed(root: Path) -> None:
    d = root / MEM / "process_api"
    os.symlink(".", d / "self")
    os.symlink("..", d / "up")
    s = collect(root)
    assert s.full is not None
    paths = {p for h, p in zip(s.full.hierarchies, s.full.paths, strict=True) if h == "memory"}
    assert not any("self" in p or "up" in p for p in paths)
    assert "/process_api" in paths


def test_a_file_longer_than_its_bound_is_an_error(root: Path) -> None:
    (root / MEM / "process_api/memory.stat").write_bytes(b"cache 1\n" * (1 << 18))  # 2 MiB
    s = collect(root)
    assert errors_for(s, "process_api/memory.stat") == ["longer than 1048576 bytes: not read"]


def test_truncated_binary_and_empty_files(root: Path) -> None:
    text = (root / "proc/slabinfo").read_text()
    (root / "proc/slabinfo").write_text(text[: len(text) // 2])  # cut mid-line
    (root / "proc/vmstat").write_bytes(bytes(range(256)) * 8)
    (root / "proc/meminfo").write_bytes(b"")
    (root / MEM / "process_api/memory.stat").write_bytes(b"")
    (root / MEM / CHILD / "memory.usage_in_bytes").write_bytes(b"\x00\xff\xfe")
    s = collect(root)
    assert len(errors_for(s, "proc/slabinfo")) == 1
    assert len(errors_for(s, "proc/vmstat")) == 1
    assert errors_for(s, "proc/meminfo") == ["empty file, expected one figure a line"]
    assert errors_for(s, "process_api/memory.stat") == [
        "empty file, expected 'key value' lines"]
    assert errors_for(s, CHILD + "/memory.usage_in_bytes") == [
        "line 1: expected an integer, got b'\\x00\\xff\\xfe'"]
    assert s.vmstat == {} and s.meminfo == {}
    # The cgroup whose files are broken is live: kept in the series, not removed.
    assert s.series is not None and "/process_api" in s.series.paths and s.removed == ()


def test_empty_vmstat_is_an_error(root: Path) -> None:
    (root / "proc/vmstat").write_bytes(b"")
    s = collect(root)
    assert errors_for(s, "proc/vmstat") == ["empty file, expected one figure a line"]


def test_u64_values_are_kept_exactly_and_huge_ones_are_errors(root: Path) -> None:
    d = root / MEM / "process_api"
    (d / "memory.stat").write_text(f"cache {2**64 - 1}\nrss {2**63 + 5}\nshmem 7\n")
    b = root / MEM / CHILD / "memory.stat"
    b.write_text(f"cache {10**30}\nrss 3\n")
    s = collect(root)
    assert errors_for(s, "process_api/memory.stat") == []
    assert errors_for(s, "aef8847759c1271ed33ecf6b4153e8fb/memory.stat") == [
        f"line 1: cache {10**30} is outside the 64-bit range: left out"]
    assert s.full is not None
    row = s.full.row(s.full.paths.index("/process_api"))
    assert (row["memory.stat:cache"], row["memory.stat:rss"]) == (2**64 - 1, 2**63 + 5)


def test_non_utf8_cgroup_names(root: Path) -> None:
    d = root / MEM / "process_api"
    bad = os.fsencode(str(d)) + b"/caf\xe9-\xff"
    os.mkdir(bad)
    for name in ("memory.stat", "memory.usage_in_bytes", "memory.kmem.usage_in_bytes"):
        shutil.copy(d / name, os.fsdecode(bad + b"/" + name.encode()))
    s = collect(root)
    assert s.errors == ()
    assert s.full is not None
    assert "/process_api/caf\\xe9-\\xff" in s.full.paths


def _cgroup(path: bytes | str) -> None:
    os.mkdir(path)
    p = os.fsencode(path)
    for name, text in ((b"memory.stat", b"cache 1\nrss 2\n"), (b"memory.usage_in_bytes", b"3\n"),
                       (b"memory.kmem.usage_in_bytes", b"1\n")):
        with open(p + b"/" + name, "wb") as f:
            f.write(text)


def test_a_tree_10000_wide(root: Path) -> None:
    base = root / MEM / "process_api"
    for i in range(10_000):
        _cgroup(base / f"w{i}")
    s = collect(root)
    assert s.errors == ()
    assert s.full is not None
    assert sum(1 for p in s.full.paths if p.startswith("/process_api/w")) == 10_000


def test_a_tree_2000_deep(root: Path) -> None:
    # Built relative to an open directory: the full path passes PATH_MAX (4096) near 1,000.
    fd = os.open(root / MEM / "process_api", os.O_RDONLY)
    try:
        for _ in range(2_000):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            for name, text in ((b"memory.stat", b"cache 1\nrss 2\n"),
                               (b"memory.usage_in_bytes", b"3\n"),
                               (b"memory.kmem.usage_in_bytes", b"1\n")):
                f = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(f, text)
                os.close(f)
    finally:
        os.close(fd)
    s = collect(root)
    assert s.full is not None
    deep = [p for p in s.full.paths if p.startswith("/process_api/d")]
    assert len(deep) >= 900  # read by full path while it is short enough
    # Past PATH_MAX a cgroup cannot be listed or opened: errors, never a crash or a hang.
    assert s.errors, "the levels past PATH_MAX must be reported"
    assert all("File name too long" in e.message for e in s.errors), s.errors[:3]
