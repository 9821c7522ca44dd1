"""JSON shapes of the model's answers (eras, scenarios, simulations, protocol, projections,
refcounts). They carry the simulation's own records (EraResult, Backtest, Step, ...), so they
live in the API layer, which may import app.simulation; app/schemas imports only the domain
(DESIGN.md's layers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from app.simulation.calibrate import Backtest
from app.simulation.engine import EraResult
from app.simulation.eras import EraModel
from app.simulation.protocol import Step
from app.simulation.refcounts import CacheRefs
from app.simulation.selftests import SelftestOutcome


class ErasOut(BaseModel):
    """Every era of the lifecycle model."""

    eras: list[EraModel]


class Scenario(BaseModel):
    """A preset workload, as the body of POST /api/v1/simulations."""

    name: str
    description: str
    workload: dict[str, Any]


class ScenariosOut(BaseModel):
    """Preset workloads and the test_kmem outcomes by era."""

    scenarios: list[Scenario]
    selftests: list[SelftestOutcome]


class SimulationOut(BaseModel):
    """A workload run in each chosen era, on one time grid."""

    workload: str
    seed: int
    step_seconds: float
    eras: dict[str, EraResult]


class ProtocolOut(BaseModel):
    """One per-memcg cache through offline and draining, event by event."""

    variant: Literal["v4", "v5", "5.3"]
    final_state: str
    css_put: bool
    memcg_released: bool
    summary: str
    violations: list[str]
    steps: list[Step]


class Observed(BaseModel):
    """The host's dying memcgs, seconds since `start`."""

    seconds: list[float]
    dying: list[float]


class FitFlagOut(BaseModel):
    """A reason not to trust the fit as it stands."""

    code: Literal["reclaim_rate_at_grid_edge", "large_error", "short_history"]
    message: str


class FitOut(BaseModel):
    """The workload fitted to the host's history."""

    removed_per_day: float
    removal_rate_source: Literal["counted", "seen", "none"]
    pagecache_reclaim_per_day: float
    initial_dying: int
    initial_persistent_share: float
    end_persistent_share: float
    shares: dict[str, float]
    rmse: float
    mean_level: float
    flags: list[FitFlagOut]
    words: list[str]


class FromObservation(BaseModel):
    """The last observation, where every era's projection starts."""

    seconds: float
    at: datetime
    dying: int
    live: int


class EraProjection(BaseModel):
    """One era's projection, seconds since `start`."""

    seconds: list[float]
    dying: list[int]
    dying_cost_bytes: list[float]
    zombie_caches: list[float]
    leftover_slab_bytes: list[float]
    # When live + dying memcgs reach the ID limit (mkdir fails with ENOSPC); None: not
    # within the projection.
    enospc_seconds: float | None
    enospc_at: datetime | None
    # Whether this era's dying memcgs hold memcg IDs (kernels before 4.8: 73f576c04b94
    # recycles the ID at offline since): only then are they capped at the ID limit.
    dying_hold_ids: bool


class ProjectionOut(BaseModel):
    """A host's history fitted, then projected in every era, with a backtest."""

    host: str
    era: str
    days: float
    start: datetime
    observed: Observed
    from_observation: FromObservation
    id_limit: int
    fit: FitOut
    backtest: Backtest | None
    projection: dict[str, EraProjection]


class RefLink(BaseModel):
    """A Sankey link: node indexes and the references it carries."""

    source: int
    target: int
    refs: float


class MemcgRefs(BaseModel):
    """The css references held on one memcg."""

    memcg: str
    css_refs: float


class RefcountsOut(BaseModel):
    """Pages per cache and the references they would hold in an era."""

    host: str
    era: str
    exact: bool
    method: str
    chain: str
    nodes: list[str]
    links: list[RefLink]
    caches: list[CacheRefs]
    memcgs: list[MemcgRefs]
