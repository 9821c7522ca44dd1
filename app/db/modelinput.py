"""The model's input from a host's history, in SQL, bounded by buckets, never by raw rows.

Dying and live memcgs come as the most of each bucket; removed cgroups as counts and byte
sums per bucket (what the model needs to fit rates and shares). Whole hours already rolled
up (`scrape_hourly`, `removed_hourly`, built by `slabscope retention`) are read from the
rollups, one row an hour; raw rows are read only for the part of the first hour before the
window and for the hours not rolled up yet. Where a range holds rolled-up hours its buckets
are whole hours (history_width), so every bucket is as wide as the next.
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


def _hour_at(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * HOUR, UTC)


def _dirty_removed(session: Session, to: datetime) -> dict[int, dict[int, bool]]:
    """host -> {hour: add} of the complete hours whose records differ from their rollup.

    Records arrive late (a collector's spool replays removals days old), so every hour that
    still has records is compared, however old: one GROUP BY over the records kept (the
    index on host and time). `add`: the hour's older records were deleted by retention
    (raw_dropped), so the rollup is final and the late ones are added to it.
    """
    r, rh = m.RemovedCgroup, m.RemovedHourly
    h = func.floor(epoch_seconds(r.removed_at) / HOUR)
    raw = session.execute(select(r.host_id, h, func.count()).where(r.removed_at < to)
                          .group_by(r.host_id, h)).all()
    if not raw:
        return {}
    lo = _hour_at(min(int(x[1]) for x in raw))
    rolled = {(x.host_id, int(x.hour_at.timestamp()) // HOUR): (x.removed_total, x.raw_dropped)
              for x in session.execute(select(rh.host_id, rh.hour_at, rh.removed_total,
                                              rh.raw_dropped)
                                       .where(rh.hour_at >= lo, rh.hour_at < to)).all()}
    out: dict[int, dict[int, bool]] = {}
    for host, hour, n in raw:
        have = rolled.get((host, int(hour)))
        if have is None or have[1] or have[0] != n:
            out.setdefault(int(host), {})[int(hour)] = have is not None and bool(have[1])
    return out


def rollup_removed(session: Session, now: datetime) -> int:
    """Roll up every complete (host, hour) whose removal records changed since its rollup.

    An hour is recomputed from its records and replaces its rollup; records of an hour whose
    rollup is final (raw_dropped) are added to it and deleted at once, so they count once.
    Returns the host-hours written.
    """
    to = now.replace(minute=0, second=0, microsecond=0)
    r, rh = m.RemovedCgroup, m.RemovedHourly
    h = func.floor(epoch_seconds(r.removed_at) / HOUR)
    written = 0
    for host, hours in sorted(_dirty_removed(session, to).items()):
        at = [_hour_at(x) for x in sorted(hours)]
        rows = {int(x[0]): {"host_id": host, "hour_at": _hour_at(int(x[0])),
                            "raw_dropped": hours[int(x[0])],
                            **{k: (float if k in REMOVED_SUMS else int)(v or 0)
                               for k, v in zip(REMOVED_ROLLUP, x[1:], strict=True)}}
                for x in session.execute(
                    select(h, *_removal_aggregates())
                    .where(r.host_id == host, r.removed_at >= at[0],
                           r.removed_at < at[-1] + timedelta(hours=1))
                    .group_by(h)).all() if int(x[0]) in hours}
        final = [_hour_at(x) for x, add in hours.items() if add]
        if final:
            for old in session.execute(select(rh).where(rh.host_id == host,
                                                        rh.hour_at.in_(final))).scalars():
                new = rows[int(old.hour_at.timestamp()) // HOUR]
                for k in REMOVED_ROLLUP:
                    new[k] += getattr(old, k)
        session.execute(delete(rh).where(rh.host_id == host, rh.hour_at.in_(at)))
        session.execute(insert(rh), list(rows.values()))
        for f in final:  # counted now, so deleted now
            session.execute(delete(r).where(r.host_id == host, r.removed_at >= f,
                                            r.removed_at < f + timedelta(hours=1)))
        written += len(rows)
    return written


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
             width: int, rollups: bool = True) -> list[tuple[int, list[int]]]:
    """Removed cgroups per bucket (numbered as in dying_live): REMOVED_ROLLUP's counts and
    byte sums, in order (`rollups` False: from the records alone, for buckets finer than an
    hour over records still kept)."""
    rh, r = m.RemovedHourly, m.RemovedCgroup
    acc: Buckets = {}
    sums = ("sum",) * len(REMOVED_ROLLUP)
    span = _rolled_span(session, rh.hour_at, [rh.host_id == host_id], since, until) \
        if rollups else None
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
          width: int, rollups: bool = True) -> list[tuple[int, list[int]]]:
    """Counted churn per bucket (numbered as in dying_live), each interval in the bucket it
    ends in: CHURN_SUMS in order, from churn_hourly where rolled up (unless `rollups` is
    False), else cgroup_churn."""
    kh, c = m.ChurnHourly, m.CgroupChurn
    acc: Buckets = {}
    sums = ("sum",) * len(CHURN_SUMS)
    span = _rolled_span(session, kh.hour_at, [kh.host_id == host_id,
                                              kh.hierarchy == hierarchy], since, until) \
        if rollups else None
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


def history_width(session: Session, host: m.Host, since: datetime, until: datetime) -> int:
    """The model's bucket width: bucket_width, or an hour where the range holds rolled-up
    hours. Those are read one row an hour (the cost stays bounded by buckets), and a bucket
    finer than an hour would hold a whole hour beside buckets of seconds."""
    width = bucket_width(since, until)
    if width >= HOUR:
        return width
    sh, rh, kh = m.ScrapeHourly, m.RemovedHourly, m.ChurnHourly
    for hour, where in ((sh.hour_at, [sh.host_id == host.id]),
                        (rh.hour_at, [rh.host_id == host.id]),
                        (kh.hour_at, [kh.host_id == host.id,
                                      kh.hierarchy == memcg_hierarchy(host)])):
        if _rolled_span(session, hour, where, since, until) is not None:
            return HOUR
    return width


def first_since(session: Session, host_id: int, since: datetime) -> datetime | None:
    """When the host's history at or after `since` starts: its first raw scrape, or its
    first rolled-up hour (raw scrapes go after the retention; the rollups stay)."""
    s, sh = m.Scrape, m.ScrapeHourly
    raw = session.scalar(select(func.min(s.taken_at)).where(s.host_id == host_id,
                                                             s.taken_at >= since))
    hour = session.scalar(select(func.min(sh.hour_at)).where(
        sh.host_id == host_id, sh.hour_at > since - timedelta(hours=1)))
    got = [t for t in (raw, None if hour is None else max(hour, since)) if t is not None]
    return min(got) if got else None


def host_history(session: Session, host: m.Host, since: datetime,
                 until: datetime) -> HostHistory | None:
    """The model's input over [since, until]: series and removals in the same buckets."""
    width = history_width(session, host, since, until)
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
