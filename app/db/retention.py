"""Hourly rollups (scrapes, caches, removed cgroups) and raw-sample retention: a job that is
safe to run twice (or concurrently with collectors), scheduled by cron or a systemd timer
(`slabscope retention`).

Rollups keep sums and counts, so any set of hours combines into exact averages. Each run
recomputes whole hours from a look-back (24 h by default, so snapshots replayed late from a
collector's spool are rolled in) up to the last complete hour: delete those hours' rollup
rows, insert them again, in one transaction. Raw scrapes (and, by cascade, their slab and
cgroup samples) older than the retention are deleted only where their hour is rolled up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from app.db import models as m
from app.db.modelinput import rollup_removed
from app.db.queries import epoch_seconds

HOUR = 3600


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What a run did."""

    hours_from: datetime | None
    hours_to: datetime
    scrape_hours: int
    cache_hours: int
    raw_scrapes_deleted: int


def _hour(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def rollup(session: Session, now: datetime, lookback: timedelta = timedelta(hours=24)
           ) -> tuple[datetime | None, datetime, int, int]:
    """Recompute the hourly rollups of [last rolled hour - lookback, last complete hour)."""
    to = now.replace(minute=0, second=0, microsecond=0)
    rollup_removed(session, now, lookback)  # its own range: removed rows are never deleted
    last = session.scalar(select(func.max(m.ScrapeHourly.hour_at)))
    oldest_raw = session.scalar(select(func.min(m.Scrape.taken_at)))
    if oldest_raw is None:
        return None, to, 0, 0
    # Never recompute an hour whose raw rows are gone: delete_raw cuts at hour boundaries,
    # so the oldest remaining raw hour is complete.
    floor_raw = oldest_raw.replace(minute=0, second=0, microsecond=0)
    frm = max(last - lookback, floor_raw) if last is not None else floor_raw
    if frm >= to:
        return frm, to, 0, 0
    h = func.floor(epoch_seconds(m.Scrape.taken_at) / HOUR)
    s = m.Scrape
    rows = session.execute(
        select(s.host_id, h, func.count(s.id), func.sum(s.memcg_dying_total),
               func.max(s.memcg_dying_total), func.sum(s.memcg_visible_total),
               func.sum(s.memcg_total), func.sum(s.slab_bytes), func.sum(s.sreclaimable_bytes),
               func.sum(s.sunreclaim_bytes), func.sum(s.percpu_bytes),
               func.sum(s.kernel_stack_bytes), func.sum(s.shmem_bytes))
        .where(s.taken_at >= frm, s.taken_at < to).group_by(s.host_id, h)).all()
    session.execute(delete(m.ScrapeHourly).where(m.ScrapeHourly.hour_at >= frm,
                                                 m.ScrapeHourly.hour_at < to))
    if rows:
        session.execute(insert(m.ScrapeHourly), [{
            "host_id": r[0], "hour_at": _hour(float(r[1]) * HOUR), "scrapes_total": r[2],
            "memcg_dying_sum_total": r[3], "memcg_dying_max_total": r[4],
            "memcg_live_sum_total": r[5], "memcg_total_sum_total": r[6],
            "slab_bytes_sum": r[7], "sreclaimable_bytes_sum": r[8],
            "sunreclaim_bytes_sum": r[9], "percpu_bytes_sum": r[10],
            "kernel_stack_bytes_sum": r[11], "shmem_bytes_sum": r[12]} for r in rows])
    ss = m.SlabSample
    crow = session.execute(
        select(ss.cache_id, h, func.count(), func.sum(ss.slab_bytes),
               func.sum(ss.num_objs_total), func.sum(ss.active_objs_total),
               func.sum(ss.num_slabs_total))
        .join(s, s.id == ss.scrape_id).where(s.taken_at >= frm, s.taken_at < to)
        .group_by(ss.cache_id, h)).all()
    session.execute(delete(m.SlabHourly).where(m.SlabHourly.hour_at >= frm,
                                               m.SlabHourly.hour_at < to))
    if crow:
        session.execute(insert(m.SlabHourly), [{
            "cache_id": r[0], "hour_at": _hour(float(r[1]) * HOUR), "samples_total": r[2],
            "slab_bytes_sum": r[3], "num_objs_sum_total": r[4], "active_objs_sum_total": r[5],
            "num_slabs_sum_total": r[6]} for r in crow])
    return frm, to, len(rows), len(crow)


def delete_raw(session: Session, now: datetime, raw_days: float, batch: int = 5000) -> int:
    """Delete raw scrapes older than `raw_days` whose hour is rolled up (samples cascade)."""
    cutoff = now - timedelta(days=raw_days)
    rolled = session.scalar(select(func.max(m.ScrapeHourly.hour_at)))
    if rolled is None:
        return 0
    # Whole hours only, and only hours already rolled up.
    limit = min(cutoff, rolled + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    total = 0
    while True:
        ids = list(session.scalars(select(m.Scrape.id).where(m.Scrape.taken_at < limit)
                                   .order_by(m.Scrape.id).limit(batch)))
        if not ids:
            return total
        # Children first: SQLite only cascades with foreign_keys=ON, which we set; this does
        # not depend on it.
        for child in (m.SlabSample, m.CgroupSample, m.CgroupKmemCacheSample,
                      m.MemcgCacheSample, m.MemcgSlabinfoSample, m.ScrapeError):
            session.execute(delete(child).where(child.scrape_id.in_(ids)))
        session.execute(delete(m.Scrape).where(m.Scrape.id.in_(ids)))
        total += len(ids)


def run(session: Session, now: datetime, raw_days: float,
        lookback: timedelta = timedelta(hours=24)) -> RetentionReport:
    """Roll up, then delete what the rollups now cover and the retention no longer keeps."""
    frm, to, sh, ch = rollup(session, now, lookback)
    deleted = delete_raw(session, now, raw_days)
    return RetentionReport(frm, to, sh, ch, deleted)
