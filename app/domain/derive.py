"""Pure arithmetic over stored samples: growth rates and the cost of dying memcgs."""

from __future__ import annotations

from datetime import datetime

from app.domain.eras import DEFAULT_ERA, ERAS, SlabPin


def growth_per_day(old: tuple[datetime, int] | None, new: tuple[datetime, int] | None,
                   min_seconds: float = 60.0) -> float | None:
    """Change per day between two (time, value) points; None when they are too close."""
    if old is None or new is None:
        return None
    seconds = (new[0] - old[0]).total_seconds()
    if seconds < min_seconds:
        return None
    return (new[1] - old[1]) * 86_400.0 / seconds


def likely_pin(era: str, file_bytes: int | None, shmem_bytes: int | None,
               slab_bytes: int | None, kernel_stack_bytes: int | None) -> str:
    """What most likely keeps a removed cgroup's memcg dying, from what it last had charged.

    Era facts: kernel-notes.md 2; on objcg-kmem hosts (5.13+) only LRU folios and swap pin
    (lab-findings.md 1: slab never pins, page cache until reclaimed, tmpfs until deleted).
    """
    if shmem_bytes:
        return "tmpfs/shmem: stays until the files are deleted (drop_caches does not help)"
    facts = ERAS.get(era, ERAS[DEFAULT_ERA])
    if file_bytes and facts.lru_pins:
        return "page cache: freed by reclaim or drop_caches 1"
    if kernel_stack_bytes and facts.kmem_pages_pin:
        return "kernel stacks of threads that moved away (before 5.13)"
    if slab_bytes and facts.slab_pin is not SlabPin.NONE:
        return "slab objects in its per-memcg caches (before 5.3)"
    return "nothing charged when last seen: freed shortly after removal"
