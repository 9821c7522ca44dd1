"""Pages of the lifecycle model: a host's projection and refcounts, and the scenario editor."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.deps import SessionDep
from app.domain.eras import ERA_NAMES
from app.services import model
from app.services.model import workload_json
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
    d = model.projection_json(model.projection(session, host, days))
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
    own = d["era"]  # the host's era: drawn wider on every chart
    figs = {"dying": charts.line(f"Dying memcgs, {days:g} days on from the last observation",
                                 traces, highlight=own),
            "waste": charts.line("Memory the dying memcgs cost", waste, unit="bytes",
                                 highlight=own),
            "zombies": charts.line("Zombie kmem_caches", zombies, highlight=own)}
    # The ENOSPC date of each era that reaches the memcg-ID limit, in that era's colour.
    full = [(i, era, p["enospc_at"]) for i, (era, p) in enumerate(d["projection"].items(), 1)
            if p["enospc_at"] is not None]
    if full:
        limit = d["id_limit"] - d["from_observation"]["live"]
        end = max((t[-1] for _, t, _ in traces if t), default=obs_t[-1])
        charts.hline(figs["dying"], obs_t[0], end, limit,
                     f"memcg-ID limit ({d['id_limit']:,} less {d['from_observation']['live']:,}"
                     " live)")
        # Eras that reach it at the same moment share one line and one label.
        same: dict[datetime, list[tuple[int, str]]] = {}
        for i, era, when in full:
            same.setdefault(when, []).append((i, era))
        for when, eras in same.items():
            charts.vline(figs["dying"], when, "ENOSPC " + ", ".join(e for _, e in eras),
                         charts.ERA_COLORS.get(eras[0][1], charts.COLORS[0]), limit)
    ctx: dict[str, Any] = {**d, "figures": figs,
                           "points": {k: charts.points(v) for k, v in figs.items()}}
    return _render(request, "projection.html", format, ctx,
                   ("host", "era", "days", "observed", "from_observation", "id_limit", "fit",
                    "backtest", "projection"))


@router.get("/hosts/{host}/refcounts")
def refcounts_page(request: Request, host: str, session: SessionDep, era: Era | None = None,
                   format: Fmt = "html") -> Response:
    """A Sankey of references for an era, beside the per-cache and per-memcg tables."""
    d = model.refcounts_json(model.refcount_view(session, host, era))
    era = d["era"]  # the host's own unless one was asked for
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
    w = model.scenario(scenario)
    # Every constant and era fact, and the numbers of this preset: source or assumption.
    knobs = [k for k in registry()
             if k.group != "workload preset" or k.name.startswith(scenario + ": ")]
    ctx = {"scenario": scenario, "presets": list(PRESETS), "description": w.description,
           "workload": workload_json(w), "eras": list(ERAS),
           "selftests": selftests(), "knobs": [dataclasses.asdict(k) for k in knobs]}
    return _render(request, "simulate.html", format, ctx,
                   ("scenario", "presets", "description", "workload", "eras", "selftests",
                    "knobs"))
