"""Readers of stored cgroups: the latest frames, first-seen stats, the cgroups at an instant.

A page's cost is bounded by the cgroups it shows: one series frame (and one full frame) at
or before the instant, the rows of the cgroups in it by primary key, and the few first seen
between that frame and the instant (index on first_seen_at); never the host's history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from app.db import frames
from app.db import models as m
from app.db.base import Base
from app.db.frames import CORRUPT, log
from app.domain import cgtable as ct
from app.domain.samples import CgroupSample

_NONE = frames.Figures({}, None, None, None)
_CHUNK = 5000  # ids per IN list (SQLite allows 32,766 parameters)


def _table(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]


def frame_at(session: Session, host_id: int, kind: str, at: datetime | None
             ) -> tuple[datetime | None, dict[int, frames.Figures]]:
    """The host's latest frame of `kind` at or before `at` (latest if None), decoded."""
    f = _table(m.CgroupFrame)
    q = select(f.c.taken_at, f.c.data).where(f.c.host_id == host_id, f.c.kind == kind)
    if at is not None:
        q = q.where(f.c.taken_at <= at)
    row = session.execute(q.order_by(f.c.taken_at.desc()).limit(1)).first()
    return (None, {}) if row is None else (row[0], frames.decode_figures(row[1]))


def first_stats(session: Session, ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """The first-seen memory.stat of these cgroups (those that have one)."""
    t = _table(m.Cgroup)
    wanted = list(ids)
    out: dict[int, dict[str, int]] = {}
    for i in range(0, len(wanted), _CHUNK):
        for cid, blob in session.execute(select(t.c.id, t.c.first_memory_stat)
                                         .where(t.c.id.in_(wanted[i:i + _CHUNK]))).all():
            if blob is not None:
                try:
                    out[cid] = ct.unpack_stat(blob)
                except CORRUPT as err:
                    log.warning("corrupt first memory.stat of cgroup %d skipped: %s", cid, err)
    return out


def latest_cgroups(session: Session, host_name: str, boot_id: str | None = None
                   ) -> tuple[list[CgroupSample], datetime] | None:
    """A host's live cgroups as last stored, to seed removal tracking after a restart.

    None when the last stored scrape is of another boot than `boot_id` (when both are
    known): after a reboot the old cgroups were not removed, and a path that is back is a
    new cgroup. Figures from the latest series frame; memory.stat from the latest full frame
    where the cgroup is in it (else its first-seen memory.stat), with newer series figures
    over it.
    """
    hid = session.scalar(select(m.Host.id).where(m.Host.name == host_name))
    row = session.execute(select(m.Scrape.taken_at, m.Scrape.boot_id)
                          .where(m.Scrape.host_id == hid)
                          .order_by(m.Scrape.taken_at.desc()).limit(1)).first()
    if hid is None or row is None:
        return None
    last, stored_boot = row
    if boot_id is not None and stored_boot is not None and stored_boot != boot_id:
        return None
    series_at, series = frame_at(session, hid, "series", None)
    full_at, full = frame_at(session, hid, "full", None)
    t = _table(m.Cgroup)
    live = session.execute(select(t.c.id, t.c.hierarchy, t.c.path, t.c.first_seen_at)
                           .where(t.c.host_id == hid, t.c.removed_at.is_(None))
                           .order_by(t.c.id)).all()
    firsts = first_stats(session, [r.id for r in live if r.id not in full])
    out = []
    for cid, h, p, first_seen in live:
        base_at, stat = (full_at, full[cid].memory_stat) if cid in full else (
            first_seen, firsts.get(cid, {}))
        figs = series.get(cid) or _NONE
        if series_at is not None and (base_at is None or series_at >= base_at):
            stat = {**stat, **figs.memory_stat}
        out.append(CgroupSample(h, p, stat, figs.usage_bytes, figs.kmem_usage_bytes, None,
                                figs.cgroup_stat))
    return out, last


@dataclass(frozen=True, slots=True)
class CgroupAt:
    """One cgroup as stored at an instant: its series figures and, when asked, its stat."""

    hierarchy: str
    path: str
    figures: frames.Figures  # the series row; first-seen stat for cgroups newer than it
    memory_stat: dict[str, int]  # the whole file when asked (full frame or first seen)


def cgroups_at(session: Session, host_id: int, at: datetime, *,
               whole: bool = False) -> list[CgroupAt]:
    """The cgroups live at `at`, by hierarchy and path, from the frames at or before it."""
    series_at, series = frame_at(session, host_id, "series", at)
    full: dict[int, frames.Figures] = {}
    if whole:
        _, full = frame_at(session, host_id, "full", at)
    t = _table(m.Cgroup)
    cols = (t.c.id, t.c.hierarchy, t.c.path, t.c.first_seen_at, t.c.removed_at)
    rows: dict[int, Any] = {}
    ids = list(series)
    for i in range(0, len(ids), _CHUNK):
        rows.update((r.id, r) for r in session.execute(
            select(*cols).where(t.c.id.in_(ids[i:i + _CHUNK]))).all())
    newer = select(*cols).where(t.c.host_id == host_id, t.c.first_seen_at <= at)
    if series_at is not None:
        newer = newer.where(t.c.first_seen_at > series_at)
    rows.update((r.id, r) for r in session.execute(newer).all())
    shown = [r for r in rows.values() if r.removed_at is None or r.removed_at > at]
    need_first = [r.id for r in shown if r.id not in series or (whole and r.id not in full)]
    firsts = first_stats(session, need_first)
    out = []
    for r in sorted(shown, key=lambda r: (r.hierarchy, r.path)):
        first = firsts.get(r.id, {})
        figs = series.get(r.id) or frames.Figures(first, None, None, None)
        stat = full[r.id].memory_stat if r.id in full else first
        out.append(CgroupAt(r.hierarchy, r.path, figs, stat if whole else {}))
    return out
