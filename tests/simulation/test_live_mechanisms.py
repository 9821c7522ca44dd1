"""This machine as ground truth for the engine's mechanisms: dirty page cache, shared
dentries across generations, directory metadata charged to its first toucher.

Each scenario runs for real in memory cgroups of our own (v1 here; /var/tmp is ext4 and
/dev/shm tmpfs on this VM: `findmnt -T`), and through the engine in the objcg-kmem era (this
kernel, 6.18) with the same numbers; the outcome (dying or freed, how many, and the order of
magnitude of the pages that pin) must be the one the engine predicts. Dying memcgs are
counted by the collector, machine-wide, as deltas with retries (other processes make and
remove cgroups too); what our removed children hold is the residual of our own parent's
hierarchical counters (app/domain/pins.py), which no other process touches.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.collector.scrape import Collector, CollectorOptions
from app.domain.pins import residuals
from app.simulation.engine import simulate
from app.simulation.workload import (
    DENTRY,
    Event,
    JobClass,
    Kind,
    Leftover,
    Pressure,
    Workload,
)
from tests.live import Lab, settle

pytestmark = pytest.mark.live
KIB = 1024
PAGE = 4096
NONE = Pressure(slab_per_day=0.0, pagecache_per_day=0.0)
ERA = "objcg-kmem"


def residual(lab: Lab, children: int) -> dict[str, int]:
    """What our parent's removed children hold, bytes by kind (exact for file, shmem)."""
    snap = Collector(CollectorOptions()).collect()
    assert snap.series is not None
    rel = "/" + lab.parent.name
    # Our parent has removed children below it and no task of its own: its v1 kmem residual
    # is theirs (app/domain/pins.py counts it only where a removal record says so).
    got = [r for r in residuals(snap.series, cpus=os.cpu_count() or 1,
                                removed_below={("memory", rel)})
           if r.hierarchy == "memory" and r.path == rel]
    assert len(got) == 1, f"no residual for {rel}"
    assert got[0].children == children
    return {k: got[0].held(k) for k in ("file", "dirty", "shmem", "kernel")}


def drop_caches_without_sync(mode: int) -> None:
    Path("/proc/sys/vm/drop_caches").write_text(f"{mode}\n")


def rewarm_binaries() -> None:
    """After a drop_caches, read /bin/sh and its libraries back from outside our cgroups,
    so that a child running a shell reads (and is charged for) only what the scenario means."""
    subprocess.run(["/bin/sh", "-c", "head -c 1 /dev/null"], check=True)


@pytest.fixture
def shared_dirs() -> Iterator[list[Path]]:
    """Directories a test makes inside the lab's (removed before the lab deletes its files)."""
    made: list[Path] = []
    yield made
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


def kmem_usage(cgroup: Path) -> int:
    return int((cgroup / "memory.kmem.usage_in_bytes").read_text())


# --- dirty page cache ---------------------------------------------------------------------

def test_dirty_page_cache_survives_drop_caches_until_sync(lab: Lab) -> None:
    pages = 1024  # 4 MiB written, not synced
    w = Workload("dirty", (JobClass("job", 0, 0.5, (
        Leftover(Kind.PAGECACHE, pages, dirty_share=1.0),), period_seconds=1.0, count=1),),
        NONE, (Event(1.0, "drop_caches", 1), Event(2.0, "sync"),
               Event(2.5, "drop_caches", 1)), duration_seconds=4.0, step_seconds=0.5)
    e = simulate(w, [ERA]).eras[ERA]
    want = [e.dying[3], e.dying[7]]  # after the first drop (1.5 s), after sync + drop (3.5 s)
    assert want == [1, 0]
    assert e.memcg_refs[3] == pytest.approx(pages)  # every dirty page still charged
    seen = []
    for attempt in range(3):
        kid = lab.child(f"dirty-{attempt}")
        base = lab.dying()
        lab.run_in(kid, f"head -c {pages * PAGE} /dev/zero > '{lab.files}/dirty-{attempt}'")
        lab.rmdir([kid])
        drop_caches_without_sync(1)
        kept = residual(lab, 0)
        first = settle(lab.dying, base + want[0], 3.0) - base
        os.sync()
        drop_caches_without_sync(1)
        second = settle(lab.dying, base + want[1], 5.0) - base
        gone = residual(lab, 0)
        seen.append((first, second, kept, gone))
        if [first, second] == want and kept["dirty"] > 0:
            break
    first, second, kept, gone = seen[-1]
    assert [first, second] == want, f"model {want}, kernel per attempt {seen}"
    # The pages drop_caches left: dirty, and as many as the child wrote (to the page).
    assert kept["dirty"] > 0 and kept["file"] + kept["dirty"] >= pages * PAGE, kept
    assert gone["file"] + gone["dirty"] == 0, gone


# --- shared dentries across generations -----------------------------------------------------

def test_shared_dentries_do_not_keep_their_first_generation_dying(
        lab: Lab, shared_dirs: list[Path]) -> None:
    n = 2000
    w = Workload("generations", (JobClass("gen", 0, 1.0, (), period_seconds=2.0, count=2,
                                          shared_leftovers=(Leftover(Kind.SLAB, n, DENTRY),)),),
                 NONE, duration_seconds=6.0, step_seconds=1.0)
    r = simulate(w, [ERA, "pre-5.3"]).eras
    want = r[ERA].dying[-1]
    assert want == 0
    assert r["pre-5.3"].dying[-1] == 1  # where slab pins, generation 1 would stay dying
    shared = lab.shm / "shared"
    shared.mkdir()
    shared_dirs.append(shared)
    seen = []
    for attempt in range(3):
        gen1 = lab.child(f"gen1-{attempt}")
        base = lab.dying()
        # Generation 1 creates the files (dentries, shmem inodes; tmpfs: no page cache).
        lab.run_in(gen1, f"i=0; while [ $i -lt {n} ]; do : > '{shared}/f-{attempt}-'$i; "
                   "i=$((i+1)); done")
        charged = kmem_usage(gen1)
        lab.rmdir([gen1])
        # Generation 2 looks the same paths up: the objects are there, charged to gen 1.
        gen2 = lab.child(f"gen2-{attempt}")
        lab.run_in(gen2, f"i=0; while [ $i -lt {n} ]; do [ -e '{shared}/f-{attempt}-'$i ]; "
                   "i=$((i+1)); done")
        recharged = kmem_usage(gen2)
        got = settle(lab.dying, base + want, 3.0) - base
        held = residual(lab, 1)
        lab.rmdir([gen2])
        seen.append((got, charged, recharged, held))
        if got == want:
            break
    got, charged, recharged, held = seen[-1]
    assert got == want, f"model {want}, kernel per attempt {seen}"
    # The objects live on (the files exist), charged to the parent now (objcg reparented):
    # gen 1's kernel memory is in our parent's residual; gen 2 charged almost nothing.
    per_file = 192  # a dentry at least
    assert charged > n * per_file, charged
    assert held["kernel"] >= n * per_file, held
    assert recharged < charged / 4, (recharged, charged)


# --- directory metadata ------------------------------------------------------------------------

def test_directory_blocks_pin_their_first_toucher(lab: Lab, shared_dirs: list[Path]) -> None:
    m, k = 512, 8
    # What the first lookup reads on ext4 (4 KiB blocks, 256-byte inodes: the mke2fs
    # default [assumption]): the directory's blocks (a dirent of a short name is 12 bytes)
    # and the inode-table blocks of its m inodes, 16 to a block.
    pages = math.ceil(m * 12 / PAGE) + math.ceil(m / 16)
    w = Workload("dir", (JobClass("job", 0, 0.5, (), period_seconds=1.0, count=k,
                                  shared_leftovers=(Leftover(Kind.PAGECACHE, pages),)),),
                 NONE, (Event(k + 1.0, "drop_caches", 1),), duration_seconds=k + 3.0,
                 step_seconds=0.5)
    e = simulate(w, [ERA]).eras[ERA]
    want = [e.dying[2 * k + 1], e.dying[-1]]  # after the churn; after drop_caches 1
    assert want == [1, 0]
    model_pages = e.memcg_refs[2 * k + 1]
    shared = lab.files / "dir"
    shared.mkdir()
    shared_dirs.append(shared)
    for i in range(m):
        (shared / f"f{i}").touch()
    seen = []
    for attempt in range(3):
        lab.drop_caches(1)  # sync, then evict the directory and inode-table blocks
        rewarm_binaries()
        base = lab.dying()
        kids = [lab.child(f"d{attempt}-{i}") for i in range(k)]
        for kid in kids:
            lab.run_in(kid, f"for f in '{shared}'/*; do [ -e \"$f\" ]; done")
        lab.rmdir(kids)
        got = [settle(lab.dying, base + want[0], 3.0) - base]
        held = residual(lab, 0)
        lab.drop_caches(1)
        got.append(settle(lab.dying, base + want[1], 5.0) - base)
        after = residual(lab, 0)
        seen.append((got, held, after))
        # The order of magnitude: inode-table readahead (inode_readahead_blks, 32 here) may
        # read more blocks than the lookups need, or fewer if the table holds fewer inodes;
        # blocks another process read first are charged to it (an attempt then sees few).
        measured = (held["file"] + held["dirty"]) / PAGE
        if got == want and model_pages / 3 <= measured <= model_pages * 3:
            break
    got, held, after = seen[-1]
    # The model: the first of k children is pinned by the blocks, the other k - 1 are freed
    # (without the shared charge all k would stay dying), and drop_caches 1 frees it. The
    # kernel here pinned 1 to 3 of 8 in full runs: a few blocks (inode-table readahead, an
    # atime update) are first touched by a later child. So: few, not all, and none after
    # drop_caches (which may free other processes' dying memcgs too: the delta can go below 0).
    for g, _, _ in seen:
        assert want[0] <= g[0] <= k // 2 and g[1] <= want[1] == 0, (want, seen)
    # The pages: a cold first read holds the model's order of magnitude. A later attempt
    # may find blocks still cached (drop_caches does not evict metadata the journal holds:
    # seen, 3 pages), so the largest attempt is compared.
    most = max((h["file"] + h["dirty"]) / PAGE for _, h, _ in seen)
    assert model_pages / 3 <= most <= model_pages * 3, (most, model_pages, seen)
    assert after["file"] + after["dirty"] == 0, after
