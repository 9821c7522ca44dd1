"""What pins a host's dying memcgs, over a time range, from its stored series frames.

Each series frame (every 300 s by default) holds every cgroup's local and hierarchical
figures; app/domain/pins.py turns one into residuals. A range is folded from at most
MAX_FRAMES frames spread evenly over it (a 10,000-cgroup frame folds in milliseconds; the
decode is the cost), and the latest frame in the range gives the top subtrees.

On v1 a cgroup's kmem residual counts as left by removed children only where a removal
record lies below it by the frame's time (app/domain/pins.py): the newest REMOVAL_ROWS
records up to the range's end say where.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from app.db import models as m
from app.db.base import Base
from app.db.frames import unpack
from app.domain.cgtable import CgroupTable
from app.domain.pins import (
    Breakdown,
    ResidualTable,
    parent_path,
    record,
    residual_table,
    top_leaking,
)

MAX_FRAMES = 96
TOP = 10
_CHUNK = 500
# Removal records read to find the cgroups with removals below them, newest first: the bound
# the grouped removals use too (app/services/churnview.py GROUP_ROWS; an assumption: 20,000
# narrow rows read in well under a second).
REMOVAL_ROWS = 20_000


@dataclass(frozen=True, slots=True)
class PinSeries:
    """One line of the stacked chart: a category, whether it pins in the era, and whether
    it is measured (else estimated), with bytes per frame."""

    category: str
    pins: bool
    measured: bool
    values: list[int]

    @property
    def label(self) -> str:
        what = self.category if self.pins else f"{self.category} (reparented, not pinning)"
        return what if self.measured else f"{what}, estimated"


@dataclass(slots=True)
class PinsView:
    """What holds a host's dying memcgs in a range: per category over time, and where."""

    era: str
    times: list[datetime] = field(default_factory=list)
    series: list[PinSeries] = field(default_factory=list)
    top: list[Breakdown] = field(default_factory=list)
    at: datetime | None = None  # the frame `top` comes from
    frames: int = 0  # series frames in the range (before thinning)
    last: ResidualTable | None = None  # the residuals of the frame `top` comes from
    # v1 kmem residual bytes of the latest frame left out as likely the cgroups' own
    kernel_unknown: int = 0


def _table(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]


def _pick(ids: list[int], n: int) -> list[int]:
    """At most n of `ids` (in time order), spread evenly, the first and last kept."""
    if len(ids) <= n:
        return ids
    step = (len(ids) - 1) / (n - 1)
    return [ids[k] for k in sorted({round(i * step) for i in range(n)})]


def _names(session: Session, ids: set[int], known: dict[int, tuple[str, str]]) -> None:
    t = _table(m.Cgroup)
    want = sorted(ids - known.keys())
    for i in range(0, len(want), _CHUNK):
        for cid, h, p in session.execute(select(t.c.id, t.c.hierarchy, t.c.path)
                                         .where(t.c.id.in_(want[i:i + _CHUNK]))).all():
            known[cid] = (h, p)


def frame_table(session: Session, blob: bytes, known: dict[int, tuple[str, str]]
                ) -> CgroupTable | None:
    """A stored frame as a CgroupTable keyed by (hierarchy, path); None if corrupt."""
    got = unpack(blob, "cgroup frame")
    if got is None:
        return None
    columns, ids, values, present = got
    _names(session, set(ids), known)
    keep = [k for k, cid in enumerate(ids) if cid in known]
    if len(keep) != len(ids):  # rows of cgroups retention removed: leave them out
        values = tuple(array("Q", (v[k] for k in keep)) for v in values)
        present = tuple(bytes(p[k] for k in keep) for p in present)
        ids = array("q", (ids[k] for k in keep))
    return CgroupTable(columns, tuple(known[c][0] for c in ids),
                       tuple(known[c][1] for c in ids), values, present)


def removal_ancestors(session: Session, host_id: int, until: datetime
                      ) -> dict[tuple[str, str], datetime]:
    """(hierarchy, path) of every ancestor of a removed cgroup -> the earliest removal below
    it, from the newest REMOVAL_ROWS records up to `until`."""
    r = _table(m.RemovedCgroup)
    rows = session.execute(select(r.c.hierarchy, r.c.path, r.c.removed_at)
                           .where(r.c.host_id == host_id, r.c.removed_at <= until)
                           .order_by(r.c.removed_at.desc()).limit(REMOVAL_ROWS)).all()
    out: dict[tuple[str, str], datetime] = {}
    for h, path, at in rows:
        up = parent_path(path)
        while up is not None:
            key = (h, up)
            old = out.get(key)
            if old is not None and old <= at:
                break  # this ancestor and those above it have an earlier removal already
            out[key] = at
            up = parent_path(up)
    return out


def pins(session: Session, host: m.Host, since: datetime, until: datetime) -> PinsView:
    """What holds the host's dying memcgs between `since` and `until`, in its own era."""
    era = host.era
    f = _table(m.CgroupFrame)
    cond = (f.c.host_id == host.id, f.c.kind == "series", f.c.taken_at >= since,
            f.c.taken_at <= until)
    ids = list(session.scalars(select(f.c.id).where(*cond).order_by(f.c.taken_at, f.c.id)))
    view = PinsView(era, frames=len(ids))
    if not ids:
        return view
    chosen = _pick(ids, MAX_FRAMES)
    known: dict[int, tuple[str, str]] = {}
    cpus = max(1, host.possible_cpus_total or 1)
    page = host.page_size_bytes or 4096
    totals: list[dict[tuple[str, bool, bool], int]] = []
    last: ResidualTable | None = None
    removed = removal_ancestors(session, host.id, until)
    for i in range(0, len(chosen), 24):
        rows = session.execute(select(f.c.taken_at, f.c.data).where(
            f.c.id.in_(chosen[i:i + 24])).order_by(f.c.taken_at, f.c.id)).all()
        for at, blob in rows:
            table = frame_table(session, blob, known)
            if table is None:
                continue
            below = [k for k, t in removed.items() if t <= at]
            rt = residual_table(table, cpus=cpus, page_size=page, removed_below=below)
            view.times.append(at)
            totals.append(rt.totals(era))
            last, view.at = rt, at
    keys = sorted({k for t in totals for k in t},
                  key=lambda k: (not k[1], not k[2], -max(t.get(k, 0) for t in totals)))
    view.series.extend(PinSeries(c, p, meas, [t.get((c, p, meas), 0) for t in totals])
                       for c, p, meas in keys)
    view.last = last
    if last is not None:
        view.kernel_unknown = last.unknown_bytes("kernel")
        recs = [r for i in range(len(last.table)) if (r := record(last, i)) is not None]
        view.top.extend(top_leaking(recs, era, TOP))
    return view


def pins_json(v: PinsView) -> dict[str, object]:
    """The view as the JSON twin of the host page shows it."""
    return {
        "era": v.era, "at": v.at, "frames": v.frames, "times": v.times,
        "kernel_unknown_bytes": v.kernel_unknown,
        "series": [{"category": s.category, "pins": s.pins, "measured": s.measured,
                    "label": s.label, "values": s.values} for s in v.series],
        "top": [{"hierarchy": b.residual.hierarchy, "path": b.residual.path,
                 "dying": b.residual.dying, "live_children": b.residual.children,
                 "pinning_bytes": b.pinning_bytes, "estimated_bytes": b.estimated_bytes,
                 "unexplained": b.unexplained,
                 "torn": sorted(b.residual.inconsistent),
                 "unknown": sorted(b.residual.unknown),
                 "pins": [{"category": p.category, "kinds": list(p.kinds), "bytes": p.bytes,
                           "pins": p.pins, "measured": p.measured} for p in b.pins]}
                for b in v.top],
    }
