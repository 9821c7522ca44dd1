"""Read queries for the API and the pages: all SQL here, downsampling done in the database
(a cache's chart, from slab frames decoded in Python: app/db/cacheseries.py).

Callers pass a session and own the transaction. Times in and out are tz-aware UTC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, Select, and_, cast, func, select, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.db import counts, slabframes
from app.db import models as m
from app.db.base import utc, valid_u64

MAX_POINTS = 2000


class epoch_seconds(FunctionElement[float]):
    """Seconds since 1970 of a UTC timestamp column, in SQL, per dialect."""

    type = Float()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # UTCDateTime stores naive UTC text on SQLite: "2026-11-26 17:31:19.123456". julianday is
    # a double: round to the millisecond, or 18:00:00 lands at 64799.99999 and floors an hour
    # early.
    return (f"round((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5)"
            " * 86400.0, 3)")


@compiles(epoch_seconds, "postgresql")
def _epoch_pg(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


@compiles(epoch_seconds)
def _epoch_default(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


SCRAPE_METRICS: dict[str, Any] = {
    "memcg_dying": m.Scrape.memcg_dying_total,
    "memcg_live": m.Scrape.memcg_visible_total,
    "memcg_total": m.Scrape.memcg_total,
    "slab_bytes": m.Scrape.slab_bytes,
    "sreclaimable_bytes": m.Scrape.sreclaimable_bytes,
    "sunreclaim_bytes": m.Scrape.sunreclaim_bytes,
    "percpu_bytes": m.Scrape.percpu_bytes,
    "kernel_stack_bytes": m.Scrape.kernel_stack_bytes,
    "shmem_bytes": m.Scrape.shmem_bytes,
}


@dataclass(frozen=True, slots=True)
class Series:
    """Points of one metric: bucket start times and values (averaged within a bucket)."""

    metric: str
    step_seconds: int
    times: list[datetime]
    values: list[float | None]


def choose_step(since: datetime, until: datetime, step: int | None) -> int:
    """The bucket width: as asked, but never so small that more than MAX_POINTS come back."""
    span = max(1.0, (until - since).total_seconds())
    return max(step or 1, math.ceil(span / MAX_POINTS))


HOUR = 3600


def covering_step(session: Session, host_id: int, since: datetime, step: int) -> int:
    """The step of a host's chart from `since`: as given, or an hour where the range reaches
    hours whose raw rows retention dropped, so that their hourly rollups serve the range
    (a 30-day chart at 1,296 s buckets read raw rows alone: 14 days of 30). Uniform hourly
    buckets, not fine ones beside whole hours; the step says it (SeriesView.step_seconds).
    """
    if step >= HOUR:
        return step
    sh = m.ScrapeHourly
    dropped = session.scalar(select(sh.hour_at).where(
        sh.host_id == host_id, sh.raw_dropped.is_(True),
        sh.hour_at > since - timedelta(hours=1)).limit(1))
    return step if dropped is None else HOUR


def host_by_name(session: Session, name: str) -> m.Host | None:
    """One host row by name."""
    return session.scalars(select(m.Host).where(m.Host.name == name)).one_or_none()


ROLLUP_SCRAPE: dict[str, Any] = {
    "memcg_dying": m.ScrapeHourly.memcg_dying_sum_total,
    "memcg_live": m.ScrapeHourly.memcg_live_sum_total,
    "memcg_total": m.ScrapeHourly.memcg_total_sum_total,
    "slab_bytes": m.ScrapeHourly.slab_bytes_sum,
    "sreclaimable_bytes": m.ScrapeHourly.sreclaimable_bytes_sum,
    "sunreclaim_bytes": m.ScrapeHourly.sunreclaim_bytes_sum,
    "percpu_bytes": m.ScrapeHourly.percpu_bytes_sum,
    "kernel_stack_bytes": m.ScrapeHourly.kernel_stack_bytes_sum,
    "shmem_bytes": m.ScrapeHourly.shmem_bytes_sum,
}
ROLLUP_CACHE: dict[str, Any] = {
    "bytes": m.SlabHourly.slab_bytes_sum,
    "objects": m.SlabHourly.num_objs_sum_total,
    "active_objs": m.SlabHourly.active_objs_sum_total,
    "slabs": m.SlabHourly.num_slabs_sum_total,
}


@dataclass(frozen=True, slots=True)
class _Rollup:
    """Where a series' hourly rollups are: table, time column, count column, filter."""

    hour: Any
    count: Any
    values: dict[str, Any]
    where: list[Any]


def _accumulate(names: Sequence[str]) -> tuple[dict[int, list[float]],
                                               Callable[[Any, Sequence[Any]], None]]:
    """Per-bucket sums and counts of several metrics, and the function that adds to them."""
    acc: dict[int, list[float]] = {}  # bucket -> [sum_0, count_0, sum_1, count_1, ...]

    def add(bucket: Any, pairs: Sequence[Any]) -> None:
        row = acc.setdefault(int(bucket), [0.0] * (2 * len(names)))
        for k in range(len(names)):
            if pairs[2 * k] is not None:
                row[2 * k] += float(pairs[2 * k])
                row[2 * k + 1] += float(pairs[2 * k + 1] or 0)

    return acc, add


def _from_rollup(session: Session, rollup: _Rollup | None, names: Sequence[str],
                 since: datetime, until: datetime, step: int,
                 add: Callable[[Any, Sequence[Any]], None]) -> datetime:
    """Add the rolled-up hours of the range (buckets of an hour or more); return where raw
    rows take over."""
    if rollup is None or step < 3600:
        return since
    rolled: datetime | None = session.scalar(select(func.max(rollup.hour)).where(*rollup.where))
    if rolled is None or rolled + timedelta(hours=1) <= since:
        return since
    upto = min(until, rolled + timedelta(hours=1))
    rb = func.floor(epoch_seconds(rollup.hour) / step)
    cols: list[Any] = []
    for n in names:
        cols += [func.sum(rollup.values[n]), func.sum(rollup.count)]
    for r in session.execute(select(rb, *cols).where(
            *rollup.where, rollup.hour >= since, rollup.hour < upto).group_by(rb)).all():
        add(r[0], r[1:])
    return max(since, upto)


def _series(acc: dict[int, list[float]], names: Sequence[str], step: int) -> dict[str, Series]:
    keys = sorted(acc)
    times = [datetime.fromtimestamp(float(b) * step, UTC) for b in keys]
    return {n: Series(n, step, times,
                      [acc[b][2 * i] / acc[b][2 * i + 1] if acc[b][2 * i + 1] else None
                       for b in keys])
            for i, n in enumerate(names)}


def _bucketed(session: Session, values: dict[str, Any], where: Sequence[Any],
              join: Any | None, since: datetime, until: datetime, step: int,
              rollup: _Rollup | None = None) -> dict[str, Series]:
    """Several metrics over the same buckets: sums and counts per bucket, in SQL.

    With buckets of an hour or more, the hours already rolled up come from the hourly
    rollups (sums and counts, so they combine exactly) and only newer hours from raw rows.
    """
    names = list(values)
    acc, add = _accumulate(names)
    raw_since = _from_rollup(session, rollup, names, since, until, step, add)
    t = epoch_seconds(m.Scrape.taken_at)
    bucket = func.floor(t / step)
    cols = []
    for n in names:
        # Values >= 2^63 (counter underflow) are left out of the means; the sums are
        # floats (SQLite's integer sum() raises past 2^63).
        v = valid_u64(values[n])
        cols += [func.sum(cast(v, Float)), func.count(v)]
    q: Select[Any] = select(bucket.label("b"), *cols).select_from(m.Scrape)
    if join is not None:
        q = q.join(*join)
    q = q.where(*where, m.Scrape.taken_at >= raw_since, m.Scrape.taken_at <= until)
    for r in session.execute(q.group_by(bucket)).all():
        add(r[0], r[1:])
    return _series(acc, names, step)


def scrape_series(session: Session, host_id: int, metrics: Sequence[str], since: datetime,
                  until: datetime, step: int) -> dict[str, Series]:
    """Scrape-level metrics of one host, bucketed in SQL, in one query."""
    return _bucketed(session, {n: SCRAPE_METRICS[n] for n in metrics},
                     [m.Scrape.host_id == host_id], None, since, until, step,
                     _Rollup(m.ScrapeHourly.hour_at, m.ScrapeHourly.scrapes_total,
                             ROLLUP_SCRAPE, [m.ScrapeHourly.host_id == host_id]))


def cache_id(session: Session, host_id: int, cache: str) -> int | None:
    """The id of a host's cache by name."""
    return session.scalar(select(m.SlabCache.id).where(m.SlabCache.host_id == host_id,
                                                       m.SlabCache.name == cache))


def scrape_at(session: Session, host_id: int, at: datetime | None) -> m.Scrape | None:
    """The host's last scrape at or before `at` (its latest when `at` is None)."""
    q = select(m.Scrape).where(m.Scrape.host_id == host_id)
    if at is not None:
        q = q.where(m.Scrape.taken_at <= at)
    return session.scalars(q.order_by(m.Scrape.taken_at.desc()).limit(1)).first()


def first_scrape_since(session: Session, host_id: int, since: datetime) -> m.Scrape | None:
    """The host's first scrape at or after `since`."""
    return session.scalars(select(m.Scrape).where(m.Scrape.host_id == host_id,
                                                  m.Scrape.taken_at >= since)
                           .order_by(m.Scrape.taken_at).limit(1)).first()


@dataclass(frozen=True, slots=True)
class CacheRow:
    """A cache at one scrape, with its growth since an earlier one."""

    name: str
    aliases: list[str]
    object_size_bytes: int
    slab_size_bytes: int | None
    objs_per_slab: int
    pages_per_slab: int
    order: int | None
    reclaim_account: bool | None
    bytes: int
    objects: int
    active_objs: int
    slabs: int
    growth_bytes: int | None


def _frame(session: Session, scrape_id: int) -> dict[int, dict[str, int | None]]:
    blob = session.scalar(select(m.SlabFrame.data).where(m.SlabFrame.scrape_id == scrape_id))
    return {} if blob is None else slabframes.decode(blob)


def cache_rows(session: Session, scrape_id: int, earlier_id: int | None) -> list[CacheRow]:
    """Every cache of one scrape, joined with geometry, and bytes growth since `earlier_id`."""
    now = _frame(session, scrape_id)
    before = {} if earlier_id is None else _frame(session, earlier_id)
    if not now:
        return []
    c = m.SlabCache
    rows = session.execute(
        select(c.id, c.name, c.aliases_json, c.object_size_bytes, c.slab_size_bytes,
               c.objs_per_slab_total, c.pages_per_slab_total, c.order, c.reclaim_account)
        .where(c.id.in_(sorted(now)))).all()
    out = []
    for cid, name, aliases, osize, ssize, per, pages, order, reclaim in rows:
        v = now[cid]
        b = v["slab_bytes"] or 0
        prev = before.get(cid, {}).get("slab_bytes")
        out.append(CacheRow(name, list(aliases or []), osize, ssize, per, pages, order, reclaim,
                            b, v["num_objs"] or 0, v["active_objs"] or 0, v["num_slabs"] or 0,
                            None if earlier_id is None else b - (prev or 0)))
    return out


def cache_geometry(session: Session, host_id: int, name: str) -> m.SlabCache | None:
    """One cache's per-boot geometry and aliases."""
    return session.scalars(select(m.SlabCache).where(m.SlabCache.host_id == host_id,
                                                     m.SlabCache.name == name)).one_or_none()


def removed(session: Session, host_id: int, since: datetime | None, until: datetime | None,
            limit: int, offset: int) -> tuple[list[m.RemovedCgroup], int]:
    """Removed cgroups of a host, newest first, one page, and how many there are."""
    cond = [m.RemovedCgroup.host_id == host_id]
    if since is not None:
        cond.append(m.RemovedCgroup.removed_at >= since)
    if until is not None:
        cond.append(m.RemovedCgroup.removed_at <= until)
    # Only what the list can page through: rows older than the retention are gone (their
    # hours live on in removed_hourly, which the count would otherwise include).
    oldest = session.scalar(select(func.min(m.RemovedCgroup.removed_at))
                            .where(m.RemovedCgroup.host_id == host_id))
    if oldest is None:
        return [], 0
    total = counts.removed_count(session, host_id, max(since, oldest) if since else oldest,
                                 until)
    rows = list(session.scalars(select(m.RemovedCgroup).where(*cond)
                                .order_by(m.RemovedCgroup.removed_at.desc(),
                                          m.RemovedCgroup.id.desc())
                                .limit(limit).offset(offset)).all())
    return rows, total


@dataclass(frozen=True, slots=True)
class HostRow:
    """What the fleet view needs of one host, from a handful of queries for all hosts."""

    host: m.Host
    latest: m.Scrape | None
    dying_24h_ago: tuple[datetime, int] | None
    dying_7d_ago: tuple[datetime, int] | None
    sparkline: list[float]
    removed_total: int
    # (mean time, mean dying) per fine sparkline bucket (SLOPE_SPLIT a sparkline bucket), and
    # per rolled-up hour over 7 days
    # (only for a host with that much history): what the growth figures are fitted on.
    points_24h: list[tuple[datetime, float]] = field(default_factory=list)
    points_7d: list[tuple[datetime, float]] = field(default_factory=list)


def _dying_at_or_after(host_ids: Sequence[int], when: dict[int, datetime],
                       session: Session) -> dict[int, tuple[datetime, int]]:
    """Each host's first dying count at or after its own cut-off: one statement for all."""
    if not host_ids:
        return {}
    parts = [select(m.Scrape.host_id, m.Scrape.taken_at, m.Scrape.memcg_dying_total)
             .where(m.Scrape.host_id == hid, m.Scrape.taken_at >= when[hid],
                    m.Scrape.memcg_dying_total >= 0)  # not NULL, below 2^63
             .order_by(m.Scrape.taken_at).limit(1).subquery().select()
             for hid in host_ids]
    stmt = parts[0] if len(parts) == 1 else union_all(*parts)
    return {int(r[0]): (r[1] if isinstance(r[1], datetime) else utc(r[1]), int(r[2] or 0))
            for r in session.execute(stmt).all()}


def fleet(session: Session, limit: int, offset: int,
          spark_buckets: int = 48) -> tuple[list[HostRow], int]:
    """Hosts sorted by dying memcgs now (most first), one page of them."""
    total = int(session.scalar(select(func.count(m.Host.id))) or 0)
    latest = (select(m.Host, m.Scrape)
              .outerjoin(m.Scrape, and_(m.Scrape.host_id == m.Host.id,
                                        m.Scrape.taken_at == m.Host.last_seen_at))
              .order_by(func.coalesce(valid_u64(m.Scrape.memcg_dying_total), -1).desc(),
                        m.Host.name)
              .limit(limit).offset(offset))
    pairs = session.execute(latest).all()
    seen: dict[int, tuple[m.Host, m.Scrape | None]] = {}
    for h, s in pairs:
        seen.setdefault(h.id, (h, s))  # two scrapes at the same instant: keep one
    ids = list(seen)
    if not ids:
        return [], total
    last = {hid: h.last_seen_at for hid, (h, _) in seen.items()}
    d24 = _dying_at_or_after(ids, {h: t - timedelta(hours=24) for h, t in last.items()},
                             session)
    d7 = _dying_at_or_after(ids, {h: t - timedelta(days=7) for h, t in last.items()}, session)
    spark = sparklines(session, last, spark_buckets)
    week = hourly_points(session, {hid: h for hid, (h, _) in seen.items()})
    removed_counts = counts.removed_totals(session, ids)
    return [HostRow(h, s, d24.get(hid), d7.get(hid), coarse(spark[hid], spark_buckets),
                    int(removed_counts.get(hid, 0)), [(p[0], p[1]) for p in spark[hid]],
                    week.get(hid, []))
            for hid, (h, s) in seen.items()], total


# The growth slope is fitted on buckets this many times finer than the sparkline's: on two
# hours of history the 48 sparkline buckets of a day give four points, and one burst that
# straddles two of them is half the sample (Theil-Sen tolerates about 29 %). Assumption:
# 5-minute points (288 a day) keep a 10-minute burst to 2-3 points of 24 at two hours.
SLOPE_SPLIT = 6


def sparklines(session: Session, last: dict[int, datetime], buckets: int = 48
               ) -> dict[int, list[tuple[datetime, float, float]]]:
    """Each host's dying count over the 24 h before its last scrape: per fine bucket (mean
    time, mean count, max count), `buckets * SLOPE_SPLIT` buckets a day. The sparkline draws
    the max of each run of SLOPE_SPLIT (`coarse`: a burst stays visible, and a count stays
    whole); the growth slope is fitted on the fine means.

    One GROUP BY for all the hosts of a page: the fleet page's heaviest query.
    """
    step = 86_400 // (buckets * SLOPE_SPLIT)
    ids = list(last)
    out: dict[int, list[tuple[datetime, float, float]]] = {hid: [] for hid in ids}
    if not ids:
        return out
    lo = min(last.values()) - timedelta(hours=24)
    t = epoch_seconds(m.Scrape.taken_at)
    b = func.floor(t / step)
    dying = valid_u64(m.Scrape.memcg_dying_total)
    for hid, bucket, at, mean, top in session.execute(
            select(m.Scrape.host_id, b, func.avg(t), func.avg(dying), func.max(dying))
            .where(m.Scrape.host_id.in_(ids), m.Scrape.taken_at >= lo)
            .group_by(m.Scrape.host_id, b).order_by(m.Scrape.host_id, b)).all():
        if mean is not None and float(bucket) * step >= last[hid].timestamp() - 86_400 - step:
            out[hid].append((datetime.fromtimestamp(float(at), UTC), float(mean), float(top)))
    return out


def coarse(fine: list[tuple[datetime, float, float]], buckets: int = 48) -> list[float]:
    """The sparkline: the max count of each sparkline bucket (SLOPE_SPLIT fine ones), or of
    each fine bucket while the history fits in one sparkline bucket (a line, not a dot)."""
    width = 86_400 // buckets
    tops: dict[int, float] = {}
    for at, _, top in fine:
        k = int(at.timestamp() // width)
        tops[k] = max(tops.get(k, top), top)
    if len(tops) < 2:
        return [top for _, _, top in fine]
    return [tops[k] for k in sorted(tops)]


WEEK = timedelta(days=7)


def hourly_points(session: Session, hosts: dict[int, m.Host]
                  ) -> dict[int, list[tuple[datetime, float]]]:
    """(mid-hour, mean dying) per rolled-up hour of the 7 days before each host's last scrape,
    for the hosts whose history spans most of a week (the others get no 7-day figure)."""
    ids = [hid for hid, h in hosts.items()
           if h.last_seen_at - h.first_seen_at >= WEEK * 0.9]
    out: dict[int, list[tuple[datetime, float]]] = {}
    if not ids:
        return out
    r = m.ScrapeHourly
    lo = min(hosts[hid].last_seen_at for hid in ids) - WEEK
    for hid, hour, total, n in session.execute(
            select(r.host_id, r.hour_at, r.memcg_dying_sum_total, r.scrapes_total)
            .where(r.host_id.in_(ids), r.hour_at >= lo).order_by(r.host_id, r.hour_at)):
        if total is not None and n and hour >= hosts[hid].last_seen_at - WEEK:
            out.setdefault(hid, []).append((hour + timedelta(minutes=30), float(total) / n))
    return out


def fleet_one(session: Session, host_id: int) -> HostRow:
    """The fleet row of one host."""
    host = session.get_one(m.Host, host_id)
    latest = scrape_at(session, host_id, None)
    last = host.last_seen_at
    d24 = _dying_at_or_after([host_id], {host_id: last - timedelta(hours=24)}, session)
    d7 = _dying_at_or_after([host_id], {host_id: last - timedelta(days=7)}, session)
    removed_total = counts.removed_totals(session, [host_id]).get(host_id, 0)
    spark = sparklines(session, {host_id: last})[host_id]
    week = hourly_points(session, {host_id: host}).get(host_id, [])
    return HostRow(host, latest, d24.get(host_id), d7.get(host_id), coarse(spark),
                   removed_total, [(p[0], p[1]) for p in spark], week)


def sources_seen(session: Session, scrape_id: int) -> list[tuple[str, str, str]]:
    """The errors of one scrape: (source, path, message)."""
    return [(e.source, e.path, e.message) for e in session.scalars(
        select(m.ScrapeError).where(m.ScrapeError.scrape_id == scrape_id)
        .order_by(m.ScrapeError.id)).all()]

