"""Removed cgroups grouped by parent and name pattern, kept where they may still be dying."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.removedgroups import (
    Above,
    Removal,
    group_removed,
    label,
    name_pattern,
    path_pattern,
)

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
MIB = 1 << 20


@pytest.mark.parametrize(("name", "want"), [
    ("job-123", "job-*"),
    ("job-7.service", "job-*.service"),
    ("session-12.scope", "session-*.scope"),
    ("docker-3f2a9c0be81d44d7a0c1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3.scope",
     "docker-*.scope"),
    ("pod123e4567-e89b-12d3-a456-426614174000", "pod*"),
    ("cri-containerd-deadbeef0001.scope", "cri-containerd-*.scope"),
    ("user.slice", "user.slice"),  # nothing varying
    ("run-u42", "run-u*"),
    ("cafe", "cafe"),  # hex letters without a digit: a word, not an id
    ("a1-2-3", "a*-*-*"),
])
def test_name_patterns(name: str, want: str) -> None:
    assert name_pattern(name) == want


def test_path_patterns() -> None:
    assert path_pattern("/") == "/"
    assert path_pattern("/kubepods/pod-1/ctr-22") == "/kubepods/pod-*/ctr-*"


def removal(path: str, minutes: int, **kw: int) -> Removal:
    return Removal("memory", path, T0 + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]


def test_thousands_of_alike_removals_are_one_group_with_a_count() -> None:
    rows = [removal(f"/jobs/job-{i}", i // 100, file_bytes=8192 if i % 2 else 0)
            for i in range(3000)]
    above = {("memory", "/jobs"): Above("/jobs", {"page cache": 12 * MIB})}
    v = group_removed(rows, "objcg-kmem", above, freed_before=None, dying_now=2500)
    assert len(v.groups) == 1
    g = v.groups[0]
    assert (g.path, g.count, g.charged, g.file_bytes) == ("/jobs/job-*", 3000, 1500, 1500 * 8192)
    assert g.parents == {"/jobs"} and g.held_above == 12 * MIB
    assert (v.considered, v.kept, v.known_freed, v.not_pinned) == (3000, 3000, 0, 0)
    assert v.under == {("memory", "/jobs"): 3000}
    # the first of the newest minute's (the database lists newest first), and the label of
    # one that left page cache, not of one whose last sample saw nothing
    assert g.newest_at == T0 + timedelta(minutes=29) and g.example == "/jobs/job-2900"
    assert g.likely_pin.startswith("page cache")
    assert g.mix == {"page cache": 1500, "nothing charged, charge left above": 1500}


def test_a_group_whose_removals_left_different_charge_says_the_mix() -> None:
    """The tester's group of 30: half left tmpfs (and page cache), half page cache only. It
    was labelled tmpfs/shmem for all 30 (one removal's label)."""
    rows = [removal(f"/jobs/job-{i}", i, file_bytes=8192,
                    **({"shmem_bytes": 4096} if i % 2 else {})) for i in range(30)]
    above = {("memory", "/jobs"): Above("/jobs", {"page cache": MIB, "tmpfs/shmem": MIB})}
    v = group_removed(rows, "objcg-kmem", above, freed_before=None, dying_now=30)
    [g] = v.groups
    assert g.count == 30 and g.mix == {"tmpfs/shmem": 15, "page cache": 15}
    assert g.likely_pin == "mixed, by each one's last sample: 15 page cache, 15 tmpfs/shmem"
    # One kind alone keeps its full label.
    same = group_removed(rows[1::2], "objcg-kmem", above, freed_before=None, dying_now=30)
    assert same.groups[0].mix == {"tmpfs/shmem": 15}
    assert same.groups[0].likely_pin.startswith("tmpfs/shmem: stays until the files")


def test_the_mix_follows_the_era() -> None:
    """Kernel stacks pin before 5.13 only: the same removals are a mix there, not since."""
    rows = [removal("/j/a-1", 1, kernel_stack_bytes=16384),
            removal("/j/a-2", 2, file_bytes=4096)]
    assert group_removed(rows, "objcg", {}, freed_before=None, dying_now=2).groups[0].mix == {
        "kernel stacks": 1, "page cache": 1}
    late = group_removed(rows, "objcg-kmem", {}, freed_before=None, dying_now=2)
    assert late.groups[0].mix == {"page cache": 1} and late.not_pinned == 1


def test_known_freed_and_unpinned_are_left_out() -> None:
    rows = [removal("/a/old-1", 0, file_bytes=4096),  # before the host had 0 dying
            removal("/a/new-2", 10, file_bytes=4096),  # page cache: kept
            removal("/a/new-3", 11),  # nothing charged, nothing above: not pinned (v1)
            removal("/b/x-4", 12)]  # nothing charged, but /b holds shmem: kept
    above = {("memory", "/b"): Above("/b", {"tmpfs/shmem": MIB})}
    v = group_removed(rows, "objcg-kmem", above, freed_before=T0 + timedelta(minutes=5),
                      dying_now=1)
    assert (v.considered, v.known_freed, v.not_pinned, v.kept) == (4, 1, 1, 2)
    assert [(g.path, g.count) for g in v.groups] == [("/a/new-*", 1), ("/b/x-*", 1)]
    assert v.groups[1].likely_pin.startswith("nothing charged in its last sample, but /b "
                                             "still holds tmpfs/shmem")


def test_cgroup2_dying_counts_decide_per_subtree() -> None:
    rows = [Removal("unified", "/done/job-1", T0), Removal("unified", "/busy/job-2", T0),
            Removal("unified", "/busy/deep/job-3", T0)]  # /busy/deep went too
    above = {("unified", "/done"): Above("/done", {}, 0),
             ("unified", "/busy"): Above("/busy", {}, 2)}
    v = group_removed(rows, "objcg-kmem", above, freed_before=None, dying_now=2)
    assert v.known_freed == 1  # nothing dying under /done: freed for sure
    assert {g.path for g in v.groups} == {"/busy/job-*", "/busy/deep/job-*"}
    assert all("the kernel counts 2 dying under /busy" in g.likely_pin for g in v.groups)
    assert v.under == {("unified", "/busy"): 2}


def test_a_stale_empty_sample_is_not_called_freed_against_the_evidence() -> None:
    r = removal("/jobs/job-1", 0)  # its last sample showed nothing charged
    freed = "nothing charged when last seen: freed shortly after removal"
    assert label("objcg-kmem", r, None) == freed  # nothing says otherwise (v1)
    assert label("objcg-kmem", r, Above("/jobs")) == freed
    assert label("objcg-kmem", r, Above("/jobs", {"page cache": 4096})) != freed
    assert label("objcg-kmem", r, Above("/jobs", {}, 3)) != freed
    assert label("objcg-kmem", r, Above("/jobs", {}, 0)).startswith("freed: no dying")


def test_era_decides_which_kernel_charge_pins() -> None:
    r = removal("/j/k-1", 0, kernel_stack_bytes=16384, slab_bytes=8192)
    assert label("objcg", r, None).startswith("kernel stacks")
    assert label("pre-5.3", r, None).startswith("kernel stacks")
    assert label("objcg-kmem", r, None) == ("nothing charged when last seen: freed shortly "
                                            "after removal")
    v = group_removed([r], "objcg-kmem", {}, freed_before=None, dying_now=None)
    assert v.not_pinned == 1 and not v.groups
