"""Preset workloads (the /simulate editor, `slabscope simulate`).

The test_kmem selftests run step by step in app/simulation/selftests.py; `selftests` and
`SelftestOutcome` are re-exported here for the callers that import them from this module.
"""

from __future__ import annotations

from app.simulation.selftests import SelftestOutcome, selftests
from app.simulation.workload import (
    DENTRY,
    EXT4_INODE,
    INODE,
    SOCK,
    Event,
    JobClass,
    Kind,
    Leftover,
    Pressure,
    Workload,
)

DAY = 86_400.0


def _systemd_timers() -> Workload:
    leaves = (Leftover(Kind.SLAB, 400, DENTRY), Leftover(Kind.SLAB, 30, INODE),
              Leftover(Kind.PAGECACHE, 4))
    return Workload(
        "systemd-timers-web",
        tuple(JobClass(f"timer-{i}.service", 0, 20.0, leaves, period_seconds=300.0 + 60 * i)
              for i in range(6)),
        Pressure(slab_per_day=0.3, pagecache_per_day=2.0), duration_seconds=30 * DAY,
        step_seconds=3600.0,
        description="a web frontend with six systemd timer units every 5-10 minutes; each run "
                    "looks up files (dentries, inodes) and appends to a log (page cache)")


def _cronjobs() -> Workload:
    return Workload(
        "kubernetes-cronjobs",
        (JobClass("cronjob-pod", 2000, 300.0, (
            Leftover(Kind.SLAB, 800, DENTRY), Leftover(Kind.SLAB, 60, EXT4_INODE),
            Leftover(Kind.SLAB, 12, SOCK), Leftover(Kind.PAGECACHE, 64))),),
        Pressure(slab_per_day=0.5, pagecache_per_day=1.5), duration_seconds=30 * DAY,
        step_seconds=3600.0,
        description="Kubernetes CronJobs: 2000 pods a day, 5 minutes each; every pod leaves "
                    "dentries, ext4 inodes, socket inodes and 256 KiB of page cache")


def _threads_moved() -> Workload:
    return Workload(
        "threads-moved-away",
        (JobClass("mkdir-move-sleep-rmdir", 0, 0.01, (
            Leftover(Kind.KSTACK, 1, mean_life_seconds=3600.0),),
            period_seconds=0.02, count=500),),
        Pressure(), duration_seconds=7200.0, step_seconds=60.0,
        description="Muchun Song's 5.13 reproducer: 500 times mkdir, move a `sleep 3600` in, "
                    "move it out, rmdir; its kernel stack stays charged to the old memcg")


def _append_then_remove() -> Workload:
    return Workload(
        "append-then-remove",
        (JobClass("append-4k", 0, 0.01, (Leftover(Kind.PAGECACHE, 1),),
                  period_seconds=0.05, count=2001),),
        Pressure(pagecache_per_day=0.2), duration_seconds=6 * 3600.0, step_seconds=300.0,
        events=(Event(5 * 3600.0, "drop_caches", mode=1),),
        description="the 2025 LRU-reparenting reproducer: 2001 times mkdir, append 4 KiB to a "
                    "file, move out, rmdir; drop_caches 1 after five hours")


def _tmpfs() -> Workload:
    return Workload(
        "tmpfs-left-behind",
        (JobClass("job-with-shm", 500, 60.0, (Leftover(Kind.SHMEM, 16),
                                              Leftover(Kind.PAGECACHE, 16))),),
        Pressure(pagecache_per_day=1.0), duration_seconds=14 * DAY, step_seconds=3600.0,
        events=(Event(7 * DAY, "drop_caches", mode=3), Event(10 * DAY, "delete_files")),
        description="jobs that leave 64 KiB in /dev/shm and 64 KiB of page cache; "
                    "drop_caches 3 on day 7 frees the page cache, not tmpfs; the files are "
                    "deleted on day 10")


def _dead_cgroups() -> Workload:
    # 30 sequential children, 100 negative dentries each, removed; no memory pressure.
    return Workload(
        "test_kmem_dead_cgroups",
        (JobClass("kmem_dead_cgroups_test/child", 0, 0.005,
                  (Leftover(Kind.SLAB, 100, DENTRY),), period_seconds=0.01, count=30),),
        Pressure(slab_per_day=0.0, pagecache_per_day=0.0), duration_seconds=10.0,
        step_seconds=0.1, description="tools/testing/selftests/cgroup/test_kmem.c: 30 "
        "children with 100 negative dentries each; nr_dying_descendants must reach 0 "
        "within ~5 s (5 x 1 s; 80 x 100 ms since Dec 2025)")


PRESETS = {w.name: w for w in (_systemd_timers(), _cronjobs(), _threads_moved(),
                                 _append_then_remove(), _tmpfs(), _dead_cgroups())}

__all__ = ["DAY", "PRESETS", "SelftestOutcome", "selftests"]
