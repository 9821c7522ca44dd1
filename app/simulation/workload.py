"""Workloads: job classes that create and remove cgroups, what each leaves behind, pressure.

A leftover is what one cgroup still has charged when it is removed, and how it goes away:
  * slab objects in a cache, freed one by one by reclaim (memory pressure sets the rate) or
    by `drop_caches 2|3`; a slab page is freed only when its last object is;
  * page cache pages, reclaimed at their own rate or by `drop_caches 1|3` or by deleting the
    files;
  * shmem/tmpfs pages, freed only when the files are deleted;
  * kernel stacks of threads that moved to another cgroup, freed when the threads exit.

Page cache may be partly dirty (Leftover.dirty_share): drop_caches frees only clean pages,
and a dirty page is clean once written back, after the writeback delay or at a `sync`.
A class may also leave shared objects (JobClass.shared_leftovers): dentries, inodes or
directory blocks that every cgroup of the class uses, charged once, to the first cgroup that
touched them, and again to the next cgroup after they are freed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """What a leftover is."""

    SLAB = "slab"
    PAGECACHE = "pagecache"
    SHMEM = "shmem"
    KSTACK = "kstack"


@dataclass(frozen=True, slots=True)
class CacheGeometry:
    """The geometry of a slab cache that leftovers live in."""

    name: str
    object_size_bytes: int
    objs_per_slab: int
    order: int
    reclaimable: bool  # SLAB_RECLAIM_ACCOUNT: dentries, inodes (freed by drop_caches 2)


@dataclass(frozen=True, slots=True)
class Leftover:
    """What one cgroup of a class leaves behind, per kind.

    `amount` counts objects (slab), pages (page cache, shmem) or threads (kernel stacks).
    `mean_life_seconds`, when set, replaces reclaim: the thing is freed after an exponential
    time with this mean (a holder that exits, a file deleted later). 0 means never on its own.
    """

    kind: Kind
    amount: int
    cache: CacheGeometry | None = None
    mean_life_seconds: float | None = None
    # Page cache only: the share of the pages still dirty at removal. drop_caches cannot
    # free a dirty page (only clean, unmapped pages are invalidated; the live test
    # tests/simulation/test_live_mechanisms.py measures it on this kernel); writeback
    # (Workload.writeback_seconds) or a `sync` event makes it clean.
    dirty_share: float = 0.0


@dataclass(frozen=True, slots=True)
class JobClass:
    """Cgroups of one kind: how often they come, how long they live, what they leave."""

    name: str
    per_day: float  # new cgroups per day (Poisson), or, with period_seconds, ignored
    lifetime_seconds: float
    leftovers: tuple[Leftover, ...] = ()
    period_seconds: float | None = None  # a timer/cron: one cgroup every period, exactly
    count: int | None = None  # stop after this many cgroups (selftests)
    start_seconds: float = 0.0
    # Each simulated cgroup stands for this many (a class thinned so that a busy host's
    # months cost the engine a bounded number of cgroups; counts are scaled back).
    weight: float = 1.0
    # Objects every cgroup of the class uses but only the first charges: dentries and
    # inodes of the paths it looks up (slab, charged by the allocation: d_alloc/iget), and
    # directory blocks (page cache, charged by the read that brings them in). They pin the
    # cgroup that charged them, in the eras where their kind pins; once freed, the next
    # cgroup of the class to start charges them again. On a thinned class (weight > 1) an
    # owner counts with the class weight [approximation].
    shared_leftovers: tuple[Leftover, ...] = ()


@dataclass(frozen=True, slots=True)
class Pressure:
    """Reclaim rates (per object or page, per day) under the host's memory pressure."""

    slab_per_day: float = 0.5
    pagecache_per_day: float = 1.0


@dataclass(frozen=True, slots=True)
class Event:
    """Something an operator does: `drop_caches` (mode 1, 2, 3), `delete_files` or `sync`.

    `sync` frees nothing: it writes dirty page cache back, so that a later drop_caches or
    reclaim can free it.
    """

    at_seconds: float
    kind: str
    mode: int = 0
    job: str | None = None  # delete_files: only this class's files (None: all)


@dataclass(frozen=True, slots=True)
class Workload:
    """A whole scenario: classes, pressure, events, and how long to look."""

    name: str
    classes: tuple[JobClass, ...]
    pressure: Pressure = Pressure()
    events: tuple[Event, ...] = ()
    duration_seconds: float = 86_400.0
    step_seconds: float = 3600.0
    cpus: int = 2
    numa_nodes: int = 1
    # The kernel release the host runs, (major, minor), or None. Within an era it picks
    # the cost generation (objcg-kmem spans 5.13 to 7.0: memcg stats shrank in 6.10) and
    # whether dying memcgs keep their memcg ID (before 4.8); see engine.era_cost_model and
    # engine.dying_hold_ids. None: each era's default.
    kernel: tuple[int, int] | None = None
    # When a dirty page is written back at the latest: dirty_expire_centisecs (3000: data
    # older than 30 s is written) plus dirty_writeback_centisecs (500: the flusher wakes
    # every 5 s). Documentation/admin-guide/sysctl/vm.rst, defaults.
    writeback_seconds: float = 35.0
    description: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def steps(self) -> int:
        """Number of output points."""
        return int(self.duration_seconds / self.step_seconds + 1e-9) + 1


DENTRY = CacheGeometry("dentry", 192, 21, 0, True)
INODE = CacheGeometry("inode_cache", 608, 13, 1, True)
EXT4_INODE = CacheGeometry("ext4_inode_cache", 1080, 29, 3, True)
KMALLOC_192 = CacheGeometry("kmalloc-192", 192, 21, 0, False)
SOCK = CacheGeometry("sock_inode_cache", 704, 23, 2, False)
