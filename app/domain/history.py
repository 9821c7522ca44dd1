"""What the model is fed from a host's own data: its history, and its state at one scrape."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RemovalBucket:
    """The cgroups removed in one time bucket: how many, what they left, in counts and sums.

    Counts and byte sums combine exactly across buckets (and across hourly rollups), so the
    model gets shares and means of any window from a bounded number of buckets, however many
    cgroups were removed. `seconds` is the bucket's time since the history's start.
    """

    seconds: float
    removed: int
    with_file: int = 0  # file > 0
    with_shmem: int = 0  # shmem > 0
    pagecache_only: int = 0  # file > 0 and no shmem: page cache is what pins it
    with_kstack: int = 0  # kernel_stack > 0
    slab_known: int = 0  # memory.stat reported slab (cgroup2)
    file_bytes: int = 0
    shmem_bytes: int = 0
    slab_bytes: int = 0
    kstack_bytes: int = 0


RemovedRow = tuple[float, int | None, int | None, int | None, int | None]


def bucket_removals(rows: Iterable[RemovedRow], width: float) -> list[RemovalBucket]:
    """Removals (seconds, file, shmem, slab, kernel_stack bytes) in buckets of `width` s.

    The same arithmetic the database does in SQL, for callers that hold single removals.
    """
    if width <= 0:
        raise ValueError(f"bucket width must be positive, not {width}")
    acc: dict[int, list[int]] = {}
    for t, file, shm, slab, kst in rows:
        a = acc.setdefault(math.floor(t / width), [0] * 10)
        f, s, k = file or 0, shm or 0, kst or 0
        for i, v in enumerate((1, f > 0, s > 0, f > 0 and s == 0, k > 0, slab is not None,
                               f, s, slab or 0, k)):
            a[i] += int(v)
    return [RemovalBucket(b * width, *a) for b, a in sorted(acc.items())]


@dataclass(frozen=True, slots=True)
class ChurnBucket:
    """Cgroups made, removed and freed in one time bucket, counted from the kernel's own
    numbers (kernfs ids, /proc/cgroups num_cgroups; app.domain.churn), not from cgroups seen
    alive: it includes cgroups that lived less than one tick. `exact` is False when an
    interval in the bucket could not be counted whole (see app.domain.churn)."""

    seconds: float
    created: int
    removed: int
    freed: int | None = None
    exact: bool = True


@dataclass(frozen=True, slots=True)
class HostHistory:
    """Dying and live memcgs over time, and what removed cgroups had charged when last seen.

    Times are seconds since `start`. The series are bucketed (the most dying and live memcgs
    of each bucket) and removals aggregated per bucket: the size of a history is bounded by
    its number of buckets, not by how long the host ran or how many cgroups it removed.
    Byte sums count only what the kernel reports (v1 memory.stat has no slab or
    kernel_stack: `slab_known` stays 0).
    """

    host: str
    era: str
    cpus: int
    numa_nodes: int
    start: datetime
    times_seconds: list[float]
    dying: list[float]
    live: list[float]
    removals: list[RemovalBucket] = field(default_factory=list)
    # Counted churn per bucket (empty where the collector did not count it: older data).
    churn: list[ChurnBucket] = field(default_factory=list)
    # The host's kernel (major, minor) where its release parses: it picks the era's cost
    # generation and whether dying memcgs still hold memcg IDs (before 4.8).
    kernel: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class CacheState:
    """One slab cache at a scrape."""

    name: str
    pages: int  # num_slabs * pages_per_slab
    order: int
    objs_per_slab: int
    object_size_bytes: int
    objects: int
    reclaimable: bool


@dataclass(frozen=True, slots=True)
class CgroupState:
    """One visible cgroup at a scrape: its slab (or, on v1, kmem) charge."""

    path: str
    slab_bytes: int | None
    kmem_bytes: int | None


@dataclass(frozen=True, slots=True)
class MemcgCacheState:
    """A per-memcg child cache a <= 5.8 host exposes (exact refcounts)."""

    root_cache: str
    cgroup_name: str
    slabs: int
    order: int


@dataclass(frozen=True, slots=True)
class HostState:
    """A host at its latest scrape, for the refcount views."""

    host: str
    era: str
    page_size_bytes: int
    dying: int
    caches: list[CacheState]
    cgroups: list[CgroupState]
    memcg_caches: list[MemcgCacheState] = field(default_factory=list)
    removed_median_slab_bytes: int | None = None
