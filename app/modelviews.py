"""The model's views shared by the API and the pages (neither may import the other).

Turns requests into the model's Workload, and the model's results and a host's projection and
refcounts into JSON-ready dicts.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from fastapi import HTTPException
from sqlalchemy.orm import Session

from app.db import queries as q
from app.db import views
from app.schemas.simulation import SimulationIn
from app.simulation import calibrate
from app.simulation.engine import Work
from app.simulation.refcounts import refcounts
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
        leaves = []
        for lf in c.leftovers:
            cache = None
            if lf.cache is not None:
                known = KNOWN.get(lf.cache.name)
                fields = lf.cache.model_fields_set - {"name"}
                cache = known if known is not None and not fields else CacheGeometry(
                    lf.cache.name, lf.cache.object_size_bytes, lf.cache.objs_per_slab,
                    lf.cache.order, lf.cache.reclaimable)
            leaves.append(Leftover(Kind(lf.kind), lf.amount, cache, lf.mean_life_seconds))
        classes.append(JobClass(c.name, c.per_day, c.lifetime_seconds, tuple(leaves),
                                c.period_seconds, c.count, c.start_seconds))
    return Workload(s.name, tuple(classes), Pressure(s.pressure.slab_per_day,
                                                     s.pressure.pagecache_per_day),
                    tuple(Event(e.at_seconds, e.kind, e.mode, e.job) for e in s.events),
                    s.days * 86_400.0, s.step_seconds, s.cpus, s.numa_nodes)


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


def projection_json(session: Session, host: str, days: float) -> dict[str, Any]:
    """The projection of a host, as the API and the page's JSON twin give it."""
    h = q.host_by_name(session, host)
    if h is None:
        raise HTTPException(404, f"no host named {host!r}: is its collector running?")
    hist = views.history(session, h)
    if hist is None or len(hist.times_seconds) < 3:
        raise HTTPException(409, f"host {host!r} has too little history to fit "
                                 "(a few scrapes at least)")
    p = calibrate.project(hist, days)
    bt = dataclasses.asdict(p.backtest) if p.backtest else None
    start = hist.start

    def at(seconds: float | None) -> datetime | None:
        return None if seconds is None else start + timedelta(seconds=seconds)
    return {
        "host": host, "era": h.era, "days": days, "start": start,
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
                           "enospc_at": at(v.enospc_seconds)}
                       for k, v in p.result.eras.items()},
    }


def refcounts_json(session: Session, host: str, era: str) -> dict[str, Any]:
    """The refcount view of a host, as the API and the page's JSON twin give it."""
    h = q.host_by_name(session, host)
    if h is None:
        raise HTTPException(404, f"no host named {host!r}: is its collector running?")
    st = views.state(session, h)
    if st is None:
        raise HTTPException(409, f"host {host!r} has no scrape yet")
    v = refcounts(st, era)
    return {"host": host, "era": era, "exact": v.exact, "method": v.method, "chain": v.chain,
            "nodes": v.nodes, "links": [{"source": a, "target": b, "refs": r}
                                        for a, b, r in v.links],
            "caches": [dataclasses.asdict(c) for c in v.caches],
            "memcgs": [{"memcg": m, "css_refs": r} for m, r in v.memcgs]}
