"""Each kernel era as one declarative object: what pins a dying memcg, what caches exist.

Facts from kernel-notes.md section 2 (code paths cited there) and 3.7 (memory.stat keys);
the engine and the selftest outcomes (scenarios.selftests) read only these fields, never an
era's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SlabPin(StrEnum):
    """How slab objects left behind by a removed cgroup hold its memcg."""

    PAGE = "page"  # <= 5.2: every charged slab page holds css refs (page->mem_cgroup)
    CACHE = "cache"  # v4 5/7: one css ref per non-empty per-memcg kmem_cache
    NONE = "none"  # 5.3+: caches (5.3) or obj_cgroups (5.9+) are reparented at offline


class Shutdown(StrEnum):
    """How an empty, deactivated per-memcg cache is shut down."""

    WITH_MEMCG = "with-memcg"  # <= 5.2: memcg_destroy_kmem_caches() when the memcg is freed
    RCU_WORK = "rcu+work"  # v4 5/7: call_rcu -> work -> shutdown_cache -> css_put
    WORK = "work"  # 5.3: kmemcg_cache_shutdown() queues work directly
    NONE = "none"  # 5.9+: there are no per-memcg caches


@dataclass(frozen=True, slots=True)
class EraModel:
    """The rules of one era."""

    name: str
    kernels: str
    summary: str
    per_memcg_caches: bool
    slab_pin: SlabPin
    shutdown: Shutdown
    caches_reparented: bool  # 5.3: zombie caches move to the parent, pinning it, 1 ref each
    kmem_pages_pin: bool  # kernel stacks etc. pin through page->mem_cgroup (before 5.13)
    lru_pins: bool  # page cache / shmem folios pin (until LRU reparenting)
    sysfs_child_dirs: bool  # per-memcg cache directories (with slub_memcg_sysfs=1)
    deactivate_grace_periods: int  # RCU grace periods between offline and percpu_ref_kill
    shutdown_grace_periods: int  # RCU grace periods between count zero and shutdown work
    release_delay_seconds: float  # offline -> css free when nothing pins (RCU + work)
    # The first mainline release of the era, or None: older kernels (pre-5.3) or a patch
    # never released (v4 5/7).
    since: tuple[int, int] | None
    # memory.stat has a `percpu` key: per-CPU kernel data charged and shown since 5.9
    # (772616b031f0, kernel-notes.md 3.7).
    memory_stat_percpu: bool
    # After cache reparenting, per-lruvec slab counters of non-leaf levels can be wrong: 5.3
    # as merged; the follow-ups that flush memcg and lruvec stats at offline fix it
    # ("Fixes: fb2f2b0adb98", kernel-notes.md 2(c)). Eras before 5.3 do not reparent slab;
    # 5.9+ move slab bytes with the obj_cgroup.
    nonleaf_slab_stats_drift: bool


ERAS: dict[str, EraModel] = {e.name: e for e in (
    EraModel("pre-5.3", "<= 5.2",
             "every charged slab page pins its memcg: one surviving dentry keeps it dying",
             True, SlabPin.PAGE, Shutdown.WITH_MEMCG, False, True, True, True, 1, 0, 0.05,
             since=None, memory_stat_percpu=False, nonleaf_slab_stats_drift=False),
    EraModel("v4-5/7", "the 2019 patch 5/7 alone (as posted, fixed in v5)",
             "one css ref per non-empty per-memcg cache; pages hold 1<<order refs on the "
             "cache's percpu_ref; empty caches shut down early",
             True, SlabPin.CACHE, Shutdown.RCU_WORK, False, True, True, True, 1, 1, 0.05,
             since=None, memory_stat_percpu=False, nonleaf_slab_stats_drift=False),
    EraModel("5.3", "5.3 - 5.8",
             "caches reparented at offline: slab no longer pins the dying memcg (the zombie "
             "caches pin the parent, one ref each, until empty)",
             True, SlabPin.NONE, Shutdown.WORK, True, True, True, True, 1, 0, 0.05,
             since=(5, 3), memory_stat_percpu=False, nonleaf_slab_stats_drift=True),
    EraModel("objcg", "5.9 - 5.12",
             "per-object obj_cgroup accounting, no per-memcg caches; kernel stacks still pin",
             False, SlabPin.NONE, Shutdown.NONE, False, True, True, False, 0, 0, 0.02,
             since=(5, 9), memory_stat_percpu=True, nonleaf_slab_stats_drift=False),
    EraModel("objcg-kmem", "5.13+ (this machine: 6.18)",
             "kernel pages through objcg too: only page cache, shmem/tmpfs and swap pin",
             False, SlabPin.NONE, Shutdown.NONE, False, False, True, False, 0, 0, 0.02,
             since=(5, 13), memory_stat_percpu=True, nonleaf_slab_stats_drift=False),
    EraModel("lru-reparent", "7.1+ (Qi Zheng's series)",
             "LRU folios reparented too: nothing long-lived pins a dying memcg",
             False, SlabPin.NONE, Shutdown.NONE, False, False, False, False, 0, 0, 0.02,
             since=(7, 1), memory_stat_percpu=True, nonleaf_slab_stats_drift=False),
)}
ORDER = list(ERAS)
