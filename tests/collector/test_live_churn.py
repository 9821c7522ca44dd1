"""Live: cgroups that live less than 100 ms are counted exactly from kernfs ids.

The kernel facts app/domain/churn.py stands on, on this kernel: a new cgroup takes 1 + its
file count of the hierarchy's kernfs ids, ids only grow, and a directory's inode number is
its id. Other processes on the machine make cgroups too, so an attempt counts only when no
one else made one meanwhile (up to three attempts, as the other live tests do).
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from app.domain.churn import Listing, churn, stride_of
from app.domain.samples import HierarchyChurn
from tests.conftest import require
from tests.live import Lab

pytestmark = pytest.mark.live
N = 50


def _listing(root: str, newest: int = 0) -> Listing:
    count = 1
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    count += 1
                    newest = max(newest, e.inode())
                    stack.append(e.path)
    return Listing(newest, count)


def test_short_lived_cgroups_are_counted_exactly(lab: Lab) -> None:
    root = str(lab.root)
    seen = []
    for attempt in range(3):
        before = _listing(root)
        started = time.monotonic()
        for i in range(N):
            c = lab.parent / f"short-{attempt}-{i}"
            c.mkdir()
            subprocess.run(["/bin/sh", "-c", f"echo 0 > '{c}/cgroup.procs'"], check=True)
            c.rmdir()
        lived = (time.monotonic() - started) / N
        marker = lab.child(f"marker-{attempt}")
        stride = stride_of(len(os.listdir(marker)))
        now = _listing(root, before.newest_id)
        got = churn(before, now, stride)
        assert got is not None
        seen.append((got, round(lived * 1000)))
        if got.created == N + 1 and got.removed == N and got.exact:
            break
    assert lived < 0.1, f"each cgroup lived {lived * 1000:.0f} ms"
    assert seen[-1][0].created == N + 1 and seen[-1][0].removed == N, seen


def _of(churns: tuple[HierarchyChurn, ...], kind: str) -> HierarchyChurn | None:
    return next((c for c in churns if c.hierarchy == kind), None)


def test_the_collector_counts_cgroups_it_never_listed(lab: Lab) -> None:
    """Through the real collector (Collector.collect, as the daemon ticks): 50 cgroups made
    and removed between two ticks, each living < 100 ms, and a marker that stays.

    Other processes may make or remove cgroups in the same interval: the count is at least
    ours always, and exactly ours in an attempt where no one else did (up to three)."""
    kind = "memory" if lab.root.name == "memory" else "unified"
    collector = lab.collector
    collector.collect()  # the baseline (a first tick counts nothing)
    seen: list[tuple[HierarchyChurn, int]] = []
    for attempt in range(3):
        first = collector.collect()
        assert first.churn, "the second tick of a boot counts churn"
        started = time.monotonic()
        for i in range(N):
            c = lab.parent / f"tick-{attempt}-{i}"
            c.mkdir()
            subprocess.run(["/bin/sh", "-c", f"echo 0 > '{c}/cgroup.procs'"], check=True)
            c.rmdir()
        lived = (time.monotonic() - started) / N
        lab.child(f"tick-marker-{attempt}")
        snap = collector.collect()
        got = _of(snap.churn, kind)
        assert got is not None, snap.churn
        assert got.since == first.taken_at
        assert got.created >= N + 1 and got.removed >= N, got
        # The removals the listing saw: none of ours (they never were listed).
        assert not [r for r in snap.removed if f"tick-{attempt}-" in r.path]
        seen.append((got, round(lived * 1000)))
        if (got.created, got.removed, got.exact) == (N + 1, N, True):
            break
    assert lived < 0.1, f"each cgroup lived {lived * 1000:.0f} ms"
    last = seen[-1][0]
    assert (last.created, last.removed) == (N + 1, N), seen
    if kind == "memory":  # num_cgroups counts memcgs: freed = created - its rise
        assert last.freed is not None and 0 <= last.freed <= N + 1


def test_a_burst_the_ids_do_not_count_yet_leaves_freed_unknown_until_they_do(lab: Lab) -> None:
    """Live, through the real collector: N cgroups made and removed, and nothing after them.
    num_cgroups moved at once, the newest directory id did not: that interval's freed is
    unknown (it was 0, clamped from about -N). The interval in which a later cgroup appears
    counts the burst, and its freed spans both intervals: it balances num_cgroups.

    Other processes may make a cgroup after the burst (the ids then do not lag): an attempt
    counts only when the listing's newest id is below the burst's (up to three)."""
    require(lab.root.name == "memory", "a v1 memory hierarchy (num_cgroups counts it)")
    collector = lab.collector
    collector.collect()
    for attempt in range(3):
        a = collector.collect()
        burst = 0
        for i in range(N):
            c = lab.parent / f"lag-{attempt}-{i}"
            c.mkdir()
            burst = max(burst, os.stat(c).st_ino)
            c.rmdir()
        newest = _listing(str(lab.root)).newest_id
        b = collector.collect()
        got_b = _of(b.churn, "memory")
        assert got_b is not None and got_b.since == a.taken_at
        stayer = lab.child(f"lag-stayer-{attempt}")
        c_ = collector.collect()
        got_c = _of(c_.churn, "memory")
        assert got_c is not None and got_c.since == b.taken_at
        if newest >= burst:
            stayer.rmdir()
            continue  # someone else's cgroup came after the burst: the ids did not lag
        assert got_b.freed is None and not got_b.exact, got_b
        assert got_c.created >= N + 1 and got_c.removed >= N, got_c
        assert got_c.freed is not None, got_c
        assert got_c.freed <= got_b.created + got_c.created, (got_b, got_c)
        assert a.memcg.total is not None and c_.memcg.total is not None
        assert got_c.freed == got_b.created + got_c.created - (c_.memcg.total
                                                                 - a.memcg.total)
        return
    raise AssertionError("three attempts, each with another cgroup made after the burst")
