"""Slab frames: every cache of a host at one scrape as one blob (cgtable.pack_table).

One row per scrape instead of one per cache (235 a tick): on PostgreSQL a slab_sample row
cost ~110 bytes with its key, 146 MB per host per day. Row ids are `slab_cache.id`s; the
columns are the /proc/slabinfo counts and the SLUB ones (absent when not collected). Values
are u64, so counts above 2^63 (which BIGINT columns could not hold) are kept exactly.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.db.frames import CORRUPT, fill, log, unpack
from app.domain import cgtable as ct

COLUMNS: tuple[str, ...] = ("active_objs", "num_objs", "num_slabs", "slab_bytes",
                            "partial_slabs", "cpu_slabs")
# Chart metric -> column (the names the API and the pages use).
METRICS: dict[str, str] = {"bytes": "slab_bytes", "objects": "num_objs",
                           "active_objs": "active_objs", "slabs": "num_slabs"}

Row = Mapping[str, int | None]
# A count of 2^63 or more is per-CPU counter underflow, not a count: frames keep it exactly
# (and the cache table shows it), but charts and rollups leave it out, as an absent cell.
SANE = 1 << 63


def pack(rows: Mapping[int, Row]) -> bytes:
    """A frame from {cache id: {column: value or None}} (missing columns are absent)."""
    ids = list(rows)
    values = []
    present = []
    for c in COLUMNS:
        v = array("Q", bytes(8 * len(ids)))
        p = bytearray(len(ids))
        for k, cid in enumerate(ids):
            x = rows[cid].get(c)
            if x is not None:
                if not 0 <= x <= ct.U64_MAX:
                    raise ValueError(f"slab count {c}={x!r} of cache {cid} is not a u64")
                v[k] = x
                p[k] = 1
        values.append(v)
        present.append(bytes(p))
    return ct.pack_table(COLUMNS, ids, values, present)


def decode(blob: bytes) -> dict[int, dict[str, int | None]]:
    """A frame as {cache id: {column: value or None}}, every column of COLUMNS present."""
    got = unpack(blob, "slab frame")
    if got is None:
        return {}
    out: dict[int, dict[str, int | None]] = {i: dict.fromkeys(COLUMNS) for i in got[1]}
    fill(out, got)
    return out


def bucket_sums(frames: Iterable[Any], cid: int, metrics: Sequence[str],
                step: int) -> dict[int, list[int]]:
    """One cache's sums and counts per bucket: {bucket: [sum_0, count_0, sum_1, ...]}.

    Each frame costs an inflate and a few byte picks (cgtable.CellReader), not a decode of
    every cache. A frame without the cache adds nothing, as a missing row did.
    """
    reader = ct.CellReader([METRICS[mt] for mt in metrics])
    # Integer sums, exact as SQL's sum() of the old columns was; made floats once, by the caller.
    acc: dict[int, list[int]] = {}
    width = 2 * len(metrics)
    for at, blob in frames:
        try:
            cells = reader.cells(blob, cid)
        except CORRUPT as err:
            log.warning("corrupt slab frame at %s skipped: %s", at, err)
            continue
        if cells is None:
            continue
        b = int(at.timestamp() // step)
        row = acc.get(b)
        if row is None:
            row = acc[b] = [0] * width
        for k, v in enumerate(cells):
            if v is not None and v < SANE:
                row[2 * k] += v
                row[2 * k + 1] += 1
    return acc


def rollup_sums(frames: Iterable[Any], widths: Sequence[int]
                ) -> dict[int, dict[tuple[int, int], list[int]]]:
    """Per bucket width, per (cache id, bucket number): [samples, slab_bytes, num_objs,
    active_objs, num_slabs] sums; each frame decoded once for every width."""
    acc: dict[int, dict[tuple[int, int], list[int]]] = {w: {} for w in widths}
    for at, blob in frames:
        ts = int(at.timestamp())
        got = unpack(blob, f"slab frame at {at}")
        if got is None:
            continue
        columns, ids, values, present = got
        cols = {c: (v, p) for c, v, p in zip(columns, values, present, strict=True)}
        picked = [cols.get(c) for c in ("slab_bytes", "num_objs", "active_objs", "num_slabs")]
        for k, cid in enumerate(ids):
            cells = [vp[0][k] if vp is not None and vp[1][k] and vp[0][k] < SANE else 0
                     for vp in picked]
            for w, by in acc.items():
                row = by.get((cid, ts // w))
                if row is None:
                    row = by[(cid, ts // w)] = [0] * 5
                row[0] += 1
                for j, v in enumerate(cells, start=1):
                    row[j] += v
    return acc
