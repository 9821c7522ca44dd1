"""Live: the residual of the kernel's hierarchical counters is what removed children hold.

On this kernel (6.18, v1 memory hierarchy), a child's page cache and tmpfs pages stay charged
to its dying memcg after rmdir, and so stay in the parent's `total_*` figures while leaving
its live children's: the parent's residual (app/domain/pins.py) equals them to the page,
falls to 0 when `drop_caches 1` frees the page cache, and the tmpfs part when its file goes.
Measured by the real collector's series table; only our own cgroups are read.
"""

from __future__ import annotations

import os

import pytest

from app.collector.scrape import Collector, CollectorOptions
from app.domain.cgtable import KMEM_USAGE
from app.domain.pins import breakdown, residual_table, residuals
from tests.conftest import require
from tests.live import Lab

pytestmark = pytest.mark.live
KIB = 1024


def _residual(lab: Lab, children: int) -> dict[str, int]:
    snap = Collector(CollectorOptions()).collect()  # a fresh collector: its first series
    assert snap.series is not None
    rel = "/" + lab.parent.name
    got = [r for r in residuals(snap.series, cpus=os.cpu_count() or 1)
           if r.hierarchy == "memory" and r.path == rel]
    assert len(got) == 1, f"no residual for {rel}"
    r = got[0]
    assert r.children == children  # our live children, and only them
    assert breakdown(r, "objcg-kmem").residual is r
    return {k: r.held(k) for k in ("file", "dirty", "shmem", "anon")}


def test_parent_residual_is_what_removed_children_left(lab: Lab) -> None:
    keep = lab.child("keep")
    lab.write_file(keep, lab.files, kib=256)  # the live child's own page cache
    gone = lab.child("gone")
    tmp = lab.child("tmp")
    lab.write_file(gone, lab.files, kib=8192)
    lab.write_file(tmp, lab.shm, kib=1024)
    before = _residual(lab, 3)
    assert before == {"file": 0, "dirty": 0, "shmem": 0, "anon": 0}, before
    os.sync()  # clean pages: what drop_caches can free
    lab.rmdir([gone, tmp])
    left = _residual(lab, 1)
    # v1 `cache` holds shmem: the 1 MiB of tmpfs is shmem, the 8 MiB of ext4 is page cache.
    assert left["file"] + left["dirty"] == 8192 * KIB, left
    assert left["shmem"] == 1024 * KIB, left
    lab.drop_caches(1)
    dropped = _residual(lab, 1)
    assert dropped["file"] + dropped["dirty"] == 0 and dropped["shmem"] == 1024 * KIB, dropped
    for f in lab.shm.iterdir():
        f.unlink()
    assert _residual(lab, 1)["shmem"] == 0


def test_dirty_page_cache_is_not_dropped_until_written_back(lab: Lab) -> None:
    keep = lab.child("keep")
    gone = lab.child("dirty")
    target = lab.files / "dirty"
    # Append (new blocks, no sync): the child leaves 4 MiB of dirty page cache behind.
    lab.run_in(gone, f"head -c {4096 * KIB} /dev/zero > '{target}'")
    lab.rmdir([gone])
    left = _residual(lab, 1)
    assert left["file"] + left["dirty"] >= 4096 * KIB, left
    if left["dirty"] == 0:
        pytest.fail(f"the kernel wrote the pages back before we looked: {left}")
    with open("/proc/sys/vm/drop_caches", "w") as f:  # no sync first
        f.write("1\n")
    kept = _residual(lab, 1)
    assert kept["dirty"] > 0 and kept["file"] + kept["dirty"] >= left["dirty"], kept
    lab.drop_caches(1)  # sync, then drop
    gone_all = _residual(lab, 1)
    assert gone_all["file"] + gone_all["dirty"] == 0, gone_all
    assert keep.exists()


def test_v1_kmem_of_a_leaf_is_its_own_and_removed_childrens_only_with_removals(
        lab: Lab) -> None:
    """v1 memory.kmem.usage_in_bytes is hierarchical, with no figure of a cgroup's own: a
    leaf whose task made 20,000 negative dentries shows them as its kmem, and its "residual"
    is all of it. That is its own kernel memory, not held by dying descendants: unknown,
    never charted (on the tester's host it was 166 of the 167 MB of "kernel memory").
    Its parent, with a removed child's dentries below it and no anon of its own, has that
    child's kernel memory as its residual, counted only when a removal record says so."""
    require(lab.root.name == "memory", "a v1 memory hierarchy (memory.kmem.usage_in_bytes)")
    keep = lab.child("keep")
    gone = lab.child("gone")
    lab.negative_dentries(keep)
    lab.negative_dentries(gone)
    lab.rmdir([gone])
    snap = Collector(CollectorOptions()).collect()
    assert snap.series is not None
    parent, leaf = "/" + lab.parent.name, "/" + lab.parent.name + "/keep"
    rows = {(h, p): i for i, (h, p) in enumerate(zip(snap.series.hierarchies,
                                                     snap.series.paths, strict=True))}
    i_leaf, i_parent = rows[("memory", leaf)], rows[("memory", parent)]
    kmem_col = snap.series.columns.index(KMEM_USAGE)
    leaf_kmem = snap.series.values[kmem_col][i_leaf]
    assert leaf_kmem >= 20000 * 192 // 2, leaf_kmem  # its own dentries (192 B each)
    cpus = os.cpu_count() or 1
    plain = residual_table(snap.series, cpus=cpus)
    v, ok = plain.kinds["kernel"]
    assert ok[i_leaf] and v[i_leaf] == leaf_kmem  # a leaf's residual is all its kmem
    assert plain.unknown["kernel"][i_leaf] and plain.held("kernel")[i_leaf] == 0
    assert plain.unknown["kernel"][i_parent] and plain.held("kernel")[i_parent] == 0
    told = residual_table(snap.series, cpus=cpus, removed_below={("memory", parent)})
    assert told.unknown["kernel"][i_leaf]  # still its own
    assert not told.unknown["kernel"][i_parent] and told.estimated["kernel"][i_parent]
    # The removed child's dentries, reparented to the parent's objcg, still in its kmem.
    assert told.held("kernel")[i_parent] >= 20000 * 192 // 2, told.held("kernel")[i_parent]
    assert told.totals("objcg-kmem").get(("kernel memory", True, False), 0) == 0
