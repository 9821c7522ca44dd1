"""The model's read services, shared by the API and the pages (neither may import the other).

Turns requests into the model's Workload, and the model's results into JSON-ready dicts; fits
and projects a host's history, and counts its references in an era, as typed records
(HostProjection, HostRefcounts) with their JSON forms. A host that does not exist is NotFound,
one without enough data a Conflict (app/services/errors.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.domain.eras import DEFAULT_ERA
from app.domain.history import HostHistory
from app.schemas.simulation import SimulationIn
from app.services import hosts
from app.services.errors import Invalid, NoScrape, NotFound, TooLittleHistory
from app.simulation import calibrate
from app.simulation.engine import Work, dying_hold_ids
from app.simulation.eras import ERAS
from app.simulation.refcounts import RefcountView, refcounts
from app.simulation.scenarios import PRESETS
from app.simulation.workload import (
    DENTRY,
    EXT4_INODE,
    INODE,
    KMALLOC_192,
    SOCK,
    CacheGeometry,
    Event,
    JobClass,
    Kind,
    Leftover,
    Pressure,
    Workload,
)

KNOWN = {c.name: c for c in (DENTRY, INODE, EXT4_INODE, KMALLOC_192, SOCK)}


def to_workload(s: SimulationIn) -> Workload:
    """The validated request as the model's Workload."""
    classes = []
    for c in s.classes:
        leaves: list[Leftover] = []
        shared: list[Leftover] = []
        for lf, into in [(x, leaves) for x in c.leftovers] + \
                [(x, shared) for x in c.shared_leftovers]:
            cache = None
            if lf.cache is not None:
                known = KNOWN.get(lf.cache.name)
                fields = lf.cache.model_fields_set - {"name"}
                cache = known if known is not None and not fields else CacheGeometry(
                    lf.cache.name, lf.cache.object_size_bytes, lf.cache.objs_per_slab,
                    lf.cache.order, lf.cache.reclaimable)
            into.append(Leftover(Kind(lf.kind), lf.amount, cache, lf.mean_life_seconds,
                                 lf.dirty_share))
        classes.append(JobClass(c.name, c.per_day, c.lifetime_seconds, tuple(leaves),
                                c.period_seconds, c.count, c.start_seconds,
                                shared_leftovers=tuple(shared)))
    kernel = None if s.kernel is None else (int(s.kernel.split(".")[0]),
                                            int(s.kernel.split(".")[1]))
    return Workload(s.name, tuple(classes), Pressure(s.pressure.slab_per_day,
                                                     s.pressure.pagecache_per_day),
                    tuple(Event(e.at_seconds, e.kind, e.mode, e.job) for e in s.events),
                    s.days * 86_400.0, s.step_seconds, s.cpus, s.numa_nodes, kernel=kernel)


# What a client can change to shrink each term of the work estimate.
WORK_FIELDS = {
    "cgroups": "cgroups (classes[].count, per_day or period_seconds, days) or eras",
    "cgroups_events": "cgroups or leftovers (classes[].leftovers) or events",
    "steps_squared": "steps (raise step_seconds or lower days), leftovers or events",
    "steps_eras": "steps, leftovers or eras",
}


def budget_error(cost: Work, budget: float) -> str:
    """The 422 detail of a body over the simulation budget: both figures, what to reduce."""
    terms = sorted(cost.terms.items(), key=lambda kv: -kv[1])
    parts = [f"{name} {value / cost.total:.0%} (reduce {WORK_FIELDS[name]})"
             for name, value in terms if value >= 0.1 * cost.total]
    return (f"the simulation's estimated work is {cost.total:.3g} units, over the budget of "
            f"{budget:.3g} (SLABSCOPE_SIMULATION_MAX_WORK; a unit is about 1 ns of CPU): "
            f"{cost.cgroups:,.0f} cgroups, {cost.steps} steps, {cost.leftovers} leftovers, "
            f"{cost.eras} eras; most of it is " + "; ".join(parts))


def check_budget(cost: Work, budget: float) -> None:
    """Invalid (budget_error's message) if the estimated work is over the budget."""
    if cost.total > budget:
        raise Invalid(budget_error(cost, budget))


def scenario(name: str) -> Workload:
    """The preset workload named `name`; NotFound names the presets."""
    w = PRESETS.get(name)
    if w is None:
        raise NotFound(f"no scenario named {name!r}; presets: {', '.join(PRESETS)}")
    return w


def workload_json(w: Workload) -> dict[str, Any]:
    """A Workload as the body POST /simulations takes (what the editor shows)."""
    return {
        "name": w.name, "days": w.duration_seconds / 86_400.0, "step_seconds": w.step_seconds,
        "cpus": w.cpus, "numa_nodes": w.numa_nodes,
        "pressure": dataclasses.asdict(w.pressure),
        "classes": [{
            "name": c.name, "per_day": c.per_day, "lifetime_seconds": c.lifetime_seconds,
            "period_seconds": c.period_seconds, "count": c.count,
            "start_seconds": c.start_seconds,
            "leftovers": [{"kind": lf.kind.value, "amount": lf.amount,
                           "cache": dataclasses.asdict(lf.cache) if lf.cache else None,
                           "mean_life_seconds": lf.mean_life_seconds}
                          for lf in c.leftovers]} for c in w.classes],
        "events": [dataclasses.asdict(e) for e in w.events],
    }


def result_json(r: Any) -> dict[str, Any]:
    """A SimulationResult as JSON."""
    return {"workload": r.workload, "seed": r.seed, "step_seconds": r.step_seconds,
            "eras": {k: dataclasses.asdict(v) for k, v in r.eras.items()}}


@dataclass(frozen=True, slots=True)
class HostProjection:
    """A host's history fitted, then projected `days` in every era (calibrate.project)."""

    host: str
    era: str
    days: float
    history: HostHistory
    result: calibrate.Projection


def projection(session: Session, host: str, days: float) -> HostProjection:
    """Fit the host's own history and project it; NotFound or TooLittleHistory otherwise."""
    h = hosts.get_host(session, host)
    hist = hosts.history(session, h)
    if hist is None or len(hist.times_seconds) < 3:
        raise TooLittleHistory(f"host {host!r} has too little history to fit "
                               "(a few scrapes at least)")
    return HostProjection(host, h.era, days, hist, calibrate.project(hist, days))


def projection_json(hp: HostProjection) -> dict[str, Any]:
    """The projection of a host, as the API and the page's JSON twin give it."""
    host, days, hist, p = hp.host, hp.days, hp.history, hp.result
    bt = dataclasses.asdict(p.backtest) if p.backtest else None
    start = hist.start

    def at(seconds: float | None) -> datetime | None:
        return None if seconds is None else start + timedelta(seconds=seconds)
    return {
        "host": host, "era": hp.era, "days": days, "start": start,
        "observed": {"seconds": p.observed_seconds, "dying": p.observed_dying},
        "from_observation": {"seconds": p.start_seconds, "at": at(p.start_seconds),
                             "dying": p.start_dying, "live": p.live},
        "id_limit": p.id_limit,
        "fit": {"removed_per_day": p.fit.removed_per_day,
                "removal_rate_source": p.fit.rate_source,
                "pagecache_reclaim_per_day": p.fit.pagecache_per_day,
                "initial_dying": p.fit.initial_dying,
                "initial_persistent_share": p.fit.initial_persistent_share,
                "end_persistent_share": p.fit.end_persistent_share,
                "shares": p.fit.shares, "rmse": p.fit.rmse, "mean_level": p.fit.mean_level,
                "flags": [dataclasses.asdict(x) for x in p.fit.flags],
                "words": p.fit.words},
        "backtest": bt,
        "projection": {k: {"seconds": v.times_seconds, "dying": v.dying,
                           "dying_cost_bytes": v.dying_cost_bytes,
                           "zombie_caches": v.zombie_caches,
                           "leftover_slab_bytes": v.leftover_slab_bytes,
                           "enospc_seconds": v.enospc_seconds,
                           "enospc_at": at(v.enospc_seconds),
                           "dying_hold_ids": dying_hold_ids(ERAS[k], p.fit.workload.kernel)}
                       for k, v in p.result.eras.items()},
    }


@dataclass(frozen=True, slots=True)
class HostRefcounts:
    """The references a host's latest scrape would hold in one era (refcounts.refcounts)."""

    host: str
    era: str
    view: RefcountView


def refcount_view(session: Session, host: str, era: str | None) -> HostRefcounts:
    """The refcount view of a host in `era` (None: the host's own era); NotFound, or NoScrape
    before its first scrape."""
    h = hosts.get_host(session, host)
    if era is None:
        era = h.era if h.era in ERAS else DEFAULT_ERA
    st = hosts.state(session, h)
    if st is None:
        raise NoScrape(f"host {host!r} has no scrape yet")
    return HostRefcounts(host, era, refcounts(st, era))


def refcounts_json(hr: HostRefcounts) -> dict[str, Any]:
    """The refcount view of a host, as the API and the page's JSON twin give it."""
    host, era, v = hr.host, hr.era, hr.view
    return {"host": host, "era": era, "exact": v.exact, "method": v.method, "chain": v.chain,
            "nodes": v.nodes, "links": [{"source": a, "target": b, "refs": r}
                                        for a, b, r in v.links],
            "caches": [dataclasses.asdict(c) for c in v.caches],
            "memcgs": [{"memcg": m, "css_refs": r} for m, r in v.memcgs]}
