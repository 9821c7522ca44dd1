"""Kernel eras of memcg / kmem_cache lifecycle, and detection from `uname -r`.

The table is DESIGN.md's; kernel facts in ../shared/kernel-notes.md section 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Era:
    """One era: its name, the kernels it covers, and what pins a dying memcg in it."""

    name: str
    kernels: str
    pins: str
    per_memcg_caches: bool  # per-memcg kmem_caches exist (<= 5.8)
    memcg_sysfs_children: bool  # /sys/kernel/slab/<c>/cgroup/ may exist (slub_memcg_sysfs=1)
    memcg_slabinfo_debugfs: bool  # debugfs memcg_slabinfo exists (5.4-5.8)
    kmem_slabinfo_filled: bool  # v1 memory.kmem.slabinfo lists caches (empty since 5.9)


ERAS: dict[str, Era] = {
    e.name: e
    for e in (
        Era("pre-5.3", "<= 5.2", "every charged slab page, kmem pages, LRU pages, swap",
            True, True, False, True),
        Era("v4-5/7", "the 2019 patch 5/7 alone (never released)",
            "one css ref per non-empty per-memcg kmem_cache; kmem pages, LRU, swap",
            True, True, False, True),
        Era("5.3", "5.3 - 5.8", "kmem (non-slab) pages, LRU pages, swap; no slab pins",
            True, True, True, True),
        Era("objcg", "5.9 - 5.12", "kmem pages (kernel stacks), LRU pages, swap",
            False, False, False, False),
        Era("objcg-kmem", "5.13+", "LRU folios (page cache, shmem/tmpfs), swap",
            False, False, False, False),
        Era("lru-reparent", "7.1+ (Qi Zheng's LRU reparenting series)", "nothing long-lived",
            False, False, False, False),
    )
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
    """Map a kernel release to its era name.

    `v4-5/7` is never detected: that patch was posted for review, never released. The LRU
    reparenting series was queued for 7.1 (kernel-notes.md 2(e)); a vendor kernel that
    backports or lacks it is set with SLABSCOPE_ERA.
    """
    version = parse_release(release)
    if version < (5, 3):
        return "pre-5.3"
    if version < (5, 9):
        return "5.3"
    if version < (5, 13):
        return "objcg"
    if version < (7, 1):
        return "objcg-kmem"
    return "lru-reparent"
