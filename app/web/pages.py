"""HTML pages; each has a JSON twin (?format=json) with exactly the data the page shows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from app.db import models as m
from app.db import queries as q
from app.deps import SessionDep, SettingsDep, When, rules_of
from app.domain.alerts import evaluate
from app.domain.timerange import PRESETS, RangeError, TimeRange, resolve
from app.services import churnview
from app.services import hosts as views
from app.services import pins as pinsview
from app.web import charts, glossary
from app.web.templating import templates

router = APIRouter(include_in_schema=False)
Fmt = Annotated[Literal["html", "json"], Query()]
Preset = Annotated[str | None, Query(alias="range")]


def _render(request: Request, name: str, fmt: str, ctx: dict[str, Any],
            json_keys: tuple[str, ...]) -> Response:
    if fmt == "json":
        return JSONResponse(jsonable_encoder({k: ctx[k] for k in json_keys}))
    response: Response = templates.TemplateResponse(request, name, ctx)
    return response


def _host(session: Session, name: str) -> m.Host:
    return views.get_host(session, name, " (`slabscope doctor` on that host)")


def _range(preset: str | None, since: datetime | None, until: datetime | None,
           end: datetime) -> TimeRange:
    try:
        return resolve(preset, since, until, end)
    except RangeError as err:
        raise HTTPException(422, str(err)) from err


@router.get("/glossary")
def glossary_page(request: Request, format: Fmt = "html") -> Response:
    """Every word of the dashboard, and every kernel era, explained (hovers link here)."""
    terms = [{"key": t.key, "name": t.name, "text": t.text} for t in glossary.all_terms()]
    return _render(request, "glossary.html", format, {"terms": terms}, ("terms",))


@router.get("/")
def fleet_page(request: Request, session: SessionDep, settings: SettingsDep,
               offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               format: Fmt = "html") -> Response:
    """The fleet: hosts by dying memcgs, with sparklines, growth, waste and staleness."""
    hosts, total = views.fleet(session, limit=limit, offset=offset, now=views.utcnow(),
                               stale_after=timedelta(seconds=settings.stale_after_seconds),
        min_history=timedelta(seconds=settings.growth_min_history_seconds))
    ctx = {"hosts": hosts, "total": total, "offset": offset, "limit": limit,
           "stale": [h for h in hosts if h.stale],
           "alerts": [a for a in evaluate(hosts, rules_of(settings))
                      if a.rule != "stopped_reporting"],
           "stale_after_seconds": settings.stale_after_seconds}
    return _render(request, "index.html", format, ctx,
                   ("hosts", "total", "offset", "limit", "alerts"))


@router.get("/hosts/{host}")
def host_page(request: Request, host: str, session: SessionDep, settings: SettingsDep,
              preset: Preset = None, since: When = None, until: When = None,
              removed_offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
              format: Fmt = "html") -> Response:
    """One host over a time range: dying and live memcgs, slab, percpu, caches, removals."""
    h = _host(session, host)
    tr = _range(preset, since, until, h.last_seen_at)
    detail = views.host_detail(session, host, now=views.utcnow(),
                               stale_after=timedelta(seconds=settings.stale_after_seconds),
        min_history=timedelta(seconds=settings.growth_min_history_seconds))

    ser = views.host_series(session, h.id, ["memcg_dying", "memcg_live", "sreclaimable_bytes",
                                            "sunreclaim_bytes", "percpu_bytes"],
                            tr.since, tr.until, None)
    dying, live = ser["memcg_dying"], ser["memcg_live"]
    recl, unrecl, percpu = ser["sreclaimable_bytes"], ser["sunreclaim_bytes"], ser["percpu_bytes"]
    per = charts.per(dying.step_seconds)  # hourly where the range reaches dropped raw data
    span = (tr.since, tr.until)  # every chart spans the chosen range, whatever data it has
    figs = {
        "memcgs": charts.line(f"Memory cgroups (means {per})",
                              [("dying", dying.times, dying.values),
                               ("live", live.times, live.values)], span=span),
        "slab": charts.line(f"Slab (means {per})", [("reclaimable", recl.times, recl.values),
                                     ("unreclaimable", unrecl.times, unrecl.values)],
                            unit="bytes", stacked=True, span=span),
        "percpu": charts.line(f"Percpu (means {per})", [("percpu", percpu.times, percpu.values)],
                              unit="bytes", span=span),
    }
    pins = pinsview.pins(session, h, tr.since, tr.until)
    figs["pins"] = charts.line(
        "What holds the dying memcgs (charge left under each live cgroup)",
        [(s.label, pins.times, list(map(float, s.values))) for s in pins.series if s.pins],
        unit="bytes", stacked=True, span=span)
    churn = churnview.churn_view(session, h, tr.since, tr.until)
    churn_fig = charts.line(
        f"Cgroups made and removed {charts.per(churn.width_seconds)}, counted by the kernel",
        [(name, churn.times, [None if v is None else float(v) for v in vals])
         for name, vals in (("made (counted)", churn.created),
                            ("removed (counted)", churn.removed),
                            ("removals the listing saw", list(churn.seen)))], span=span)
    groups = churnview.removed_groups(session, h, pins, tr.until)
    caches, at = views.caches(session, h.id, tr.until, tr.until - tr.since)
    by_bytes = sorted(caches, key=lambda c: c.bytes, reverse=True)[:10]
    by_growth = sorted((c for c in caches if c.growth_bytes), key=lambda c: c.growth_bytes or 0,
                       reverse=True)[:10]
    removed, removed_total = views.removed(session, h, None, None, 50, removed_offset,
                                           churnview.evidence(session, h, pins))
    ctx = {"host": detail, "range": tr, "presets": list(PRESETS), "figures": figs,
           "alerts": [a for a in evaluate([detail.summary], rules_of(settings))
                      if a.rule != "stopped_reporting"],
           "points": {k: charts.points(v) for k, v in figs.items()},
           "top_bytes": by_bytes, "top_growth": by_growth, "caches_at": at,
           "removed": removed, "removed_total": removed_total,
           "removed_offset": removed_offset, "pins": pins,
           "pins_json": churnview.with_removal_counts(pinsview.pins_json(pins), groups,
                                                      churn),
           "step_seconds": dying.step_seconds,
           "churn": churn, "churn_figure": churn_fig, "churn_points": charts.points(churn_fig),
           "churn_json": churnview.churn_json(churn), "churn_note": churnview.CHURN_NOTE,
           "groups": groups,
           "groups_json": churnview.groups_json(groups)}
    return _render(request, "host.html", format, ctx,
                   ("host", "alerts", "range", "step_seconds", "figures", "points", "top_bytes",
                    "top_growth",
                    "caches_at", "removed", "removed_total", "removed_offset", "pins_json",
                    "churn_json", "groups_json"))


@router.get("/hosts/{host}/caches/{name:path}")
def cache_page(request: Request, host: str, name: str, session: SessionDep,
               preset: Preset = None, since: When = None, until: When = None,
               format: Fmt = "html") -> Response:
    """One cache over time: objects, slabs, bytes, utilisation; aliases and geometry."""
    h = _host(session, host)
    geo = q.cache_geometry(session, h.id, name)
    if geo is None:
        raise HTTPException(404, f"host {host!r} has no slab cache {name!r}")
    tr = _range(preset, since, until, h.last_seen_at)

    ser = views.cache_series(session, h.id, name, ["objects", "active_objs", "slabs", "bytes"],
                             tr.since, tr.until, None)
    assert ser is not None
    objs, active, slabs, nbytes = ser["objects"], ser["active_objs"], ser["slabs"], ser["bytes"]
    util = [None if not o or a is None else a / o for a, o in zip(active.values, objs.values,
                                                                   strict=True)]
    per = charts.per(objs.step_seconds)
    span = (tr.since, tr.until)
    figs = {
        "objects": charts.line(f"Objects (means {per})", [("total", objs.times, objs.values),
                                           ("active", active.times, active.values)], span=span),
        "slabs": charts.line(f"Slabs (means {per})", [("slabs", slabs.times, slabs.values)],
                             span=span),
        "bytes": charts.line(f"Memory (means {per})", [("bytes", nbytes.times, nbytes.values)],
                             unit="bytes", span=span),
        "utilisation": charts.line(f"Utilisation (active / total objects, {per})",
                                   [("utilisation", objs.times, util)], span=span),
    }
    figs["utilisation"]["layout"]["yaxis"].update(tickformat=".0%", range=[0, 1.05])
    geometry = {"object_size_bytes": geo.object_size_bytes,
                "slab_size_bytes": geo.slab_size_bytes,
                "objs_per_slab": geo.objs_per_slab_total,
                "pages_per_slab": geo.pages_per_slab_total,
                "order": geo.order, "reclaim_account": geo.reclaim_account}
    ctx = {"host_name": h.name, "name": name, "aliases": list(geo.aliases_json or []),
           "geometry": geometry, "range": tr, "presets": list(PRESETS), "figures": figs,
           "step_seconds": objs.step_seconds,
           "points": {k: charts.points(v) for k, v in figs.items()}}
    return _render(request, "cache.html", format, ctx,
                   ("host_name", "name", "aliases", "geometry", "range", "step_seconds",
                    "figures", "points"))


@router.get("/hosts/{host}/cgroups")
def cgroups_page(request: Request, host: str, session: SessionDep, at: When = None,
                 format: Fmt = "html") -> Response:
    """The cgroup trees, collapsible, with dying counts per subtree and memory.stat."""
    h = _host(session, host)
    nodes, when = views.cgroups(session, h.id, at)
    ctx = {"host_name": h.name, "era": h.era, "at": when, "nodes": nodes}
    return _render(request, "cgroups.html", format, ctx, ("host_name", "at", "nodes"))
