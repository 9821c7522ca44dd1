"""The model's input from a host's history, in SQL, bounded by buckets, never by raw rows.

Dying and live memcgs come as the most of each bucket; removed cgroups as counts and byte
sums per bucket (what the model needs to fit rates and shares). Whole hours already rolled
up (`scrape_hourly`, `removed_hourly`, built by `slabscope retention`) are read from the
rollups, one row an hour; raw rows are read only for the part of the first hour before the
window and for the hours not rolled up yet. Rolled-up hours are placed in the bucket of their
start, so where rollups serve, times are good to the hour (the model fits days).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, case, cast, delete, func, insert, select
from sqlalchemy.orm import Session

from app.db import models as m
from app.db.base import valid_u64
from app.db.queries import MAX_POINTS, epoch_seconds
from app.domain.eras import UnknownRelease, parse_release
from app.domain.history import ChurnBucket, HostHistory, RemovalBucket

HOUR = 3600
Buckets = dict[int, list[float]]


def bucket_width(since: datetime, until: datetime) -> int:
    """Seconds per bucket: at most MAX_POINTS buckets; whole hours beyond one hour."""
    span = max(1.0, (until - since).total_seconds())
    width = max(1, math.ceil(span / (MAX_POINTS - 1)))
    return width if width <= HOUR else math.ceil(width / HOUR) * HOUR


def _removal_aggregates() -> list[Any]:
    # A figure >= 2^63 (counter underflow) counts as unknown: 0 in the sums, not known.
    r = m.RemovedCgroup
    file = func.coalesce(valid_u64(r.file_bytes), 0)
    shm = func.coalesce(valid_u64(r.shmem_bytes), 0)
    kst = func.coalesce(valid_u64(r.kernel_stack_bytes), 0)
    slab = valid_u64(r.slab_bytes)

    def n(cond: Any) -> Any:
        return func.sum(case((cond, 1), else_=0))

    def total(v: Any) -> Any:  # float: a sum of u64 figures does not fit 64 bits
        return func.sum(cast(v, Float))
    return [func.count(r.id), n(file > 0), n(shm > 0), n((file > 0) & (shm == 0)), n(kst > 0),
            func.count(slab), total(file), total(shm), total(func.coalesce(slab, 0)), total(kst)]


REMOVED_ROLLUP = ("removed_total", "with_file_total", "with_shmem_total",
                  "pagecache_only_total", "with_kernel_stack_total", "slab_known_total",
                  "file_bytes_sum", "shmem_bytes_sum", "slab_bytes_sum",
                  "kernel_stack_bytes_sum")
REMOVED_SUMS = frozenset(REMOVED_ROLLUP[6:])


def rollup_removed(session: Session, now: datetime,
                   lookback: timedelta = timedelta(hours=24)) -> int:
    """Recompute removed_hourly for [last rolled hour - lookback, last complete hour).

    Removed rows are never deleted by retention, so any hour can be recomputed: the first
    run rolls up everything there is.
    """
    to = now.replace(minute=0, second=0, microsecond=0)
    last = session.scalar(select(func.max(m.RemovedHourly.hour_at)))
    oldest = session.scalar(select(func.min(m.RemovedCgroup.removed_at)))
    if oldest is None:
        return 0
    floor = oldest.replace(minute=0, second=0, microsecond=0)
    frm = max(last - lookback, floor) if last is not None else floor
    if frm >= to:
        return 0
    r = m.RemovedCgroup
    h = func.floor(epoch_seconds(r.removed_at) / HOUR)
    rows = session.execute(select(r.host_id, h, *_removal_aggregates())
                           .where(r.removed_at >= frm, r.removed_at < to)
                           .group_by(r.host_id, h)).all()
    session.execute(delete(m.RemovedHourly).where(m.RemovedHourly.hour_at >= frm,
                                                  m.RemovedHourly.hour_at < to))
    if rows:
        session.execute(insert(m.RemovedHourly), [
            {"host_id": x[0], "hour_at": datetime.fromtimestamp(float(x[1]) * HOUR, UTC),
             **{k: (float if k in REMOVED_SUMS else int)(v or 0)
                for k, v in zip(REMOVED_ROLLUP, x[2:], strict=True)}}
            for x in rows])
    return len(rows)


def _rolled_span(session: Session, hour: Any, where: Sequence[Any], since: datetime,
                 until: datetime) -> tuple[datetime, datetime] | None:
    """The whole rolled-up hours inside [since, until], as [from, to), if any."""
    rolled = session.scalar(select(func.max(hour)).where(*where))
    if rolled is None:
        return None
    frm = since.replace(minute=0, second=0, microsecond=0)
    if frm < since:
        frm += timedelta(hours=1)
    to = min(until.replace(minute=0, second=0, microsecond=0), rolled + timedelta(hours=1))
    return (frm, to) if frm < to else None


def _merge(acc: Buckets, rows: Sequence[Any], how: Sequence[str]) -> None:
    """Add rows (bucket, v0, v1, ...) into acc, each value by `how` ('sum' or 'max')."""
    for r in rows:
        vals = r[1:]
        cur = acc.get(int(r[0]))
        if cur is None:
            acc[int(r[0])] = [float(v) if v is not None else math.nan for v in vals]
            continue
        for i, v in enumerate(vals):
            if v is None:
                continue
            if math.isnan(cur[i]):
                cur[i] = float(v)
            else:
                cur[i] = cur[i] + float(v) if how[i] == "sum" else max(cur[i], float(v))


def _raw_ranges(span: tuple[datetime, datetime] | None, since: datetime,
                until: datetime) -> list[tuple[datetime, datetime, bool]]:
    """What the rollups do not cover: (from, to, to included)."""
    if span is None:
        return [(since, until, True)]
    return [r for r in ((since, span[0], False), (span[1], until, True)) if r[0] < r[1] or r[2]]


def dying_live(session: Session, host_id: int, since: datetime, until: datetime,
               width: int) -> list[tuple[int, float, float | None]]:
    """The most dying and live memcgs of each bucket (live: of hourly means where rolled).

    Buckets are numbered from 1970: bucket k starts k * width seconds after the epoch.
    """
    sh, s = m.ScrapeHourly, m.Scrape
    acc: Buckets = {}
    span = _rolled_span(session, sh.hour_at, [sh.host_id == host_id], since, until)
    if span is not None:
        b = func.floor(epoch_seconds(sh.hour_at) / width)
        live = sh.memcg_live_sum_total / func.nullif(sh.scrapes_total, 0)
        _merge(acc, session.execute(
            select(b, func.max(sh.memcg_dying_max_total), func.max(live))
            .where(sh.host_id == host_id, sh.hour_at >= span[0], sh.hour_at < span[1])
            .group_by(b)).all(), ("max", "max"))
    b = func.floor(epoch_seconds(s.taken_at) / width)
    for lo, hi, incl in _raw_ranges(span, since, until):
        upper = s.taken_at <= hi if incl else s.taken_at < hi
        _merge(acc, session.execute(
            select(b, func.max(valid_u64(s.memcg_dying_total)),
                   func.max(valid_u64(s.memcg_visible_total)))
            .where(s.host_id == host_id, s.taken_at >= lo, upper).group_by(b)).all(),
            ("max", "max"))
    return [(k, v[0], None if math.isnan(v[1]) else v[1])
            for k, v in sorted(acc.items()) if not math.isnan(v[0])]


def removals(session: Session, host_id: int, since: datetime, until: datetime,
             width: int) -> list[tuple[int, list[int]]]:
    """Removed cgroups per bucket (numbered as in dying_live): REMOVED_ROLLUP's counts and
    byte sums, in order."""
    rh, r = m.RemovedHourly, m.RemovedCgroup
    acc: Buckets = {}
    sums = ("sum",) * len(REMOVED_ROLLUP)
    span = _rolled_span(session, rh.hour_at, [rh.host_id == host_id], since, until)
    if span is not None:
        b = func.floor(epoch_seconds(rh.hour_at) / width)
        _merge(acc, session.execute(
            select(b, *[func.sum(getattr(rh, c)) for c in REMOVED_ROLLUP])
            .where(rh.host_id == host_id, rh.hour_at >= span[0], rh.hour_at < span[1])
            .group_by(b)).all(), sums)
    b = func.floor(epoch_seconds(r.removed_at) / width)
    for lo, hi, incl in _raw_ranges(span, since, until):
        upper = r.removed_at <= hi if incl else r.removed_at < hi
        _merge(acc, session.execute(
            select(b, *_removal_aggregates())
            .where(r.host_id == host_id, r.removed_at >= lo, upper).group_by(b)).all(), sums)
    return [(k, [0 if math.isnan(x) else int(x) for x in v]) for k, v in sorted(acc.items())]


CHURN_SUMS = ("intervals_total", "inexact_total", "created_total", "removed_total",
              "freed_total", "freed_intervals_total")


def memcg_hierarchy(host: m.Host) -> str:
    """The hierarchy whose cgroups hold the host's memcgs: cgroup2 alone, else v1 memory."""
    return "unified" if host.cgroup_layout == "v2" else "memory"


def churn(session: Session, host_id: int, hierarchy: str, since: datetime, until: datetime,
          width: int) -> list[tuple[int, list[int]]]:
    """Counted churn per bucket (numbered as in dying_live), each interval in the bucket it
    ends in: CHURN_SUMS in order, from churn_hourly where rolled up, else cgroup_churn."""
    kh, c = m.ChurnHourly, m.CgroupChurn
    acc: Buckets = {}
    sums = ("sum",) * len(CHURN_SUMS)
    span = _rolled_span(session, kh.hour_at, [kh.host_id == host_id,
                                              kh.hierarchy == hierarchy], since, until)
    if span is not None:
        b = func.floor(epoch_seconds(kh.hour_at) / width)
        _merge(acc, session.execute(
            select(b, *[func.sum(getattr(kh, k)) for k in CHURN_SUMS])
            .where(kh.host_id == host_id, kh.hierarchy == hierarchy, kh.hour_at >= span[0],
                   kh.hour_at < span[1]).group_by(b)).all(), sums)
    b = func.floor(epoch_seconds(c.taken_at) / width)
    known = c.freed_total.is_not(None)
    for lo, hi, incl in _raw_ranges(span, since, until):
        upper = c.taken_at <= hi if incl else c.taken_at < hi
        _merge(acc, session.execute(
            select(b, func.count(), func.sum(case((c.exact, 0), else_=1)),
                   func.sum(c.created_total), func.sum(c.removed_total),
                   func.sum(func.coalesce(c.freed_total, 0)),
                   func.sum(case((known, 1), else_=0)))
            .where(c.host_id == host_id, c.hierarchy == hierarchy, c.taken_at >= lo, upper)
            .group_by(b)).all(), sums)
    return [(k, [0 if math.isnan(x) else int(x) for x in v]) for k, v in sorted(acc.items())]


def churn_buckets(rows: list[tuple[int, list[int]]], width: int, t0: float
                  ) -> list[ChurnBucket]:
    """churn() rows as the model's buckets: freed only where every interval knew it."""
    out = []
    for k, (n, inexact, created, removed, freed, freed_n) in rows:
        out.append(ChurnBucket(max(0.0, k * width - t0), created, removed,
                               freed if freed_n == n else None, inexact == 0))
    return out


def host_history(session: Session, host: m.Host, since: datetime,
                 until: datetime) -> HostHistory | None:
    """The model's input over [since, until]: series and removals in the same buckets."""
    width = bucket_width(since, until)
    pts = dying_live(session, host.id, since, until, width)
    if not pts:
        return None
    t0 = max(since.timestamp(), pts[0][0] * width)  # the first bucket may start earlier
    got = removals(session, host.id, since, until, width)
    counted = churn(session, host.id, memcg_hierarchy(host), since, until, width)
    return HostHistory(
        host.name, host.era, host.possible_cpus_total, host.numa_nodes_total,
        datetime.fromtimestamp(t0, UTC), [max(0.0, k * width - t0) for k, _, _ in pts],
        [d for _, d, _ in pts], [lv or 0.0 for _, _, lv in pts],
        [RemovalBucket(max(0.0, k * width - t0), *v) for k, v in got],
        churn_buckets(counted, width, t0), kernel=_kernel(host.kernel_release))


def _kernel(release: str) -> tuple[int, int] | None:
    try:
        return parse_release(release)
    except UnknownRelease:
        return None


def removed_slab_mean(session: Session, host_id: int, until: datetime,
                      window: timedelta = timedelta(hours=24)) -> int | None:
    """Mean slab bytes left by the cgroups removed in [until - window, until].

    For the refcount view's estimate of what a dying memcg holds. Reads at most a day of
    hourly rollups and the raw rows of hours not rolled up, whatever the history; None where
    the kernel reported no slab (v1), found without scanning every removed row.
    """
    buckets = removals(session, host_id, until - window, until, HOUR)
    known = sum(v[REMOVED_ROLLUP.index("slab_known_total")] for _, v in buckets)
    total = sum(v[REMOVED_ROLLUP.index("slab_bytes_sum")] for _, v in buckets)
    return total // known if known else None
