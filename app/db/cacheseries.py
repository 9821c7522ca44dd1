"""A cache's chart over a range: rollups where they serve the step, slab frames elsewhere."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import models as m
from app.db import slabframes
from app.db.queries import (
    ROLLUP_CACHE,
    Series,
    _accumulate,
    _from_rollup,
    _Rollup,
    _series,
    choose_step,
    epoch_seconds,
)

FIVE_MINUTES = 300  # the width of slab_5min's buckets


def cache_step(since: datetime, until: datetime, step: int | None) -> int:
    """The bucket width of a cache chart: as choose_step, but past a minute rounded up to
    whole 5 minutes, so ranges past ~1.5 days read 5-minute rollups, not every raw frame
    (a frame costs an inflate: 17,280 of them for 3 days of 15 s scrapes take ~0.5 s)."""
    width = choose_step(since, until, step)
    if 60 < width < 3600:
        return math.ceil(width / FIVE_MINUTES) * FIVE_MINUTES
    return width


ROLLUP_5MIN: dict[str, Any] = {
    "bytes": m.SlabFiveMinutes.slab_bytes_sum,
    "objects": m.SlabFiveMinutes.num_objs_sum_total,
    "active_objs": m.SlabFiveMinutes.active_objs_sum_total,
    "slabs": m.SlabFiveMinutes.num_slabs_sum_total,
}


def _five_minute_span(session: Session, cid: int, since: datetime, until: datetime
                      ) -> tuple[datetime, datetime] | None:
    """The whole 5-minute buckets of [since, until] the cache's 5-minute rollups cover."""
    r = m.SlabFiveMinutes
    first, last = session.execute(select(func.min(r.bucket_at), func.max(r.bucket_at))
                                  .where(r.cache_id == cid)).one()
    if first is None:
        return None
    t0 = math.ceil(since.timestamp() / FIVE_MINUTES) * FIVE_MINUTES
    t1 = math.floor(until.timestamp() / FIVE_MINUTES) * FIVE_MINUTES
    lo = max(first, datetime.fromtimestamp(t0, UTC))
    hi = min(last + timedelta(seconds=FIVE_MINUTES), datetime.fromtimestamp(t1, UTC))
    return (lo, hi) if lo < hi else None


def cache_series(session: Session, cid: int, metrics: Sequence[str], since: datetime,
                 until: datetime, step: int) -> dict[str, Series]:
    """One cache's metrics over time, from its rollups where they serve the step (hourly
    ones for steps of an hour or more, 5-minute ones for multiples of 5 minutes) and from
    the host's slab frames elsewhere (only their time and blob read, then the cache's cells
    picked out of each)."""
    names = list(metrics)
    for n in names:
        if n not in slabframes.METRICS:
            raise ValueError(f"unknown cache metric {n!r}")
    acc, add = _accumulate(names)
    raw = [(since, until)]
    if step >= 3600:
        raw = [(_from_rollup(session, _Rollup(
            m.SlabHourly.hour_at, m.SlabHourly.samples_total, ROLLUP_CACHE,
            [m.SlabHourly.cache_id == cid]), names, since, until, step, add), until)]
    elif step % FIVE_MINUTES == 0:
        span = _five_minute_span(session, cid, since, until)
        if span is not None:
            r = m.SlabFiveMinutes
            rb = func.floor(epoch_seconds(r.bucket_at) / step)
            cols: list[Any] = []
            for n in names:
                cols += [func.sum(ROLLUP_5MIN[n]), func.sum(r.samples_total)]
            for row in session.execute(select(rb, *cols).where(
                    r.cache_id == cid, r.bucket_at >= span[0], r.bucket_at < span[1])
                    .group_by(rb)).all():
                add(row[0], row[1:])
            raw = [(since, span[0] - timedelta(microseconds=1)), (span[1], until)]
    host_id = session.scalar(select(m.SlabCache.host_id).where(m.SlabCache.id == cid))
    f = m.SlabFrame
    for lo, hi in raw:
        if lo > hi:
            continue
        frames = session.execute(select(f.taken_at, f.data).where(
            f.host_id == host_id, f.taken_at >= lo, f.taken_at <= hi))
        for b, sums in slabframes.bucket_sums(frames, cid, names, step).items():
            add(b, sums)
    return _series(acc, names, step)
