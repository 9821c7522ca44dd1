"""Pages of the lifecycle model: a host's projection and refcounts, and the scenario editor."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.deps import SessionDep
from app.domain.eras import ERA_NAMES
from app.modelviews import projection_json, refcounts_json, workload_json
from app.simulation.eras import ERAS
from app.simulation.knobs import registry
from app.simulation.scenarios import PRESETS
from app.simulation.selftests import selftests
from app.web import charts
from app.web.pages import _render

router = APIRouter(include_in_schema=False)
Fmt = Annotated[Literal["html", "json"], Query()]
Era = Literal[ERA_NAMES]  # type: ignore[valid-type]  # the registry's names


def _times(start: datetime, seconds: list[float]) -> list[datetime]:
    return [start + timedelta(seconds=s) for s in seconds]


@router.get("/hosts/{host}/projection")
def projection_page(request: Request, host: str, session: SessionDep,
                    days: Annotated[float, Query(gt=0, le=365)] = 30,
                    format: Fmt = "html") -> Response:
    """The observed dying curve and each era's projection, waste, zombies, backtest."""
    d = projection_json(session, host, days)
    start: datetime = d["start"]
    obs_t = _times(start, d["observed"]["seconds"])
    traces: list[tuple[str, list[datetime], list[float | None]]] = [
        ("observed", obs_t, list(d["observed"]["dying"]))]
    waste, zombies = [], []
    for era, p in d["projection"].items():
        t = _times(start, p["seconds"])
        traces.append((era, t, list(p["dying"])))
        waste.append((era, t, list(p["dying_cost_bytes"])))
        zombies.append((era, t, list(p["zombie_caches"])))
    figs = {"dying": charts.line(f"Dying memcgs: observed, and {days:g} days in every era",
                                 traces),
            "waste": charts.line("Memory the dying memcgs cost", waste, unit="bytes"),
            "zombies": charts.line("Zombie kmem_caches", zombies)}
    ctx: dict[str, Any] = {**d, "figures": figs,
                           "points": {k: charts.points(v) for k, v in figs.items()}}
    return _render(request, "projection.html", format, ctx,
                   ("host", "era", "days", "observed", "fit", "backtest", "projection"))


@router.get("/hosts/{host}/refcounts")
def refcounts_page(request: Request, host: str, session: SessionDep, era: Era = ERA_NAMES[0],
                   format: Fmt = "html") -> Response:
    """A Sankey of references for an era, beside the per-cache and per-memcg tables."""
    d = refcounts_json(session, host, era)
    fig = charts.sankey(f"References in era {era}: {d['chain']}", d["nodes"],
                        [(x["source"], x["target"], x["refs"]) for x in d["links"]])
    ctx = {**d, "eras": list(ERAS), "figure": fig, "points": charts.points(fig),
           "era_model": ERAS[era]}
    return _render(request, "refcounts.html", format, ctx,
                   ("host", "era", "exact", "method", "chain", "nodes", "links", "caches",
                    "memcgs"))


@router.get("/simulate")
def simulate_page(request: Request,
                  scenario: Annotated[str, Query(max_length=100)] = "kubernetes-cronjobs",
                  format: Fmt = "html") -> Response:
    """The scenario editor: presets, every era compared, and the protocol view."""
    if scenario not in PRESETS:
        from fastapi import HTTPException
        raise HTTPException(404, f"no scenario named {scenario!r}; presets: "
                                 f"{', '.join(PRESETS)}")
    w = PRESETS[scenario]
    # Every constant and era fact, and the numbers of this preset: source or assumption.
    knobs = [k for k in registry()
             if k.group != "workload preset" or k.name.startswith(scenario + ": ")]
    ctx = {"scenario": scenario, "presets": list(PRESETS), "description": w.description,
           "workload": workload_json(w), "eras": list(ERAS),
           "selftests": selftests(), "knobs": [dataclasses.asdict(k) for k in knobs]}
    return _render(request, "simulate.html", format, ctx,
                   ("scenario", "presets", "description", "workload", "eras", "selftests",
                    "knobs"))
