"""Counts of a host's history that stay cheap at months of it: whole rolled-up hours from
the rollup tables, the rest from raw rows (exact either way).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import models as m
from app.db.base import utc


def removed_totals(session: Session, host_ids: Sequence[int]) -> dict[int, int]:
    """Removed cgroups per host, in all: hourly rollups plus the raw rows after them.

    A host that removes 100 cgroups a minute has 4 million rows after a month; counting them
    would make the fleet page's cost grow with the history.
    """
    if not host_ids:
        return {}
    rh, r = m.RemovedHourly, m.RemovedCgroup
    out: dict[int, int] = {}
    upto: dict[int, datetime] = {}
    for hid, total, last in session.execute(
            select(rh.host_id, func.sum(rh.removed_total), func.max(rh.hour_at))
            .where(rh.host_id.in_(host_ids)).group_by(rh.host_id)).all():
        out[int(hid)] = int(total or 0)
        upto[int(hid)] = utc(last) + timedelta(hours=1)
    for hid in host_ids:
        q = select(func.count(r.id)).where(r.host_id == hid)
        if hid in upto:
            q = q.where(r.removed_at >= upto[hid])
        out[hid] = out.get(hid, 0) + int(session.scalar(q) or 0)
    return out


def scrape_total(session: Session, host_id: int) -> int:
    """Raw scrapes stored for a host: rolled-up hours' counts plus the raw rows after them."""
    sh, s = m.ScrapeHourly, m.Scrape
    total, last = session.execute(
        select(func.sum(sh.scrapes_total), func.max(sh.hour_at))
        .where(sh.host_id == host_id, sh.raw_dropped.is_(False))).one()
    q = select(func.count(s.id)).where(s.host_id == host_id)
    if last is not None:
        q = q.where(s.taken_at >= utc(last) + timedelta(hours=1))
    return int(total or 0) + int(session.scalar(q) or 0)


def removed_count(session: Session, host_id: int, since: datetime | None,
                  until: datetime | None) -> int:
    """Removals of a host in [since, until]: whole rolled-up hours from removed_hourly, the
    edges and the hours not rolled up yet from raw rows (exact either way)."""
    rh, r = m.RemovedHourly, m.RemovedCgroup

    def raw(lo: datetime | None, hi: datetime | None, hi_inclusive: bool) -> int:
        q = select(func.count(r.id)).where(r.host_id == host_id)
        if lo is not None:
            q = q.where(r.removed_at >= lo)
        if hi is not None:
            q = q.where(r.removed_at <= hi if hi_inclusive else r.removed_at < hi)
        return int(session.scalar(q) or 0)

    last = session.scalar(select(func.max(rh.hour_at)).where(rh.host_id == host_id))
    if last is None:
        return raw(since, until, True)
    rolled_end = utc(last) + timedelta(hours=1)  # rollups cover every hour before this
    lo = None if since is None else _ceil_hour(since)
    hi = rolled_end if until is None else min(rolled_end, _floor_hour(until))
    if lo is not None and lo >= hi:
        return raw(since, until, True)
    q = select(func.sum(rh.removed_total)).where(rh.host_id == host_id, rh.hour_at < hi)
    if lo is not None:
        q = q.where(rh.hour_at >= lo)
    total = int(session.scalar(q) or 0)
    if lo is not None and since is not None and since < lo:
        total += raw(since, lo, False)
    return total + raw(hi, until, True)


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(at: datetime) -> datetime:
    f = _floor_hour(at)
    return f if f == at else f + timedelta(hours=1)
