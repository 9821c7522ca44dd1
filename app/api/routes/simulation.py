"""/api/v1: eras, scenarios, simulations, the protocol view, host projections and refcounts."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from app.deps import SessionDep
from app.modelviews import projection_json, refcounts_json, result_json, to_workload, workload_json
from app.schemas.api import (
    ErasOut,
    ProjectionOut,
    ProtocolOut,
    RefcountsOut,
    ScenariosOut,
    SimulationOut,
    errors,
)
from app.schemas.simulation import SimulationIn
from app.simulation import protocol
from app.simulation.engine import simulate
from app.simulation.eras import ERAS
from app.simulation.scenarios import PRESETS, selftests

router = APIRouter(prefix="/api/v1", tags=["model"], responses=errors(422))
HOST_VIEW = errors(404, 409, 503)
Era = Literal["pre-5.3", "v4-5/7", "5.3", "objcg", "objcg-kmem", "lru-reparent"]


@router.get("/eras", response_model=ErasOut)
def eras() -> dict[str, Any]:
    """Every era of the model: what pins a dying memcg, which caches exist, when freed."""
    return {"eras": [dataclasses.asdict(e) for e in ERAS.values()]}


@router.get("/scenarios", response_model=ScenariosOut)
def scenarios() -> dict[str, Any]:
    """Preset workloads (bodies for POST /simulations) and the test_kmem outcomes by era."""
    return {"scenarios": [{"name": n, "description": w.description,
                           "workload": workload_json(w)} for n, w in PRESETS.items()],
            "selftests": [dataclasses.asdict(o) for o in selftests()]}


@router.post("/simulations", response_model=SimulationOut, responses=errors(400))
def run_simulation(body: SimulationIn) -> dict[str, Any]:
    """Run a workload in the chosen eras (validated and bounded: see the 422's detail)."""
    return result_json(simulate(to_workload(body), list(body.eras), seed=body.seed))


@router.get("/protocol", response_model=ProtocolOut)
def protocol_view(variant: Annotated[Literal["v4", "v5", "5.3"], Query()] = "v4"
                  ) -> dict[str, Any]:
    """One per-memcg cache through offline and draining, event by event, with violations."""
    r = protocol.run(variant)
    return {"variant": r.variant, "final_state": r.final_state, "css_put": r.css_put,
            "violations": r.violations, "steps": [dataclasses.asdict(s) for s in r.steps]}


@router.get("/hosts/{host}/projection", response_model=ProjectionOut, responses=HOST_VIEW)
def host_projection(host: str, session: SessionDep,
                    days: Annotated[float, Query(gt=0, le=365)] = 30) -> dict[str, Any]:
    """Fit the host's own history, then project N days in every era, with a backtest."""
    return projection_json(session, host, days)


@router.get("/hosts/{host}/refcounts", response_model=RefcountsOut, responses=HOST_VIEW)
def host_refcounts(host: str, session: SessionDep,
                   era: Annotated[Era, Query()] = "pre-5.3") -> dict[str, Any]:
    """Pages per cache and the references they would hold in an era (exact or estimated)."""
    return refcounts_json(session, host, era)
