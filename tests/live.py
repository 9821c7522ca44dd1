"""Helpers for live tests: memory cgroups of the test's own, and workloads run inside them.

Only cgroups under a parent this module creates are ever touched. Other processes on the
machine create and remove cgroups too, so measurements are deltas of the collector's count.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.collector.scrape import Collector, CollectorOptions
from tests.conftest import require

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


def memory_cgroup_root() -> Path | None:
    """Where memory cgroups can be made here: the v1 memory hierarchy, or cgroup2 with memory."""
    if os.geteuid() != 0:
        return None
    if (V1 / "memory.usage_in_bytes").exists() and os.access(V1, os.W_OK):
        return V1
    ctrl = V2 / "cgroup.subtree_control"
    if ctrl.exists() and "memory" in ctrl.read_text().split():
        return V2
    return None


class Lab:
    """A parent memory cgroup of our own, its children, and their files on ext4 and tmpfs."""

    def __init__(self) -> None:
        root = memory_cgroup_root()
        require(root is not None, "no writable memory cgroup hierarchy (need root and a v1 "
                "memory hierarchy or cgroup2 with +memory)")
        assert root is not None
        self.root = root
        tag = f"slabscope-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.parent = root / tag
        self.parent.mkdir()
        if root == V2:
            (self.parent / "cgroup.subtree_control").write_text("+memory")
        self.files = Path("/var/tmp") / tag  # ext4 here: page cache
        self.shm = Path("/dev/shm") / tag  # tmpfs: shmem
        self.files.mkdir()
        self.shm.mkdir()
        self.warm()
        self.collector = Collector(CollectorOptions())

    def warm(self) -> None:
        """Bring the directories' ext4 metadata into page cache from this process first.

        A child that creates a file or looks a name up in a cold directory also reads
        directory and inode-table blocks, and that page cache is charged to the child and
        pins its memcg after rmdir (lab-findings.md 1: "one ext4 directory/metadata block").
        Warming them here, outside the test cgroups, leaves the children with only what each
        scenario means them to leave.
        """
        for d in (self.files, self.shm):
            for i in range(16):
                (d / f"warm-{i}").write_bytes(b"x" * 4096)
            for i in range(16):
                (d / f"warm-{i}").unlink()
        for i in range(2000):
            os.path.exists(self.files / f"warm-neg-{i}")
        os.sync()

    def dying(self) -> int:
        """The collector's dying-memcg count right now."""
        count = self.collector.collect().memcg.dying
        assert count is not None
        return count

    def child(self, name: str) -> Path:
        path = self.parent / name
        path.mkdir()
        return path

    def run_in(self, cgroup: Path, script: str) -> None:
        """Run a dash script whose first act is to move itself into `cgroup`."""
        procs = cgroup / "cgroup.procs"
        subprocess.run(["/bin/sh", "-c", f"echo 0 > '{procs}' && {script}"], check=True,
                       timeout=60)

    def write_file(self, cgroup: Path, where: Path, kib: int = 64) -> None:
        """Page cache (ext4) or shmem (tmpfs) charged to `cgroup`, left behind on exit.

        On ext4 the file and its data blocks are made here first, synced and evicted from
        the page cache; the child rewrites them in place, so all it leaves is its own data
        pages (no block allocation, no bitmap, inode or journal page read on its behalf).
        On tmpfs there is no such metadata: the child appends to a file made here.
        """
        target = where / cgroup.name
        if where == self.shm:
            target.touch()
            self.run_in(cgroup, f"head -c {kib * 1024} /dev/zero >> '{target}'")
            return
        target.write_bytes(b"\0" * (kib * 1024))
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        os.sync()
        self.run_in(cgroup, f"head -c {kib * 1024} /dev/zero 1<> '{target}'")

    def negative_dentries(self, cgroup: Path, n: int = 20000) -> None:
        """Only slab: look up n missing names with dash builtins (no page cache, no forks)."""
        # In our own small directory, whose one block warm() brought in: no page cache here.
        self.run_in(cgroup, f"i=0; while [ $i -lt {n} ]; do [ -e '{self.files}/neg-"
                    f"{cgroup.name}-'$i ]; i=$((i+1)); done")

    @staticmethod
    def rmdir(cgroups: list[Path]) -> None:
        for c in cgroups:
            c.rmdir()

    @staticmethod
    def drop_caches(mode: int) -> None:
        os.sync()  # dirty pages cannot be dropped
        Path("/proc/sys/vm/drop_caches").write_text(f"{mode}\n")

    def delete_files(self) -> None:
        for d in (self.files, self.shm):
            for f in d.iterdir():
                f.unlink()

    def close(self) -> None:
        for c in sorted(self.parent.iterdir(), reverse=True):
            if c.is_dir():
                c.rmdir()
        self.parent.rmdir()
        shutil.rmtree(self.files, ignore_errors=True)
        shutil.rmtree(self.shm, ignore_errors=True)


def settle(measure: Callable[[], int], want: int, seconds: float) -> int:
    """Poll `measure` until it returns `want` or time runs out; return the last value."""
    deadline = time.monotonic() + seconds
    value = measure()
    while value != want and time.monotonic() < deadline:
        time.sleep(0.1)
        value = measure()
    return value


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A Lab for one test, cleaned up afterwards (files deleted, page cache dropped)."""
    lab = Lab()
    try:
        yield lab
    finally:
        lab.delete_files()
        lab.drop_caches(1)
        lab.close()
