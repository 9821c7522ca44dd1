"""Residuals of hierarchical counters: what dying descendants hold (app/domain/pins.py)."""

from __future__ import annotations

import pytest

from app.domain.cgtable import CGSTAT, KMEM_USAGE, STAT, table_from_rows
from app.domain.eras import ERAS, SlabPin
from app.domain.pins import (
    CATEGORY,
    KINDS,
    Residual,
    breakdown,
    parent_path,
    residual_table,
    residuals,
    top_leaking,
)

PAGE = 4096
MIB = 1 << 20


def v1(local: dict[str, int], total: dict[str, int], kmem: int | None = None) -> dict[str, int]:
    row = {STAT + k: v for k, v in local.items()}
    row.update({STAT + "total_" + k: v for k, v in total.items()})
    if kmem is not None:
        row[KMEM_USAGE] = kmem
    return row


def v2(stat: dict[str, int], dying: int | None = None) -> dict[str, int]:
    row = {STAT + k: v for k, v in stat.items()}
    if dying is not None:
        row[CGSTAT + "nr_dying_descendants"] = dying
    return row


KEYS_V1 = ("cache", "rss", "shmem", "dirty", "writeback", "swap")


def zero(**over: int) -> dict[str, int]:
    d = dict.fromkeys(KEYS_V1, 0)
    d.update(over)
    return d


def test_parent_path() -> None:
    assert parent_path("/") is None
    assert parent_path("/a") == "/"
    assert parent_path("/a/b/c") == "/a/b"
    assert parent_path("relative") is None


def test_v1_residual_is_total_less_local_less_live_children() -> None:
    # /jobs: 1 MiB page cache of its own; live child /jobs/a holds 3 MiB cache + 2 MiB rss;
    # removed children left 8,515,584 bytes of cache, of which 1 MiB tmpfs and 64 KiB dirty.
    left_cache, left_shmem, left_dirty = 8_515_584, MIB, 16 * PAGE
    child = v1(zero(cache=3 * MIB, rss=2 * MIB), zero(cache=3 * MIB, rss=2 * MIB),
               kmem=300 * PAGE)
    parent = v1(zero(cache=MIB),
                zero(cache=MIB + 3 * MIB + left_cache, rss=2 * MIB, shmem=left_shmem,
                     dirty=left_dirty),
                kmem=300 * PAGE + 50 * PAGE)
    t = table_from_rows(sorted(set(parent) | set(child)),
                        [("memory", "/jobs"), ("memory", "/jobs/a")], [parent, child])
    got = {r.path: r for r in residuals(t, cpus=2, removed_below={("memory", "/jobs")})}
    r = got["/jobs"]
    assert r.children == 1 and r.dying is None
    assert r.bytes["file"] == left_cache - left_shmem - left_dirty
    assert r.bytes["shmem"] == left_shmem and r.bytes["dirty"] == left_dirty
    assert r.bytes["anon"] == 0 and r.bytes["kernel"] == 50 * PAGE
    assert r.estimated == frozenset({"kernel"})  # kmem usage is hierarchical only
    # Small positive residuals are real (a page of metadata pins a memcg): kept.
    assert r.about_zero == frozenset() and r.held("kernel") == 50 * PAGE
    assert r.total == left_cache + 50 * PAGE
    # The leaf: nothing removed below it, anon of its own: its kmem usage is its own, not
    # kernel memory left by anyone (it was an "estimate" of 300 pages held by the dying).
    assert got["/jobs/a"].unknown == frozenset({"kernel"})
    leaf = breakdown(got["/jobs/a"], "pre-5.3")
    assert leaf.pinning_bytes == 0 and leaf.estimated_bytes == 0 and leaf.pins == ()
    top = breakdown(r, "pre-5.3")
    assert top.pinning_bytes == left_cache and top.estimated_bytes == 50 * PAGE
    assert [(p.category, p.measured) for p in top.pins] == [
        ("page cache", True), ("tmpfs/shmem", True), ("dirty page cache", True),
        ("kernel memory", False)]


def test_batching_noise_is_about_zero_and_torn_reads_are_flagged() -> None:
    tol = 64 * 4 * PAGE  # 4 CPUs
    parent = v1(zero(), zero(cache=10 * MIB - 100 * PAGE))  # children say more than parent
    child = v1(zero(cache=10 * MIB), zero(cache=10 * MIB))
    keys = [("memory", "/p"), ("memory", "/p/c")]
    r = residuals(table_from_rows(sorted(parent), keys, [parent, child]), cpus=4)[0]
    assert r.bytes["file"] == -100 * PAGE and "file" in r.about_zero and r.held("file") == 0
    assert "file" not in r.inconsistent
    parent = v1(zero(), zero(cache=10 * MIB - tol - PAGE))
    r = residuals(table_from_rows(sorted(parent), keys, [parent, child]), cpus=4)[0]
    assert "file" in r.inconsistent and r.held("file") == 0
    # A positive residual within batching is kept: it may be one real page.
    parent = v1(zero(), zero(cache=10 * MIB + PAGE))
    r = residuals(table_from_rows(sorted(parent), keys, [parent, child]), cpus=4)[0]
    assert r.held("file") == PAGE and not r.about_zero


def test_v2_residual_counts_dying_and_flags_cgroups_that_may_have_tasks() -> None:
    stat = {"file": 0, "shmem": 0, "file_dirty": 0, "file_writeback": 0, "anon": 0,
            "slab": 0, "kernel_stack": 0, "sock": 0, "percpu": 0}
    a = dict(stat, file=40 * MIB, shmem=4 * MIB, anon=100 * MIB, slab=3 * MIB, percpu=MIB)
    b = dict(stat, file=10 * MIB, anon=20 * MIB, slab=MIB)
    # /sys: its dying descendants hold 30 MiB clean cache, 8 MiB tmpfs, 2 MiB dirty,
    # 6 MiB slab (reparented since 5.3), 1 MiB percpu; 7 dying, 2 of them under /sys/a.
    parent = dict(stat, file=40 * MIB + 10 * MIB + 30 * MIB + 8 * MIB + 2 * MIB,
                  shmem=4 * MIB + 8 * MIB, file_dirty=2 * MIB, anon=120 * MIB,
                  slab=4 * MIB + 6 * MIB, percpu=2 * MIB)
    rows = [v2(parent, dying=7), v2(a, dying=2), v2(b, dying=0)]
    keys = [("unified", "/sys"), ("unified", "/sys/a"), ("unified", "/sys/b")]
    got = {r.path: r for r in residuals(table_from_rows(sorted(rows[0]), keys, rows),
                                         cpus=2)}
    r = got["/sys"]
    assert r.dying == 5 and r.estimated == frozenset()
    assert (r.held("file"), r.held("shmem"), r.held("dirty")) == (30 * MIB, 8 * MIB, 2 * MIB)
    assert r.held("slab") == 6 * MIB and r.held("percpu") == MIB and r.held("anon") == 0
    # A leaf may run processes of its own: its "residual" is an estimate.
    assert got["/sys/a"].estimated and got["/sys/a"].dying == 2

    pre = {p.category: p for p in breakdown(r, "pre-5.3").pins}
    assert pre["kernel memory"].pins and pre["kernel memory"].bytes == 7 * MIB
    now = breakdown(r, "objcg-kmem")
    by = {(p.category, p.pins): p.bytes for p in now.pins}
    assert by[("kernel memory", False)] == 7 * MIB  # slab and percpu: reparented
    assert by[("page cache", True)] == 30 * MIB and by[("tmpfs/shmem", True)] == 8 * MIB
    assert now.pinning_bytes == 40 * MIB
    assert breakdown(r, "lru-reparent").pinning_bytes == 0
    # Pinning first, largest first.
    assert [p.category for p in now.pins][:3] == ["page cache", "tmpfs/shmem",
                                                  "dirty page cache"]


def test_top_leaking_ranks_subtrees_by_pinning_charge() -> None:
    stat = {"file": 0, "shmem": 0, "anon": 0, "slab": 0}
    rows = [v2(dict(stat, file=5 * MIB), dying=3), v2(dict(stat, file=MIB), dying=1),
            v2(dict(stat, slab=50 * MIB), dying=9), v2(dict(stat), dying=0),
            v2(dict(stat), dying=0)]
    keys = [("unified", "/a"), ("unified", "/a/x"), ("unified", "/b"), ("unified", "/b/x"),
            ("unified", "/c")]
    res = residuals(table_from_rows(sorted(rows[0]),
                                    keys, rows), cpus=1)
    top = top_leaking(res, "objcg-kmem")
    # /b/x and /c have no dying memcg below them: their figures are their own.
    assert [(b.residual.path, b.residual.dying) for b in top] == [("/b", 9), ("/a", 2),
                                                                  ("/a/x", 1)]
    assert top[1].pinning_bytes == 4 * MIB
    assert top[0].pinning_bytes == 0 and top[0].unexplained  # slab: reparented
    assert top_leaking(res, "pre-5.3")[0].pinning_bytes == 50 * MIB  # slab pins here
    assert not top_leaking(res, "pre-5.3")[0].unexplained


def test_hierarchy_without_memory_stat_gives_nothing() -> None:
    rows = [{CGSTAT + "nr_dying_descendants": 4}, {CGSTAT + "nr_dying_descendants": 0}]
    t = table_from_rows([CGSTAT + "nr_dying_descendants"],
                        [("unified", "/"), ("unified", "/x")], rows)
    assert residuals(t, cpus=2) == []


def test_totals_equal_the_sum_of_the_records_breakdowns() -> None:
    stat = {"file": 0, "shmem": 0, "anon": 0, "slab": 0, "file_dirty": 0,
            "file_writeback": 0}
    rows = [v2(dict(stat, file=90 * MIB, shmem=10 * MIB, anon=5 * MIB, slab=7 * MIB), dying=6),
            v2(dict(stat, file=20 * MIB, slab=2 * MIB), dying=1),
            v2(dict(stat, file=3 * MIB), dying=0),
            v2(dict(stat, file=60 * MIB, shmem=10 * MIB, anon=5 * MIB, slab=MIB), dying=2),
            v2(dict(stat, file=MIB), dying=0)]
    keys = [("unified", "/"), ("unified", "/a"), ("unified", "/a/x"), ("unified", "/b"),
            ("unified", "/b/y")]
    t = table_from_rows(sorted(rows[0]), keys, rows)
    rt = residual_table(t, cpus=2)
    for era in ("pre-5.3", "objcg-kmem"):
        want: dict[tuple[str, bool, bool], int] = {}
        for r in residuals(t, cpus=2):
            for p in breakdown(r, era).pins:
                key = (p.category, p.pins, p.measured)
                want[key] = want.get(key, 0) + p.bytes
        assert rt.totals(era) == want
    got = rt.totals("objcg-kmem")
    # /: 90-20-60 = 10 MiB file, of which 0 shmem beyond /b's; estimated (the root).
    assert got[("page cache", True, False)] == 10 * MIB
    # /a: 17 MiB page cache measured; /b: 49 MiB (59 - 10 shmem) + 10 MiB tmpfs.
    assert got[("page cache", True, True)] == 17 * MIB + 49 * MIB
    assert got[("tmpfs/shmem", True, True)] == 10 * MIB
    assert got[("kernel memory", False, True)] == 2 * MIB + MIB  # reparented slab


def test_v1_kmem_of_cgroups_with_tasks_or_no_removals_is_unknown_not_kernel_memory() -> None:
    """The tester's v1 host: the leaves' own kmem summed to 166 MB of the 167 MB at the root,
    and all of it was charted as "kernel memory, estimated". Now only a cgroup with no anon
    of its own and a removal below it has its kmem residual counted (own taken as 0)."""
    leaf_kmem, left_kmem = 80 * MIB, 3 * MIB
    root = v1(zero(rss=10 * MIB), zero(rss=10 * MIB + 2 * MIB), kmem=2 * leaf_kmem
              + left_kmem + MIB)
    jobs = v1(zero(), zero(rss=2 * MIB), kmem=leaf_kmem + left_kmem)  # no anon of its own
    leaf_a = v1(zero(rss=MIB), zero(rss=MIB), kmem=leaf_kmem)
    svc = v1(zero(rss=MIB), zero(rss=MIB), kmem=leaf_kmem)
    keys = [("memory", "/"), ("memory", "/jobs"), ("memory", "/jobs/a"), ("memory", "/svc")]
    t = table_from_rows(sorted(root), keys, [root, jobs, leaf_a, svc])
    removed = {("memory", "/"), ("memory", "/jobs")}  # a job was removed from /jobs
    rt = residual_table(t, cpus=2, removed_below=removed)
    got = rt.totals("5.3")  # kernel pages still pin in 5.3
    assert got == {("kernel memory", True, False): left_kmem,
                   ("anonymous memory", True, True): MIB}
    # Left out, said apart: the root's own (it has tasks) and the leaves' own kmem.
    assert rt.unknown_bytes("kernel") == MIB + 2 * leaf_kmem
    recs = {r.path: r for r in residuals(t, cpus=2, removed_below=removed)}
    assert recs["/jobs"].estimated == frozenset({"kernel"})
    assert recs["/jobs"].held("kernel") == left_kmem
    assert recs["/"].unknown == frozenset({"kernel"}) and recs["/"].held("kernel") == 0
    # No removal record below /jobs: unknown there too.
    assert residual_table(t, cpus=2).totals("5.3") == {("anonymous memory", True, True): MIB}


ERA_PINS = {  # era -> kinds whose charge pins (kernel-notes.md 2, 'Pins and release by era')
    "pre-5.3": set(KINDS),
    "v4-5/7": set(KINDS),
    "5.3": set(KINDS) - {"slab"},
    "objcg": set(KINDS) - {"slab", "percpu"},
    "objcg-kmem": {"file", "dirty", "shmem", "anon", "swap", "sock"},
    "lru-reparent": {"sock"},
}


@pytest.mark.parametrize("era", list(ERAS))
def test_every_kinds_pin_flag_comes_from_the_era_registry(era: str) -> None:
    """The breakdown's `pins` per kind is the registry's: kernel memory (slab, stacks,
    percpu, v1 kmem) reparented since 5.13, as `slabscope doctor` says; sockets pin while
    open in every era. The chart said "kernel memory" pins in objcg-kmem."""
    r = Residual("memory", "/p", {k: MIB for k in KINDS}, None)
    pins = {k: p.pins for p in breakdown(r, era).pins for k in p.kinds}
    assert set(pins) == set(KINDS)
    assert {k for k, v in pins.items() if v} == ERA_PINS[era]
    assert {k for k, v in pins.items() if not v} == set(ERAS[era].reparented_kinds)
    # Since 5.13 no kernel memory line pins (5.3-5.12: slab apart from stacks and kmem).
    kernel = {p.pins for p in breakdown(r, era).pins if p.category == CATEGORY["kernel"]}
    assert kernel == ({False} if not ERAS[era].kmem_pages_pin else
                      {True} if ERAS[era].slab_pin is not SlabPin.NONE else {True, False})
