"""Immutable records of what the kernel reported at one instant.

Every size is in bytes and every name carries its unit where it is not a plain count. Readers
convert at the boundary (kB in /proc/meminfo becomes bytes); nothing downstream rescales.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from app.domain.cgtable import CgroupTable


@dataclass(frozen=True, slots=True)
class NodeCount:
    """A SLUB sysfs count file: the total and the per-NUMA-node `N<n>=<v>` suffix."""

    total: int
    per_node: dict[int, int] = field(default_factory=dict)


class SlabinfoRow(NamedTuple):
    """One row of /proc/slabinfo v2.1 (and of v1 memory.kmem.slabinfo).

    A NamedTuple, not a frozen dataclass: a host has ~235 rows per tick and a tuple is built
    4-5x faster (bench/scrape.py).
    """

    name: str
    active_objs: int
    num_objs: int
    objsize_bytes: int
    objperslab: int
    pagesperslab: int
    limit: int
    batchcount: int
    sharedfactor: int
    active_slabs: int
    num_slabs: int
    sharedavail: int
    # Only in the "(statistics)" variant (CONFIG_DEBUG_SLAB): section label -> its numbers.
    statistics: dict[str, tuple[int, ...]] | None = None


@dataclass(frozen=True, slots=True)
class SlubGeometry:
    """What SLUB sysfs says about one real cache directory (merged aliases resolved)."""

    dir_name: str  # the real directory: a cache name or a ":0000064"-style unique id
    alias_names: tuple[str, ...]  # every named symlink (or the name itself) for this cache
    aliases_count: int | None  # the `aliases` file: how many caches were merged into this one
    order: int | None
    object_size_bytes: int | None
    slab_size_bytes: int | None
    objs_per_slab: int | None
    reclaim_account: bool | None


@dataclass(frozen=True, slots=True)
class SlubStats:
    """The per-tick SLUB sysfs counts of one cache (cheap ones; objects* only when asked)."""

    dir_name: str
    slabs: NodeCount | None
    total_objects: NodeCount | None
    partial: NodeCount | None
    cpu_slabs: NodeCount | None
    objects: NodeCount | None = None  # walks the partial list under list_lock: opt-in
    objects_partial: NodeCount | None = None  # same


@dataclass(frozen=True, slots=True)
class MemcgChildCache:
    """A per-memcg child cache of kernels <= 5.8: `<root>/cgroup/<root>(<serial>:<name>)/`."""

    root_cache: str
    memcg_serial: int
    cgroup_name: str
    slabs: int | None
    total_objects: int | None
    objects: int | None
    order: int | None
    object_size_bytes: int | None
    objs_per_slab: int | None


@dataclass(frozen=True, slots=True)
class MemcgSlabinfoRow:
    """One row of debugfs `memcg_slabinfo` (5.4-5.8); css_id None for the root row."""

    name: str
    css_id: int | None
    dead: bool
    deact: bool
    active_objs: int
    num_objs: int
    active_slabs: int
    num_slabs: int


@dataclass(frozen=True, slots=True)
class ProcCgroupsRow:
    """One controller row of /proc/cgroups; num_cgroups includes dying cgroups."""

    subsys_name: str
    hierarchy: int
    num_cgroups: int
    enabled: bool


@dataclass(frozen=True, slots=True)
class CgroupSample:
    """One visible cgroup directory at one instant.

    `hierarchy` is "memory" (the v1 memory hierarchy) or "unified" (cgroup2). `path` is the
    path below the hierarchy's mount point, "/" for the root.
    """

    hierarchy: str
    path: str
    memory_stat: dict[str, int] = field(default_factory=dict)
    memory_usage_bytes: int | None = None  # v1 memory.usage_in_bytes or v2 memory.current
    kmem_usage_bytes: int | None = None  # v1 memory.kmem.usage_in_bytes
    kmem_slabinfo: tuple[SlabinfoRow, ...] | None = None  # v1 memory.kmem.slabinfo, <= 5.8
    cgroup_stat: dict[str, int] | None = None  # v2 cgroup.stat

    @property
    def nr_dying_descendants(self) -> int | None:
        """Dying cgroups below this one, where cgroup.stat says so (v2, 4.14+)."""
        if self.cgroup_stat is None:
            return None
        return self.cgroup_stat.get("nr_dying_descendants")


@dataclass(frozen=True, slots=True)
class RemovedCgroup:
    """A cgroup seen in one scrape and gone in the next, with what it last had charged.

    `last_memory_stat` is the whole memory.stat as read by the last walk (or first-seen read)
    that saw the cgroup, kept by the collector in compact form; `stat_read_at` says when.
    """

    hierarchy: str
    path: str
    last_seen_at: datetime  # the last tick whose directory listing had it
    removed_by: datetime  # the scrape that first missed it
    last_memory_stat: dict[str, int]
    last_memory_usage_bytes: int | None
    stat_read_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CgroupKmemSlabinfo:
    """A v1 cgroup's memory.kmem.slabinfo rows (kernels <= 5.8), at the series cadence."""

    hierarchy: str
    path: str
    rows: tuple[SlabinfoRow, ...]


@dataclass(frozen=True, slots=True)
class HostIdentity:
    """Who the host is and what its kernel can show."""

    hostname: str
    machine_id: str | None
    boot_id: str | None
    kernel_release: str
    era: str
    era_source: str  # "release" or "settings"
    possible_cpus: int
    numa_nodes: int
    page_size_bytes: int
    cgroup_layout: str  # "v1", "v2", "hybrid" or "none"


@dataclass(frozen=True, slots=True)
class MemcgCount:
    """Memory cgroups in total, visible as directories, and dying (the difference)."""

    total: int | None
    visible: int | None
    dying: int | None
    method: str  # how `dying` was obtained: see app/collector/dying.py


@dataclass(frozen=True, slots=True)
class HierarchyChurn:
    """Cgroups made, removed and freed in one hierarchy since the previous counted listing,
    from the kernel's own numbers (app/domain/churn.py): cgroups that lived less than a tick
    included. `since` is that listing's time (one tick earlier, as a rule)."""

    hierarchy: str  # "memory" (v1) or "unified" (cgroup2)
    since: datetime
    created: int
    removed: int
    freed: int | None  # None: /proc/cgroups does not count this hierarchy's memcgs
    exact: bool  # False: ids moved by other than whole cgroups (app/domain/churn.py)


@dataclass(frozen=True, slots=True)
class SourceError:
    """One source that could not be read or parsed in a scrape."""

    source: str
    path: str
    message: str


class Cache(NamedTuple):
    """One slab cache as the snapshot reports it: slabinfo numbers joined with SLUB geometry."""

    name: str
    aliases: tuple[str, ...]
    object_size_bytes: int
    objs_per_slab: int
    pages_per_slab: int
    order: int | None
    active_objs: int
    num_objs: int
    num_slabs: int
    bytes: int  # num_slabs * pages_per_slab * page size
    slab_size_bytes: int | None = None
    reclaim_account: bool | None = None
    partial_slabs: int | None = None
    cpu_slabs: int | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one scrape of one host saw."""

    taken_at: datetime
    duration_seconds: float
    host: HostIdentity
    memcg: MemcgCount
    proc_cgroups: tuple[ProcCgroupsRow, ...]
    meminfo: dict[str, int]  # bytes for kB fields, plain counts otherwise
    vmstat: dict[str, int]
    caches: tuple[Cache, ...]
    # Per-cgroup data at their own cadences (settings cgroup_*_interval_seconds):
    new_cgroups: tuple[CgroupSample, ...]  # first seen this tick: the whole memory.stat
    series: CgroupTable | None  # every live cgroup's series figures, when due
    full: CgroupTable | None  # every live cgroup's whole memory.stat, when due
    kmem_slabinfo: tuple[CgroupKmemSlabinfo, ...]  # <= 5.8 v1, with the series
    memcg_caches: tuple[MemcgChildCache, ...]
    memcg_slabinfo: tuple[MemcgSlabinfoRow, ...]
    removed: tuple[RemovedCgroup, ...]
    errors: tuple[SourceError, ...]
    # Whole /proc/meminfo and /proc/vmstat are stored only when due (the host figures that
    # pages read are columns of every scrape); False: meminfo/vmstat carry only what is kept.
    host_full: bool = True
    # Counted churn per hierarchy since the previous tick (empty: the first tick of a boot
    # or of a restarted collector, a wrap, or a collector that did not count it).
    churn: tuple[HierarchyChurn, ...] = ()
