"""/api/v1: eras, scenarios, simulations, the protocol view, host projections and refcounts."""

from __future__ import annotations

import dataclasses
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from app.api.model_schemas import (
    ErasOut,
    ProjectionOut,
    ProtocolOut,
    RefcountsOut,
    ScenariosOut,
    SimulationOut,
)
from app.config import Settings
from app.deps import SessionDep
from app.domain.eras import ERA_NAMES
from app.schemas.api import ErrorOut, errors
from app.schemas.simulation import SimulationIn
from app.services import model
from app.services.model import result_json, to_workload, workload_json
from app.simulation import protocol, sandbox
from app.simulation.engine import Work, work
from app.simulation.eras import ERAS
from app.simulation.scenarios import PRESETS
from app.simulation.selftests import selftests
from app.simulation.workload import Workload

log = logging.getLogger("slabscope.web")
router = APIRouter(prefix="/api/v1", tags=["model"], responses=errors(422))
HOST_VIEW = errors(404, 409, 503)
Era = Literal[ERA_NAMES]  # type: ignore[valid-type]  # the registry's names


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


RETRY_AFTER_SECONDS = 5
SIMULATION_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "Invalid or too costly: the body is over a limit, "
          "its estimated work is over SLABSCOPE_SIMULATION_MAX_WORK (`detail` gives both "
          "figures and the fields to reduce), or the run went over its memory or CPU limit"},
    503: {"model": ErrorOut, "description": "Busy: SLABSCOPE_SIMULATION_CONCURRENCY "
          "simulations are already running in this server process, or this one did not finish "
          "within SLABSCOPE_SIMULATION_TIMEOUT_SECONDS; try again after `Retry-After` seconds",
          "headers": {"Retry-After": {"description": "seconds to wait",
                                      "schema": {"type": "integer"}}}},
}


def _gate(request: Request) -> sandbox.Gate:
    gate: sandbox.Gate | None = getattr(request.app.state, "simulation_gate", None)
    if gate is None:
        settings: Settings = request.app.state.settings
        gate = request.app.state.simulation_gate = sandbox.Gate(settings.simulation_concurrency)
    return gate


def _estimate(body: SimulationIn, eras: int) -> tuple[Workload, Work]:
    w = to_workload(body)
    return w, work(w, eras)


def _busy(detail: str) -> HTTPException:
    return HTTPException(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@router.post("/simulations", response_model=SimulationOut,
             responses={**errors(400), **SIMULATION_RESPONSES})
async def run_simulation(body: SimulationIn, request: Request) -> dict[str, Any]:
    """Run a workload in the chosen eras (validated and bounded: see the 422's detail).

    The work is estimated from the body first; a run then takes a child process with its own
    memory, CPU and time limits, one of a few per server process.
    """
    settings: Settings = request.app.state.settings
    eras = list(body.eras)
    # O(leftovers x events) in Python: up to a few hundred ms for the largest body.
    w, cost = await run_in_threadpool(_estimate, body, len(eras))
    model.check_budget(cost, settings.simulation_max_work)
    gate = _gate(request)
    if not gate.try_enter():
        raise _busy(f"{settings.simulation_concurrency} simulation(s) already running in "
                    f"this server process (SLABSCOPE_SIMULATION_CONCURRENCY); try again in "
                    f"{RETRY_AFTER_SECONDS} s")
    limits = sandbox.Limits(settings.simulation_memory_bytes, settings.simulation_cpu_seconds,
                            settings.simulation_timeout_seconds)
    try:
        result = await run_in_threadpool(sandbox.run, w, eras, body.seed, limits)
    except sandbox.SimulationLimitError as err:
        if err.kind == "wall":
            raise _busy(f"{err} (SLABSCOPE_SIMULATION_TIMEOUT_SECONDS); the server may be "
                        "busy: try again later, or reduce the work") from err
        setting = {"memory": "SLABSCOPE_SIMULATION_MEMORY_BYTES",
                   "cpu": "SLABSCOPE_SIMULATION_CPU_SECONDS"}[err.kind]
        raise HTTPException(422, f"{err} ({setting}): reduce the cgroups (classes[].count, "
                                 "per_day, period_seconds, days), leftovers, events, steps "
                                 "(days / step_seconds) or eras") from err
    except sandbox.SimulationCrashed as err:
        log.error("simulation failed: %s", err)
        raise _busy(f"{str(err).splitlines()[0]}; see the server log") from err
    finally:
        gate.leave()
    return await run_in_threadpool(result_json, result)


@router.get("/protocol", response_model=ProtocolOut)
def protocol_view(variant: Annotated[Literal["v4", "v5", "5.3"], Query()] = "v4"
                  ) -> dict[str, Any]:
    """One per-memcg cache through offline and draining, event by event, with violations."""
    r = protocol.run(variant)
    return {"variant": r.variant, "final_state": r.final_state, "css_put": r.css_put,
            "memcg_released": r.memcg_released, "summary": r.summary,
            "violations": r.violations, "steps": [dataclasses.asdict(s) for s in r.steps]}


@router.get("/hosts/{host}/projection", response_model=ProjectionOut, responses=HOST_VIEW)
def host_projection(host: str, session: SessionDep,
                    days: Annotated[float, Query(gt=0, le=365)] = 30) -> dict[str, Any]:
    """Fit the host's own history, then project N days in every era, with a backtest."""
    return model.projection_json(model.projection(session, host, days))


@router.get("/hosts/{host}/refcounts", response_model=RefcountsOut, responses=HOST_VIEW)
def host_refcounts(host: str, session: SessionDep,
                   era: Annotated[Era | None, Query(
                       description="default: the host's own era")] = None) -> dict[str, Any]:
    """Pages per cache and the references they would hold in an era (exact or estimated)."""
    return model.refcounts_json(model.refcount_view(session, host, era))
