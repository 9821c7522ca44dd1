"""Hourly rollups and raw-sample retention: a job that is safe to run twice, concurrently, or
while collectors write, scheduled by cron or a systemd timer (`slabscope retention`).

Rollups keep sums and counts, so any set of hours combines into exact averages.

Which hours are rolled up: every (host, complete hour) whose raw scrape count differs from
its rollup's count, however old: new hours, and hours that received late snapshots (a
collector's spool replays up to ~41 h late). A host-hour is recomputed from its raw rows
and replaces its rollup; a scrape's samples are written in its transaction, so equal scrape
counts mean an unchanged hour. A rollup whose raw rows were dropped (`raw_dropped`) is
final: rows arriving later still are added to it and deleted at once. Removal records are
rolled up the same way, by comparing each hour's records with `removed_hourly` (however late
they came: app/db/modelinput.py rollup_removed).

Raw data older than the retention goes only after its hours are rolled up. PostgreSQL drops
whole daily partitions (app/db/partitions.py): after the rollup, the run locks the
partitioned parents (writers wait a few milliseconds), rolls up whatever committed since in
the expiring days, and drops their partitions. SQLite deletes rows by whole hours, in
batches. Two runs never interleave: a transaction-scoped advisory lock on PostgreSQL, an
immediate write transaction on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, Table, case, cast, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from app.db import models as m
from app.db import partitions, slabframes
from app.db.base import Base, valid_u64
from app.db.modelinput import rollup_removed
from app.db.queries import epoch_seconds

HOUR = 3600
LOCK_KEY = 0x736C616273636F70  # "slabscop": pg_advisory_xact_lock key of retention runs


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What a run did."""

    hours_from: datetime | None
    hours_to: datetime
    scrape_hours: int
    cache_hours: int
    raw_scrapes_deleted: int
    partitions_dropped: tuple[str, ...] = ()
    partitions_created: tuple[str, ...] = ()
    removed_deleted: int = 0  # removed_cgroup rows, and as many cgroup rows of theirs


@dataclass(frozen=True, slots=True)
class _Rolled:
    first: datetime | None
    scrape_hours: int
    cache_hours: int


def _at(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * HOUR, UTC)


def _hour_of(at: datetime) -> int:
    return int(at.timestamp()) // HOUR


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _children() -> list[Table]:
    # The per-scrape tables, from the one list partitions.py keeps.
    return [Base.metadata.tables[t.table] for t in partitions.TABLES if t.table != "scrape"]


def _dirty(session: Session, to: datetime) -> dict[int, dict[int, bool]]:
    """host -> {hour: add (True: the rollup is final, add to it)} of the hours to roll up."""
    s = m.Scrape
    h = func.floor(epoch_seconds(s.taken_at) / HOUR)
    raw = session.execute(select(s.host_id, h, func.count()).where(s.taken_at < to)
                          .group_by(s.host_id, h)).all()
    if not raw:
        return {}
    lo = _at(min(int(r[1]) for r in raw))
    sh = m.ScrapeHourly
    rolled = {(r.host_id, _hour_of(r.hour_at)): (r.scrapes_total, r.raw_dropped)
              for r in session.execute(select(sh.host_id, sh.hour_at, sh.scrapes_total,
                                              sh.raw_dropped)
                                       .where(sh.hour_at >= lo, sh.hour_at < to)).all()}
    out: dict[int, dict[int, bool]] = {}
    for host, hour, n in raw:
        have = rolled.get((host, int(hour)))
        if have is None or have[1] or have[0] != n:
            out.setdefault(host, {})[int(hour)] = have is not None and bool(have[1])
    return out


def _runs(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Contiguous [first, last] runs of sorted hours."""
    runs: list[tuple[int, int]] = []
    for hr in sorted(hours):
        if runs and runs[-1][1] == hr - 1:
            runs[-1] = (runs[-1][0], hr)
        else:
            runs.append((hr, hr))
    return runs


_SCRAPE_SUMS = ("memcg_dying_sum_total", "memcg_live_sum_total", "memcg_total_sum_total",
                "slab_bytes_sum", "sreclaimable_bytes_sum", "sunreclaim_bytes_sum",
                "percpu_bytes_sum", "kernel_stack_bytes_sum", "shmem_bytes_sum")
_SLAB_SUMS = ("slab_bytes_sum", "num_objs_sum_total", "active_objs_sum_total",
              "num_slabs_sum_total")


def _add(old: dict[str, Any], new: dict[str, Any], sums: Sequence[str], count: str) -> None:
    """Fold an older rollup row into a new one (sums and counts add, maxima max)."""
    new[count] += old[count]
    for k in sums:
        if old[k] is not None:
            new[k] = float(old[k]) + float(new[k] or 0)
    if "memcg_dying_max_total" in new and old["memcg_dying_max_total"] is not None:
        new["memcg_dying_max_total"] = max(new["memcg_dying_max_total"] or 0,
                                           old["memcg_dying_max_total"])


def _scrape_rows(session: Session, host: int, frm: datetime, upto: datetime
                 ) -> dict[int, dict[str, Any]]:
    s = m.Scrape
    h = func.floor(epoch_seconds(s.taken_at) / HOUR)
    out = {}

    def total(col: Any) -> Any:
        # Values >= 2^63 are counter underflow: left out. Float sums (as the columns are):
        # SQLite's integer sum() raises past 2^63.
        return func.sum(cast(valid_u64(col), Float))

    for r in session.execute(
            select(h, func.count(s.id), total(s.memcg_dying_total),
                   func.max(valid_u64(s.memcg_dying_total)), total(s.memcg_visible_total),
                   total(s.memcg_total), total(s.slab_bytes),
                   total(s.sreclaimable_bytes), total(s.sunreclaim_bytes),
                   total(s.percpu_bytes), total(s.kernel_stack_bytes),
                   total(s.shmem_bytes))
            .where(s.host_id == host, s.taken_at >= frm, s.taken_at < upto).group_by(h)).all():
        out[int(r[0])] = {
            "host_id": host, "hour_at": _at(int(r[0])), "scrapes_total": r[1],
            "memcg_dying_max_total": r[3], "raw_dropped": False,
            **{k: r[i] for k, i in zip(_SCRAPE_SUMS, (2, 4, 5, 6, 7, 8, 9, 10, 11),
                                       strict=True)}}
    return out


_CHURN_SUMS = ("intervals_total", "inexact_total", "created_total", "removed_total",
               "freed_total", "freed_intervals_total")


def _churn_rows(session: Session, host: int, frm: datetime, upto: datetime
                ) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (hierarchy, hour) sums of the host's counted churn in [frm, upto), each interval
    in the hour it ends in."""
    c = m.CgroupChurn
    h = func.floor(epoch_seconds(c.taken_at) / HOUR)
    known = c.freed_total.is_not(None)
    return {(r[0], int(r[1])): {
        "host_id": host, "hierarchy": r[0], "hour_at": _at(int(r[1])),
        **{k: int(v or 0) for k, v in zip(_CHURN_SUMS, r[2:], strict=True)}}
        for r in session.execute(
            select(c.hierarchy, h, func.count(), func.sum(case((c.exact, 0), else_=1)),
                   func.sum(c.created_total), func.sum(c.removed_total),
                   func.sum(c.freed_total), func.sum(case((known, 1), else_=0)))
            .where(c.host_id == host, c.taken_at >= frm, c.taken_at < upto)
            .group_by(c.hierarchy, h)).all()}


FIVE_MINUTES = 300


def _slab_rows(session: Session, host: int, frm: datetime, upto: datetime
               ) -> tuple[dict[tuple[int, int], dict[str, Any]],
                          dict[tuple[int, int], dict[str, Any]]]:
    """Per (cache, hour) and per (cache, 5 minutes) sums of the host's slab frames in
    [frm, upto), each frame decoded once."""
    f = m.SlabFrame
    frames = session.execute(select(f.taken_at, f.data).where(
        f.host_id == host, f.taken_at >= frm, f.taken_at < upto))
    sums = slabframes.rollup_sums(frames, (HOUR, FIVE_MINUTES))

    def rows(width: int, at: str) -> dict[tuple[int, int], dict[str, Any]]:
        return {(cid, b): {"cache_id": cid, at: datetime.fromtimestamp(b * width, UTC),
                           "samples_total": r[0], **dict(zip(_SLAB_SUMS, r[1:], strict=True))}
                for (cid, b), r in sums[width].items()}

    return rows(HOUR, "hour_at"), rows(FIVE_MINUTES, "bucket_at")


def _rows(session: Session, table: Table, *where: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in session.execute(select(table).where(*where)).mappings()]


def _roll_run(session: Session, host: int, first: int, last: int, add: set[int]
              ) -> tuple[int, int]:
    """Recompute a host's hours [first, last]; hours in `add` fold in their final rollup."""
    frm, upto = _at(first), _at(last + 1)
    srows = _scrape_rows(session, host, frm, upto)
    crows, fives = _slab_rows(session, host, frm, upto)
    churn = _churn_rows(session, host, frm, upto)
    sh, ch = Base.metadata.tables["scrape_hourly"], Base.metadata.tables["slab_hourly"]
    kh = Base.metadata.tables["churn_hourly"]
    c5 = Base.metadata.tables["slab_5min"]
    host_caches = select(m.SlabCache.id).where(m.SlabCache.host_id == host)
    if add:
        hours = [_at(a) for a in sorted(add)]
        for old in _rows(session, sh, sh.c.host_id == host, sh.c.hour_at.in_(hours)):
            new = srows[_hour_of(old["hour_at"])]
            _add(old, new, _SCRAPE_SUMS, "scrapes_total")
            new["raw_dropped"] = True
        for old in _rows(session, ch, ch.c.cache_id.in_(host_caches), ch.c.hour_at.in_(hours)):
            key = (old["cache_id"], _hour_of(old["hour_at"]))
            if key in crows:
                _add(old, crows[key], _SLAB_SUMS, "samples_total")
            else:
                crows[key] = old
        for old in _rows(session, kh, kh.c.host_id == host, kh.c.hour_at.in_(hours)):
            key2 = (old["hierarchy"], _hour_of(old["hour_at"]))
            if key2 in churn:
                for k in _CHURN_SUMS:
                    churn[key2][k] += old[k]
            else:
                churn[key2] = old
    session.execute(delete(sh).where(sh.c.host_id == host, sh.c.hour_at >= frm,
                                     sh.c.hour_at < upto))
    session.execute(delete(ch).where(ch.c.cache_id.in_(host_caches), ch.c.hour_at >= frm,
                                     ch.c.hour_at < upto))
    session.execute(delete(c5).where(c5.c.cache_id.in_(host_caches), c5.c.bucket_at >= frm,
                                     c5.c.bucket_at < upto))
    session.execute(delete(kh).where(kh.c.host_id == host, kh.c.hour_at >= frm,
                                     kh.c.hour_at < upto))
    # A final hour's raw frames are gone, and so are its 5-minute rows: late rows fold into
    # the hourly rollup only.
    fives = {k: r for k, r in fives.items() if k[1] * FIVE_MINUTES // HOUR not in add}
    if srows:
        session.execute(insert(sh), list(srows.values()))
    if crows:
        session.execute(insert(ch), list(crows.values()))
    if fives:
        session.execute(insert(c5), list(fives.values()))
    if churn:
        session.execute(insert(kh), list(churn.values()))
    for a in add:  # late rows of a final hour are counted now, so they go now
        _delete_scrapes(session, list(session.scalars(select(m.Scrape.id).where(
            m.Scrape.host_id == host, m.Scrape.taken_at >= _at(a),
            m.Scrape.taken_at < _at(a + 1)))))
    return len(srows), len(crows)


def _delete_scrapes(session: Session, ids: list[int]) -> None:
    """Delete scrapes and their rows in every per-scrape table (no cascade is relied on)."""
    if not ids:
        return
    for child in _children():
        session.execute(delete(child).where(child.c.scrape_id.in_(ids)))
    session.execute(delete(m.Scrape).where(m.Scrape.id.in_(ids)))


def rollup(session: Session, now: datetime, before: datetime | None = None) -> _Rolled:
    """Roll up every complete hour (before `before`) whose raw rows changed since its rollup."""
    to = _floor_hour(now) if before is None else min(_floor_hour(now), before)
    if before is None:
        # Every hour whose removal records differ from its rollup, however late they came.
        rollup_removed(session, now)
    dirty = _dirty(session, to)
    sh_n = ch_n = 0
    for host, hours in sorted(dirty.items()):
        for first, last in _runs(hours):
            a, b = _roll_run(session, host, first, last,
                             {h for h in range(first, last + 1) if hours[h]})
            sh_n, ch_n = sh_n + a, ch_n + b
    first_hour = min((min(h) for h in dirty.values()), default=None)
    return _Rolled(None if first_hour is None else _at(first_hour), sh_n, ch_n)


def _mark_dropped(session: Session, limit: datetime) -> None:
    # 5-minute rollups live as long as the raw frames they speed up.
    session.execute(delete(m.SlabFiveMinutes).where(m.SlabFiveMinutes.bucket_at < limit))
    sh = m.ScrapeHourly
    session.execute(update(sh).where(sh.hour_at < limit, sh.raw_dropped.is_(False))
                    .values(raw_dropped=True))


def delete_raw(session: Session, now: datetime, raw_days: float, batch: int = 5000) -> int:
    """Delete raw scrapes older than `raw_days`, by whole hours, in batches (SQLite)."""
    limit = _floor_hour(now - timedelta(days=raw_days))
    total = 0
    while True:
        ids = list(session.scalars(select(m.Scrape.id).where(m.Scrape.taken_at < limit)
                                   .order_by(m.Scrape.id).limit(batch)))
        if not ids:
            break
        _delete_scrapes(session, ids)
        total += len(ids)
    _mark_dropped(session, limit)
    return total


def drop_partitions(session: Session, now: datetime, raw_days: float) -> tuple[int, list[str]]:
    """Drop the daily partitions that ended before the retention (PostgreSQL).

    Writers wait on the parents' lock while the expiring days are rolled up once more (rows
    committed since the first pass) and dropped; rows in DEFAULT are deleted by time.
    """
    cut = partitions.day_of(now - timedelta(days=raw_days))
    limit = partitions.day_start(cut)
    names = partitions.expired(session, cut)
    stray = session.scalar(text("SELECT EXISTS (SELECT 1 FROM scrape_default"
                                " WHERE taken_at < :limit)"), {"limit": limit})
    if not names and not stray:
        return 0, []
    partitions.lock_parents(session)
    rollup(session, now, before=limit)
    gone = int(session.scalar(select(func.count()).select_from(m.Scrape)
                              .where(m.Scrape.taken_at < limit)) or 0)
    partitions.drop(session, names)
    partitions.purge_default(session, cut)
    _mark_dropped(session, limit)
    return gone, names


def _serialize(session: Session) -> None:
    """Let one run at a time through (the other waits, then finds the work done)."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(LOCK_KEY)))
    elif conn.dialect.name == "sqlite":
        raw = conn.connection.driver_connection
        if raw is not None and not raw.in_transaction:
            # Take the write lock before reading: decisions made on a stale read would
            # fold late rows twice.
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def run(session: Session, now: datetime, raw_days: float,
        ahead_days: int = partitions.AHEAD_DAYS) -> RetentionReport:
    """Roll up, then drop what the rollups now cover and the retention no longer keeps."""
    _serialize(session)
    rolled = rollup(session, now)
    made: list[str] = []
    if partitions.is_postgres(session):
        # Cgroup rows go only with the whole day their frames are in (partitions are days).
        cut = partitions.day_start(partitions.day_of(now - timedelta(days=raw_days)))
        gone = delete_removed(session, now, raw_days, before=cut)
        today = partitions.day_of(now)
        made = partitions.create_days(session, range(today, today + ahead_days + 1))
        # Last: dropping takes the parents' exclusive lock, held until the caller commits.
        deleted, dropped = drop_partitions(session, now, raw_days)
    else:
        deleted, dropped = delete_raw(session, now, raw_days), []
        gone = delete_removed(session, now, raw_days)
    return RetentionReport(rolled.first, _floor_hour(now), rolled.scrape_hours,
                           rolled.cache_hours, deleted, tuple(dropped), tuple(made), gone)


def delete_removed(session: Session, now: datetime, raw_days: float,
                   batch: int = 5000, before: datetime | None = None) -> int:
    """Removal records and the rows of cgroups removed before the retention, whose hours
    `removed_hourly` holds.

    A host that churns 100 cgroups a minute adds 144,000 of each a day (~110 MB); kept
    forever they would outgrow everything the retention drops. What the pages and the model
    read of older removals, counts and byte sums per hour, is in the rollup.
    """
    rolled = session.scalar(select(func.max(m.RemovedHourly.hour_at)))
    if rolled is None:
        return 0
    limit = _floor_hour(min(now - timedelta(days=raw_days), rolled + timedelta(hours=1),
                            before or now))
    total = 0
    for hid in session.scalars(select(m.Host.id)).all():
        for model in (m.RemovedCgroup, m.Cgroup):  # records first: they point at cgroups
            while ids := list(session.scalars(
                    select(model.id).where(model.host_id == hid, model.removed_at < limit)
                    .limit(batch))):
                session.execute(delete(model).where(model.id.in_(ids)))
                total += len(ids) if model is m.RemovedCgroup else 0
    rh = m.RemovedHourly  # final from now on: late records add to these hours
    session.execute(update(rh).where(rh.hour_at < limit, rh.raw_dropped.is_(False))
                    .values(raw_dropped=True))
    return total
