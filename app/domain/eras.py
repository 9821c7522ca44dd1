"""The one registry of kernel eras of memcg / kmem_cache lifecycle, and detection from `uname -r`.

Every part of slabscope that depends on an era reads its facts here: the collector (which
sources exist), the pin breakdown (what no longer pins), the cost model (which struct sizes),
the simulation engine, the selftests and the refcount view. None of them compares an era's
name. Facts from kernel-notes.md section 2 (code paths cited there), 3.3-3.7 (interfaces and
memory.stat keys) and 5.1 (costs); `FACT_SOURCES` cites each field.
"""

from __future__ import annotations

import re
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
class Era:
    """The rules of one era, as the collector, the pages and the model read them."""

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
    # What pins a dying memcg, in words (the collector's doctor prints it).
    pins: str
    memcg_slabinfo_debugfs: bool  # debugfs memcg_slabinfo exists (5.4-5.8, 3.4)
    kmem_slabinfo_filled: bool  # v1 memory.kmem.slabinfo lists caches (empty since 5.9, 3.5)
    # The kernel release whose struct sizes give the era's cost of a dying memcg
    # (app/domain/cost.py: <= 5.8, 5.9-6.9, 6.10+; kernel-notes.md 5.1).
    cost_release: str

    @property
    def memcg_sysfs_children(self) -> bool:
        """/sys/kernel/slab/<c>/cgroup/ may exist (slub_memcg_sysfs=1): the collector's name."""
        return self.sysfs_child_dirs

    @property
    def reparented_kinds(self) -> frozenset[str]:
        """Kinds of charge (memory.stat keys) that no longer hold a dying memcg in this era.

        Slab when it does not pin (5.3 cache reparenting, 5.9 objcg); percpu when it goes
        through objcg (5.9, with its memory.stat key); kernel pages when they no longer pin
        (5.13): kernel stacks and v1's whole kmem usage (`kernel`: slab, stacks and other
        kernel pages, all through objcg then); the LRU kinds when folios are reparented (the
        2026 series). Never `sock`: an open socket holds a css reference of its own
        (mem_cgroup_sk_alloc), "other direct css holders" in every era (kernel-notes.md 2,
        'Pins and release by era').
        """
        kinds: set[str] = set()
        if self.slab_pin is SlabPin.NONE:
            kinds.add("slab")
        if self.memory_stat_percpu:
            kinds.add("percpu")
        if not self.kmem_pages_pin:
            kinds |= {"kernel_stack", "kernel"}
        if not self.lru_pins:
            kinds |= {"file", "dirty", "shmem", "anon", "swap"}
        return frozenset(kinds)


ERAS: dict[str, Era] = {e.name: e for e in (
    Era("pre-5.3", "<= 5.2",
        "every charged slab page pins its memcg: one surviving dentry keeps it dying",
        True, SlabPin.PAGE, Shutdown.WITH_MEMCG, False, True, True, True, 1, 0, 0.05,
        since=None, memory_stat_percpu=False, nonleaf_slab_stats_drift=False,
        pins="every charged slab page, kmem pages, LRU pages, swap",
        memcg_slabinfo_debugfs=False, kmem_slabinfo_filled=True, cost_release="5.2"),
    Era("v4-5/7", "the 2019 patch 5/7 alone (as posted, fixed in v5)",
        "one css ref per non-empty per-memcg cache; pages hold 1<<order refs on the "
        "cache's percpu_ref; empty caches shut down early",
        True, SlabPin.CACHE, Shutdown.RCU_WORK, False, True, True, True, 1, 1, 0.05,
        since=None, memory_stat_percpu=False, nonleaf_slab_stats_drift=False,
        pins="one css ref per non-empty per-memcg kmem_cache; kmem pages, LRU, swap",
        memcg_slabinfo_debugfs=False, kmem_slabinfo_filled=True, cost_release="5.2"),
    Era("5.3", "5.3 - 5.8",
        "caches reparented at offline: slab no longer pins the dying memcg (the zombie "
        "caches pin the parent, one ref each, until empty)",
        True, SlabPin.NONE, Shutdown.WORK, True, True, True, True, 1, 0, 0.05,
        since=(5, 3), memory_stat_percpu=False, nonleaf_slab_stats_drift=True,
        pins="kmem (non-slab) pages, LRU pages, swap; no slab pins",
        memcg_slabinfo_debugfs=True, kmem_slabinfo_filled=True, cost_release="5.8"),
    Era("objcg", "5.9 - 5.12",
        "per-object obj_cgroup accounting, no per-memcg caches; kernel stacks still pin",
        False, SlabPin.NONE, Shutdown.NONE, False, True, True, False, 0, 0, 0.02,
        since=(5, 9), memory_stat_percpu=True, nonleaf_slab_stats_drift=False,
        pins="kmem pages (kernel stacks), LRU pages, swap",
        memcg_slabinfo_debugfs=False, kmem_slabinfo_filled=False, cost_release="5.12"),
    Era("objcg-kmem", "5.13+ (this machine: 6.18)",
        "kernel pages through objcg too: only page cache, shmem/tmpfs and swap pin",
        False, SlabPin.NONE, Shutdown.NONE, False, False, True, False, 0, 0, 0.02,
        since=(5, 13), memory_stat_percpu=True, nonleaf_slab_stats_drift=False,
        pins="LRU folios (page cache, shmem/tmpfs), swap",
        memcg_slabinfo_debugfs=False, kmem_slabinfo_filled=False, cost_release="6.10"),
    Era("lru-reparent", "7.1+ (Qi Zheng's series)",
        "LRU folios reparented too: nothing long-lived pins a dying memcg",
        False, SlabPin.NONE, Shutdown.NONE, False, False, False, False, 0, 0, 0.02,
        since=(7, 1), memory_stat_percpu=True, nonleaf_slab_stats_drift=False,
        pins="nothing long-lived",
        memcg_slabinfo_debugfs=False, kmem_slabinfo_filled=False, cost_release="7.1"),
)}
ORDER: list[str] = list(ERAS)
ERA_NAMES: tuple[str, ...] = tuple(ERAS)
# The era of a host whose kernel release cannot be read: today's kernels (5.13 to 7.0).
DEFAULT_ERA = "objcg-kmem"
assert DEFAULT_ERA in ERAS

# Where each fact of an era comes from (shown on /simulate beside the values).
FACT_SOURCES: dict[str, str] = {
    "kernels": "kernel-notes.md 2 (era headings) and 2(e) (7.1 target [unverified])",
    "summary": "kernel-notes.md 2, 'Pins and release by era' table",
    "per_memcg_caches": "kernel-notes.md 2(a)-(c): per-memcg kmem_caches until 5.8; 2(d): "
                        "none in released 5.9 (10befea91b61)",
    "slab_pin": "kernel-notes.md 2(a) try_charge css refs per slab page; 2(b) one css ref "
                "per cache (memcg_link_cache); 2(c) memcg_deactivate_kmem_caches reparents",
    "shutdown": "kernel-notes.md 2(a) memcg_destroy_kmem_caches; 2(b) "
                "kmemcg_queue_cache_shutdown call_rcu -> work; 2(c) kmemcg_cache_shutdown",
    "caches_reparented": "kernel-notes.md 2(c) step 2-3: WRITE_ONCE(memcg_params.memcg, "
                         "parent), css_get_many(parent, nr_reparented)",
    "kmem_pages_pin": "kernel-notes.md 2(e)1: kmem pages through objcg in 5.13 "
                      "(b4e0b68fbd9d)",
    "lru_pins": "kernel-notes.md 2(e)2: LRU folios pin until Qi Zheng's series",
    "sysfs_child_dirs": "kernel-notes.md 2(a) Sysfs, 3.3 (slub_memcg_sysfs=1)",
    "deactivate_grace_periods": "kernel-notes.md 6 'Deactivation latency': 1 RCU grace "
                                "period + 1 work item",
    "shutdown_grace_periods": "kernel-notes.md 6 'Shutdown latency': v4 RCU + work; 5.3 "
                              "work only (v6 changelog)",
    "release_delay_seconds": "assumption: RCU + css_free work after offline, a few jiffies; "
                             "longer with per-memcg cache deactivation",
    "since": "kernel-notes.md 6 'Kernel versions'",
    "memory_stat_percpu": "kernel-notes.md 3.7: percpu key 5.9 (772616b031f0)",
    "nonleaf_slab_stats_drift": "kernel-notes.md 2(c) Stats: 'Fixes: fb2f2b0adb98'",
    "pins": "kernel-notes.md 2, 'Pins and release by era' table",
    "memcg_slabinfo_debugfs": "kernel-notes.md 3.4",
    "kmem_slabinfo_filled": "kernel-notes.md 3.5",
    "cost_release": "kernel-notes.md 5.1 (Gushchin 2019, Averin 2022, Butt 2024)",
}

_RELEASE = re.compile(r"^(\d+)\.(\d+)")


class UnknownRelease(ValueError):
    """The release string does not start with `<major>.<minor>`."""


def parse_release(release: str) -> tuple[int, int]:
    """Return (major, minor) of a kernel release such as `6.18.44-fc-v657`."""
    m = _RELEASE.match(release.strip())
    if m is None:
        raise UnknownRelease(f"kernel release {release!r} does not start with MAJOR.MINOR")
    return int(m.group(1)), int(m.group(2))


def era_for_release(release: str) -> str:
    """Map a kernel release to its era name: the latest era released at or before it.

    Kernels older than every released era belong to the first era of the registry (before
    5.3). `v4-5/7` is never detected: that patch was posted for review, never released. The
    LRU reparenting series was queued for 7.1 (kernel-notes.md 2(e)); a vendor kernel that
    backports or lacks it is set with SLABSCOPE_ERA.
    """
    version = parse_release(release)
    released = [e for e in ERAS.values() if e.since is not None and e.since <= version]
    if not released:
        return ORDER[0]
    return max(released, key=lambda e: e.since or (0, 0)).name
