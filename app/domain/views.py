"""What the API and the pages show: plain records, assembled in app/services/hosts.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class HostSummary:
    """One host in the fleet view."""

    name: str
    kernel_release: str
    era: str
    cgroup_layout: str
    cpus: int
    last_scrape_at: datetime | None
    stale: bool
    memcg_live: int | None
    memcg_dying: int | None
    memcg_total: int | None
    dying_growth_per_day_24h: float | None
    dying_growth_per_day_7d: float | None
    days_to_memcg_id_limit: float | None
    slab_bytes: int | None
    sreclaimable_bytes: int | None
    sunreclaim_bytes: int | None
    percpu_bytes: int | None
    dying_cost_bytes_each: int
    wasted_bytes: int | None
    cost_model: str
    removed_total: int
    sparkline_dying_24h: list[float] = field(default_factory=list)
    growth_note: str = ""  # "collecting, 12 min so far (...)" or the span a figure spans
    history_seconds: float = 0.0  # from the host's first scrape to its last
    # Whether this kernel's dying memcgs hold memcg IDs (before 4.8, or an unknown kernel),
    # and why the days to the ID limit are what they are (app/domain/growth.py).
    dying_hold_ids: bool = True
    id_limit_note: str = ""


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A source of the host's latest scrape: working or not, and why."""

    source: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class HostDetail:
    """One host in detail."""

    summary: HostSummary
    machine_id: str | None
    boot_id: str | None
    numa_nodes: int
    page_size_bytes: int
    first_seen_at: datetime
    memcg_method: str | None
    scrapes_total: int
    sources: list[SourceStatus]


@dataclass(frozen=True, slots=True)
class SeriesView:
    """A time series as the API returns it."""

    metric: str
    step_seconds: int
    since: datetime
    until: datetime
    times: list[datetime]
    values: list[float | None]


@dataclass(frozen=True, slots=True)
class CacheView:
    """One cache in the cache table."""

    name: str
    aliases: list[str]
    bytes: int
    objects: int
    active_objs: int
    utilisation: float | None
    slabs: int
    object_size_bytes: int
    slab_size_bytes: int | None
    objs_per_slab: int
    pages_per_slab: int
    order: int | None
    reclaim_account: bool | None
    growth_bytes: int | None
    growth_bytes_per_day: float | None  # None unless the window spans a day or more


@dataclass(frozen=True, slots=True)
class CgroupView:
    """One cgroup in the tree, with its subtree counts and memory.stat figures."""

    hierarchy: str
    path: str
    name: str
    depth: int
    parent: str | None
    live_descendants: int
    dying_descendants: int | None
    memory_usage_bytes: int | None
    kmem_usage_bytes: int | None
    file_bytes: int | None
    anon_bytes: int | None
    shmem_bytes: int | None
    slab_bytes: int | None
    kernel_stack_bytes: int | None
    memory_stat: dict[str, int]


@dataclass(frozen=True, slots=True)
class RemovedView:
    """A cgroup that disappeared, and what it last had charged."""

    hierarchy: str
    path: str
    last_seen_at: datetime
    removed_at: datetime
    last_memory_usage_bytes: int | None
    file_bytes: int | None
    shmem_bytes: int | None
    slab_bytes: int | None
    kernel_stack_bytes: int | None
    likely_pin: str
