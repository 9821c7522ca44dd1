"""Broken fake hosts for the collector: each builder breaks one thing in a copy of host-6.18.

Used by tests/collector/test_faults.py (which checks the exact errors and figures) and by
bench/faults.py (which counts crashes and hangs of `collect --once` on each).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURE = ROOT / "tests/fixtures/host-6.18"
MEM = "sys/fs/cgroup/memory"
CHILD = "process_api/aef8847759c1271ed33ecf6b4153e8fb"
HUGE = 10**30  # outside u64


def copy_host(dst: Path) -> Path:
    """A writable copy of the host-6.18 capture at `dst`."""
    shutil.copytree(FIXTURE, dst, symlinks=True)
    return dst


def replace_with(path: Path, make: str) -> None:
    """`path` becomes a FIFO ("fifo") or a symlink to `make`."""
    path.unlink()
    if make == "fifo":
        os.mkfifo(path)
    else:
        os.symlink(make, path)


def proc_files_as(root: Path, make: str) -> None:
    """/proc/slabinfo and /proc/meminfo replaced by a FIFO or a symlink."""
    replace_with(root / "proc/slabinfo", make)
    replace_with(root / "proc/meminfo", make)


def cgroup_file_as(root: Path, make: str) -> None:
    """A cgroup's memory.stat replaced by a FIFO or a symlink."""
    replace_with(root / MEM / "process_api/memory.stat", make)


def symlink_loop_files(root: Path) -> None:
    """memory.stat in a two-link loop, /proc/vmstat pointing at itself."""
    p = root / MEM / "process_api/memory.stat"
    p.unlink()
    os.symlink("memory.stat.b", p)
    os.symlink("memory.stat", p.with_name("memory.stat.b"))
    replace_with(root / "proc/vmstat", str(root / "proc/vmstat"))


def symlink_loops_in_tree(root: Path) -> None:
    """Directory symlinks to '.' and '..' inside a cgroup."""
    d = root / MEM / "process_api"
    os.symlink(".", d / "self")
    os.symlink("..", d / "up")


def long_file(root: Path) -> None:
    """A 2 MiB memory.stat (past the 1 MiB bound)."""
    (root / MEM / "process_api/memory.stat").write_bytes(b"cache 1\n" * (1 << 18))


def truncated_binary_empty(root: Path) -> None:
    """slabinfo cut mid-line, binary vmstat, empty meminfo and memory.stat, binary usage."""
    text = (root / "proc/slabinfo").read_text()
    (root / "proc/slabinfo").write_text(text[: len(text) // 2])
    (root / "proc/vmstat").write_bytes(bytes(range(256)) * 8)
    (root / "proc/meminfo").write_bytes(b"")
    (root / MEM / "process_api/memory.stat").write_bytes(b"")
    (root / MEM / CHILD / "memory.usage_in_bytes").write_bytes(b"\x00\xff\xfe")


def empty_vmstat(root: Path) -> None:
    (root / "proc/vmstat").write_bytes(b"")


def u64_and_huge(root: Path) -> None:
    """u64 values up to 2^64-1 in one cgroup, one outside u64 in another."""
    (root / MEM / "process_api/memory.stat").write_text(
        f"cache {2**64 - 1}\nrss {2**63 + 5}\nshmem 7\n")
    (root / MEM / CHILD / "memory.stat").write_text(f"cache {HUGE}\nrss 3\n")


NON_UTF8 = b"/caf\xe9-\xff"


def non_utf8_name(root: Path) -> None:
    """A cgroup whose directory name is not UTF-8."""
    d = root / MEM / "process_api"
    bad = os.fsencode(str(d)) + NON_UTF8
    os.mkdir(bad)
    for name in ("memory.stat", "memory.usage_in_bytes", "memory.kmem.usage_in_bytes"):
        shutil.copy(d / name, os.fsdecode(bad + b"/" + name.encode()))


_FILES = ((b"memory.stat", b"cache 1\nrss 2\n"), (b"memory.usage_in_bytes", b"3\n"),
          (b"memory.kmem.usage_in_bytes", b"1\n"))


def _cgroup(path: bytes | str) -> None:
    os.mkdir(path)
    p = os.fsencode(path)
    for name, text in _FILES:
        with open(p + b"/" + name, "wb") as f:
            f.write(text)


def wide_tree(root: Path, n: int = 10_000) -> None:
    """`n` sibling cgroups under process_api (w0, w1, ...)."""
    base = root / MEM / "process_api"
    for i in range(n):
        _cgroup(base / f"w{i}")


def deep_tree(root: Path, depth: int = 2_000) -> None:
    """A chain of `depth` nested cgroups `d` under process_api, past PATH_MAX."""
    # Built relative to an open directory: the full path passes PATH_MAX (4096) near 1,000.
    fd = os.open(root / MEM / "process_api", os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            for name, text in _FILES:
                f = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(f, text)
                os.close(f)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Remove a tree however deep: rm -rf walks it without recursion, where shutil.rmtree
    (and pytest's tmp_path cleanup, which uses it) fails past ~1,000 levels."""
    subprocess.run(["rm", "-rf", str(path)], check=True)


# Every fault root by name (the collector fault-injection cases of issue 9).
BUILDERS: dict[str, Callable[[Path], None]] = {
    "FIFO as /proc files": lambda r: proc_files_as(r, "fifo"),
    "/dev/zero symlink as /proc files": lambda r: proc_files_as(r, "/dev/zero"),
    "FIFO as memory.stat": lambda r: cgroup_file_as(r, "fifo"),
    "/dev/zero symlink as memory.stat": lambda r: cgroup_file_as(r, "/dev/zero"),
    "symlink loops as files": symlink_loop_files,
    "symlink loops in the tree": symlink_loops_in_tree,
    "2 MiB memory.stat": long_file,
    "truncated, binary, empty files": truncated_binary_empty,
    "empty vmstat": empty_vmstat,
    "u64 and huge numbers": u64_and_huge,
    "non-UTF-8 cgroup name": non_utf8_name,
    "tree 10,000 wide": wide_tree,
    "tree 2,000 deep": deep_tree,
}
