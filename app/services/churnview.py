"""The host page's counted churn and its removed cgroups grouped by what may still pin them.

Churn per interval comes from the kernel's counts the collector stored (cgroup_churn and its
hourly rollup, app/db/modelinput.py), beside the removals the listing saw (removed_cgroup):
the difference is the cgroups that lived less than a tick. The grouped removals read at most
GROUP_ROWS of the newest removal records and the latest series frame's residuals
(app/services/pins.py), and group them in app/domain/removedgroups.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import models as m
from app.db.base import valid_u64
from app.db.modelinput import HOUR, bucket_width, churn, memcg_hierarchy, removals
from app.domain.pins import CATEGORY, REPARENTED
from app.domain.removedgroups import (
    Above,
    GroupsView,
    Removal,
    group_removed,
    label,
    nearest_above,
)
from app.services import pins as pinsview
from app.services.pins import PinsView

# Removal records grouped per page view, newest first: a bound on the page's cost whatever
# the host removed (an assumption: 20,000 narrow rows read in well under a second).
GROUP_ROWS = 20_000
TABLE_BUCKETS = 12  # the newest intervals listed under the chart
# What the counts are and when they come (app/domain/churn.py): shown on the page and in the
# JSON twin, so no one reads an interval's lag as cgroups that did not happen.
CHURN_NOTE = ("Cgroups that live less than a tick are counted when the next cgroup appears "
              "in that hierarchy (kernfs ids count them only below a newer listed "
              "directory); until then /proc/cgroups num_cgroups has moved but the ids have "
              "not, so that interval's freed is unknown and it is not exact, and the "
              "interval that counts them gives freed over both.")


@dataclass(slots=True)
class ChurnView:
    """Cgroups made and removed per bucket of a range, counted by the kernel, beside the
    removals the collector's listing saw."""

    hierarchy: str
    width_seconds: int
    times: list[datetime] = field(default_factory=list)
    created: list[int | None] = field(default_factory=list)  # None: not counted then
    removed: list[int | None] = field(default_factory=list)
    freed: list[int | None] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)  # removals the listing saw
    exact: list[bool] = field(default_factory=list)

    @property
    def counted(self) -> bool:
        """Whether any bucket has counted churn (collectors before it did not count)."""
        return any(c is not None for c in self.created)

    def totals(self) -> dict[str, int]:
        """Sums over the range: counted created and removed, removals seen, and removals
        seen in the buckets that were counted (what the counted removals compare with)."""
        return {"created": sum(c or 0 for c in self.created),
                "removed": sum(r or 0 for r in self.removed), "seen": sum(self.seen),
                "seen_counted": sum(s for s, c in zip(self.seen, self.created, strict=True)
                                    if c is not None)}

    def newest(self, n: int = TABLE_BUCKETS) -> list[dict[str, object]]:
        """The newest n buckets that have anything, newest first (the table's rows)."""
        rows: list[dict[str, object]] = []
        for i in range(len(self.times) - 1, -1, -1):
            if self.created[i] is None and not self.seen[i]:
                continue
            rows.append({"at": self.times[i], "created": self.created[i],
                         "removed": self.removed[i], "freed": self.freed[i],
                         "seen": self.seen[i], "exact": self.exact[i]})
            if len(rows) == n:
                break
        return rows


def churn_view(session: Session, host: m.Host, since: datetime, until: datetime
               ) -> ChurnView:
    """Counted churn of the host's memcg hierarchy and removals seen, in uniform buckets.

    Finer than an hour (the model's bucket_width) while the range's raw rows are kept, read
    from them alone; whole hours where it reaches hours retention dropped, whose hourly
    rollups alone remain (a rolled-up hour in a 44 s bucket read as 80 times the rate).
    """
    width = churn_width(session, host.id, since, until)
    hier = memcg_hierarchy(host)
    fine = width < HOUR
    counted = dict(churn(session, host.id, hier, since, until, width, rollups=not fine))
    seen = {k: v[0] for k, v in removals(session, host.id, since, until, width,
                                         rollups=not fine)}
    view = ChurnView(hier, width)
    for k in sorted(counted.keys() | seen.keys()):
        c = counted.get(k)
        view.times.append(datetime.fromtimestamp(k * width, UTC))
        view.seen.append(seen.get(k, 0))
        if c is None:
            view.created.append(None)
            view.removed.append(None)
            view.freed.append(None)
            view.exact.append(True)
            continue
        n, inexact, created, removed, freed, freed_n = c
        view.created.append(created)
        view.removed.append(removed)
        view.freed.append(freed if freed_n == n else None)
        view.exact.append(inexact == 0)
    return view


def churn_width(session: Session, host_id: int, since: datetime, until: datetime) -> int:
    """bucket_width, or an hour where [since, until] reaches an hour whose raw scrapes (and
    their counted churn) or removal records retention dropped."""
    width = bucket_width(since, until)
    if width >= HOUR:
        return width
    reach = since - timedelta(hours=1)
    for hourly in (m.ScrapeHourly, m.RemovedHourly):
        if session.scalar(select(hourly.hour_at).where(
                hourly.host_id == host_id, hourly.raw_dropped.is_(True),
                hourly.hour_at > reach).limit(1)) is not None:
            return HOUR
    return width


def churn_json(v: ChurnView) -> dict[str, object]:
    """The view as the host page's JSON twin carries it."""
    return {"hierarchy": v.hierarchy, "width_seconds": v.width_seconds, "times": v.times,
            "created": v.created, "removed": v.removed, "freed": v.freed, "seen": v.seen,
            "exact": v.exact, "totals": v.totals(), "newest": v.newest(), "note": CHURN_NOTE}


def above_of(pins: PinsView) -> dict[tuple[str, str], Above]:
    """Per live cgroup of the latest frame: the measured charge its removed descendants
    hold that pins in the era, by category, and its dying count (cgroup2)."""
    rt = pins.last
    if rt is None:
        return {}
    reparented = REPARENTED.get(pins.era, frozenset())
    held: dict[str, list[int]] = {}
    for k in rt.kinds:
        if k in reparented:
            continue
        arr = rt.held(k)
        est = rt.estimated.get(k)
        if est is not None:  # an estimate may be the cgroup's own charge: not evidence
            arr = np.where(est, 0, arr)
        if arr.any():
            held[k] = arr.tolist()
    dying = rt.dying.tolist()  # lists: a 10,000-row frame in milliseconds
    out: dict[tuple[str, str], Above] = {}
    for i, (h, p) in enumerate(zip(rt.table.hierarchies, rt.table.paths, strict=True)):
        pinning: dict[str, int] = {}
        for k, v in held.items():
            if v[i] > 0:
                cat = CATEGORY[k]
                pinning[cat] = pinning.get(cat, 0) + v[i]
        d = dying[i]
        out[(h, p)] = Above(p, pinning, None if d < 0 else d)
    return out


def freed_before(session: Session, host_id: int) -> datetime | None:
    """The last time the host counted no dying memcg (a scrape, or an hour of rollups whose
    every scrape had none): every cgroup removed before it was freed by then."""
    s, sh = m.Scrape, m.ScrapeHourly
    raw = session.scalar(select(func.max(s.taken_at)).where(
        s.host_id == host_id, valid_u64(s.memcg_dying_total) == 0))
    hour = session.scalar(select(func.max(sh.hour_at)).where(
        sh.host_id == host_id, sh.memcg_dying_max_total == 0))
    got = [t for t in (raw, hour) if t is not None]
    return max(got) if got else None


def removed_groups(session: Session, host: m.Host, pins: PinsView, until: datetime
                   ) -> GroupsView:
    """The newest GROUP_ROWS removals up to `until`, grouped where they may still be dying."""
    r = m.RemovedCgroup
    rows = session.execute(
        select(r.hierarchy, r.path, r.removed_at, r.file_bytes, r.shmem_bytes, r.slab_bytes,
               r.kernel_stack_bytes, r.stat_read_at)
        .where(r.host_id == host.id, r.removed_at <= until)
        .order_by(r.removed_at.desc(), r.id.desc()).limit(GROUP_ROWS + 1)).all()
    truncated = len(rows) > GROUP_ROWS
    latest = session.scalar(select(valid_u64(m.Scrape.memcg_dying_total))
                            .where(m.Scrape.host_id == host.id, m.Scrape.taken_at <= until)
                            .order_by(m.Scrape.taken_at.desc()).limit(1))
    return group_removed((Removal(*x) for x in rows[:GROUP_ROWS]), host.era, above_of(pins),
                         freed_before=freed_before(session, host.id),
                         dying_now=None if latest is None else int(latest),
                         truncated=truncated)


def groups_json(v: GroupsView) -> dict[str, object]:
    """The grouped removals as the JSON twin carries them."""
    return {
        "considered": v.considered, "kept": v.kept, "known_freed": v.known_freed,
        "not_pinned": v.not_pinned, "dying_now": v.dying_now, "freed_before": v.freed_before,
        "truncated": v.truncated,
        "groups": [{"hierarchy": g.hierarchy, "parent": g.parent, "pattern": g.pattern,
                    "path": g.path, "count": g.count, "charged": g.charged,
                    "newest_at": g.newest_at, "oldest_at": g.oldest_at, "example": g.example,
                    "parents": len(g.parents), "file_bytes": g.file_bytes,
                    "shmem_bytes": g.shmem_bytes, "held_above": g.held_above,
                    "dying_above": g.dying_above, "likely_pin": g.likely_pin,
                    "likely_pins": dict(g.mix)}
                   for g in v.groups],
    }




@dataclass(frozen=True, slots=True)
class Evidence:
    """What says whether a removed cgroup may still be dying: the latest frame's residuals
    and dying counts above it, and the last time the host had no dying memcg."""

    era: str
    above: dict[tuple[str, str], Above]
    freed_before: datetime | None

    def label(self, r: Removal) -> str:
        """The removal's likely pin (app/domain/removedgroups.py label), or freed for sure."""
        if self.freed_before is not None and r.removed_at <= self.freed_before:
            return ("freed: the host counted no dying memcg at "
                    f"{self.freed_before.isoformat(timespec='seconds')}")
        return label(self.era, r, nearest_above(r.hierarchy, r.path, self.above))


def latest_pins(session: Session, host: m.Host, until: datetime | None) -> PinsView:
    """The pins view of the latest series frame at or before `until` alone (one decode)."""
    f = m.CgroupFrame
    cond = [f.host_id == host.id, f.kind == "series"]
    if until is not None:
        cond.append(f.taken_at <= until)
    at = session.scalar(select(func.max(f.taken_at)).where(*cond))
    if at is None:
        return PinsView(host.era)
    return pinsview.pins(session, host, at, at)


def evidence(session: Session, host: m.Host, pins: PinsView | None = None,
             until: datetime | None = None) -> Evidence:
    """The evidence for labelling removals, from `pins` (else the latest frame <= until)."""
    if pins is None:
        pins = latest_pins(session, host, until)
    return Evidence(host.era, above_of(pins), freed_before(session, host.id))


def with_removal_counts(pins_json: dict[str, object], groups: GroupsView,
                        churn: ChurnView | None = None) -> dict[str, object]:
    """The pins twin with, per top subtree, the removals the listing saw below it that may
    still be dying (`removed_below`), and the hierarchy's removals the kernel's ids counted
    in the range (`removals_counted`, None where churn was not counted).

    `removed_below` is no bound on the subtree's dying memcgs (v1 counts none per subtree):
    cgroups that lived less than a tick leave no removal record; `removals_counted` says how
    many removals there were in all."""
    top = pins_json.get("top")
    if isinstance(top, list):
        for t in top:
            t["removed_below"] = groups.under.get((t["hierarchy"], t["path"]), 0)
    counted = churn is not None and churn.counted
    pins_json["removals_counted"] = churn.totals()["removed"] if churn and counted else None
    pins_json["removals_counted_hierarchy"] = churn.hierarchy if churn and counted else None
    pins_json["removed_below_note"] = ("removals the listing saw below each subtree that may "
                                       "still be dying; more may have lived less than a tick")
    return pins_json
