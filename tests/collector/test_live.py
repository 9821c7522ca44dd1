"""Live tests on this machine's kernel: what really pins a dying memcg, seen by the collector.

On 6.18 (objcg-kmem era, lab-findings.md 1): page cache pins a removed memcg until it is
reclaimed or its file deleted; tmpfs pins until the file is deleted; slab alone never pins.
Each scenario is measured as a delta of the collector's dying count around our own rmdirs and
retried (with fresh cgroups) up to three times, because other processes on the machine create
and remove cgroups too; a scenario passes only when a whole run shows the exact delta.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, require
from tests.live import V1, Lab, memory_cgroup_root, settle

pytestmark = pytest.mark.live
N = 5
ATTEMPTS = 3


def _attempts(run: object) -> list[tuple[int, ...]]:
    seen: list[tuple[int, ...]] = []
    for _ in range(ATTEMPTS):
        assert callable(run)
        got = run()
        seen.append(got)
        if got[-1]:
            break
    return seen


def test_page_cache_pins_every_removed_memcg_until_dropped(lab: Lab) -> None:
    n = 0

    def run() -> tuple[int, int, int, int]:
        nonlocal n
        n += 1
        lab.warm()  # an earlier drop_caches evicted the directory's blocks: bring them back
        kids = [lab.child(f"pc{n}-{i}") for i in range(N)]
        for k in kids:
            lab.write_file(k, lab.files)
        before = lab.dying()
        lab.rmdir(kids)
        after = settle(lab.dying, before + N, 2.0)
        lab.delete_files()
        lab.drop_caches(1)
        back = settle(lab.dying, before, 10.0)
        return before, after - before, back - before, int(after - before == N and back == before)

    seen = _attempts(run)
    assert seen[-1][-1] == 1, f"(before, rise, after drop, ok) per attempt: {seen}"


def test_slab_only_memcgs_do_not_stay_dying(lab: Lab) -> None:
    n = 0

    def run() -> tuple[int, int, int]:
        nonlocal n
        n += 1
        lab.warm()  # an earlier drop_caches evicted the directory's blocks: bring them back
        kids = [lab.child(f"slab{n}-{i}") for i in range(N)]
        for k in kids:
            lab.negative_dentries(k)
        before = lab.dying()
        lab.rmdir(kids)
        after = settle(lab.dying, before, 5.0)
        return before, after - before, int(after == before)

    seen = _attempts(run)
    assert seen[-1][-1] == 1, f"(before, rise, ok) per attempt: {seen}"


def test_tmpfs_pins_through_drop_caches_until_deleted(lab: Lab) -> None:
    n = 0

    def run() -> tuple[int, int, int, int, int]:
        nonlocal n
        n += 1
        lab.warm()  # an earlier drop_caches evicted the directory's blocks: bring them back
        kids = [lab.child(f"shm{n}-{i}") for i in range(N)]
        for k in kids:
            lab.write_file(k, lab.shm)
        before = lab.dying()
        lab.rmdir(kids)
        rise = settle(lab.dying, before + N, 2.0) - before
        lab.drop_caches(3)
        kept = settle(lab.dying, before + N, 1.0) - before
        lab.delete_files()
        back = settle(lab.dying, before, 10.0) - before
        return before, rise, kept, back, int(rise == N and kept == N and back == 0)

    seen = _attempts(run)
    assert seen[-1][-1] == 1, f"(before, rise, kept after drop 3, after delete, ok): {seen}"


def test_collect_once_matches_proc_cgroups_on_this_machine() -> None:
    """Acceptance: num_cgroups as /proc/cgroups, dying = num_cgroups - visible dirs, caches."""
    require(memory_cgroup_root() == V1, "this check is for hosts with a v1 memory hierarchy")

    def state() -> tuple[int, int]:
        num = next(int(line.split()[2]) for line in Path("/proc/cgroups").read_text()
                   .splitlines() if line.startswith("memory"))
        dirs = 1 + sum(len(d) for _, d, _ in os.walk(V1))
        return num, dirs

    results = []
    for _ in range(5):
        s0 = state()
        out = subprocess.run([sys.executable, "-m", "app.cli", "collect", "--once", "--format",
                              "json"], cwd=ROOT, capture_output=True, text=True, check=True)
        s1 = state()
        d = json.loads(out.stdout)
        results.append((s0, s1, d["memcg"]))
        if s0 == s1:
            num, dirs = s0
            assert d["memcg"]["num_cgroups"] == d["memcg"]["total"] == num
            assert d["memcg"]["visible"] == dirs
            assert d["memcg"]["dying"] == num - dirs
            rows = len(Path("/proc/slabinfo").read_text().splitlines()) - 2
            assert len(d["caches"]) >= rows
            assert d["errors"] == []
            return
    pytest.fail(f"/proc/cgroups never held still across a scrape: {results}")
