"""What the model is fed from a host's own data: its history, and its state at one scrape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class HostHistory:
    """Dying and live memcgs over time, and what removed cgroups had charged when last seen.

    Times are seconds since `start`. Charges are bytes, None where the kernel does not say
    (v1 memory.stat has no slab or kernel_stack).
    """

    host: str
    era: str
    cpus: int
    numa_nodes: int
    start: datetime
    times_seconds: list[float]
    dying: list[float]
    live: list[float]
    removed_seconds: list[float] = field(default_factory=list)
    removed_file_bytes: list[int | None] = field(default_factory=list)
    removed_shmem_bytes: list[int | None] = field(default_factory=list)
    removed_slab_bytes: list[int | None] = field(default_factory=list)
    removed_kstack_bytes: list[int | None] = field(default_factory=list)


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
