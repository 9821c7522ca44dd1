"""Cgroup frames and memory.stat blobs as the database holds them, decoded for readers."""

from __future__ import annotations

import logging
import struct
import zlib
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.domain import cgtable as ct

log = logging.getLogger("slabscope.db")

# memory.stat keys per figure: cgroup2 names first, then v1 (memory.stat of v1 says "cache",
# "rss"; shmem is in both; slab and kernel_stack are cgroup2 only, since 4.6).
_FIGURES: dict[str, tuple[str, ...]] = {
    "file_bytes": ("file", "cache"),
    "anon_bytes": ("anon", "rss"),
    "shmem_bytes": ("shmem",),
    "slab_bytes": ("slab",),
    "kernel_stack_bytes": ("kernel_stack",),
}


def memory_figures(stat: Mapping[str, int]) -> dict[str, int | None]:
    """The memory.stat figures we keep as columns, from v1 or v2 key names."""
    out: dict[str, int | None] = {}
    for col, keys in _FIGURES.items():
        out[col] = next((stat[k] for k in keys if k in stat), None)
    if out["slab_bytes"] is None and "slab_reclaimable" in stat:  # 4.6+ both, "slab" 5.9+
        out["slab_bytes"] = stat["slab_reclaimable"] + stat.get("slab_unreclaimable", 0)
    return out


# What a corrupt blob (a disk error, a bad restore, a hand edit) raises from the codec.
CORRUPT = (ValueError, IndexError, struct.error, zlib.error)


def unpack(blob: bytes, what: str) -> tuple[tuple[str, ...], array[int],
                                          tuple[array[int], ...], tuple[bytes, ...]] | None:
    """unpack_table, or None (and a warning naming the row) for a corrupt blob.

    One bad frame must not take a host's pages down: its rows are read as absent, the
    frames before and after it as usual.
    """
    try:
        return ct.unpack_table(blob)
    except CORRUPT as err:
        log.warning("corrupt %s skipped: %s", what, err)
        return None


def decode(blob: bytes, what: str = "frame") -> dict[int, dict[str, int]]:
    """A frame as {cgroup id: {column: value}} (absent columns left out)."""
    got = unpack(blob, what)
    if got is None:
        return {}
    out: dict[int, dict[str, int]] = {i: {} for i in got[1]}
    fill(out, got)
    return out


def fill(out: Mapping[int, dict[str, Any]],
         got: tuple[tuple[str, ...], array[int], tuple[array[int], ...], tuple[bytes, ...]]
         ) -> None:
    """Set each present cell of an unpacked table into its row's dict in `out`."""
    columns, ids, values, present = got
    rows = [out[i] for i in ids]
    for c, v, p in zip(columns, values, present, strict=True):
        for k, row in enumerate(rows):
            if p[k]:
                row[c] = v[k]


@dataclass(frozen=True, slots=True)
class Figures:
    """One cgroup's row of a frame, split by source file."""

    memory_stat: dict[str, int]
    cgroup_stat: dict[str, int] | None
    usage_bytes: int | None
    kmem_usage_bytes: int | None


def decode_figures(blob: bytes, what: str = "cgroup frame") -> dict[int, Figures]:
    """A frame as {cgroup id: Figures}, each column classified once, not once a row."""
    got = unpack(blob, what)
    if got is None:
        return {}
    columns, ids, values, present = got
    stat = [(c[len(ct.STAT):], v, p) for c, v, p in zip(columns, values, present, strict=True)
            if c.startswith(ct.STAT)]
    cgstat = [(c[len(ct.CGSTAT):], v, p) for c, v, p in
              zip(columns, values, present, strict=True) if c.startswith(ct.CGSTAT)]
    usage = _column(columns, values, present, ct.USAGE)
    kmem = _column(columns, values, present, ct.KMEM_USAGE)
    out: dict[int, Figures] = {}
    for k, cid in enumerate(ids):
        cg = {name: v[k] for name, v, p in cgstat if p[k]}
        out[cid] = Figures({name: v[k] for name, v, p in stat if p[k]}, cg or None,
                           usage[k] if usage else None, kmem[k] if kmem else None)
    return out


def _column(columns: tuple[str, ...], values: tuple[array[int], ...],
            present: tuple[bytes, ...], name: str) -> list[int | None] | None:
    if name not in columns:
        return None
    i = columns.index(name)
    return [v if p else None for v, p in zip(values[i], present[i], strict=True)]

