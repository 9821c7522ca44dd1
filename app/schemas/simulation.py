"""Shapes of the simulation API: a workload to run, validated and bounded."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.eras import ERA_NAMES

MAX_CLASSES = 20
MAX_LEFTOVERS = 300
MAX_EVENTS = 50
MAX_DAYS = 365
MAX_POINTS = 2000
MAX_CGROUPS = 5_000_000
MAX_BODY_BYTES = 256 * 1024


class CacheIn(BaseModel):
    """A slab cache's geometry (or just a name the model knows)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=100)
    object_size_bytes: int = Field(default=192, ge=8, le=1 << 22)
    objs_per_slab: int = Field(default=21, ge=1, le=4096)
    order: int = Field(default=0, ge=0, le=10)
    reclaimable: bool = True


class LeftoverIn(BaseModel):
    """What each cgroup of a class leaves behind."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["slab", "pagecache", "shmem", "kstack"]
    amount: int = Field(ge=1, le=1_000_000)
    cache: CacheIn | None = None
    mean_life_seconds: float | None = Field(default=None, ge=0, le=365 * 86_400)
    dirty_share: float = Field(default=0.0, ge=0, le=1)  # page cache still dirty at removal

    @model_validator(mode="after")
    def _slab_has_cache(self) -> LeftoverIn:
        if self.kind == "slab" and self.cache is None:
            raise ValueError("a slab leftover needs a cache (at least its name)")
        if self.dirty_share and self.kind != "pagecache":
            raise ValueError("dirty_share applies to page cache leftovers only")
        return self


class JobClassIn(BaseModel):
    """A class of cgroups."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=100)
    per_day: float = Field(default=0, ge=0, le=1_000_000)
    lifetime_seconds: float = Field(ge=0, le=365 * 86_400)
    period_seconds: float | None = Field(default=None, gt=0.001, le=365 * 86_400)
    count: int | None = Field(default=None, ge=0, le=MAX_CGROUPS)
    start_seconds: float = Field(default=0, ge=0)
    leftovers: list[LeftoverIn] = Field(default_factory=list, max_length=MAX_LEFTOVERS)
    # Charged once, to the first cgroup of the class (dentries, directory blocks it shares).
    shared_leftovers: list[LeftoverIn] = Field(default_factory=list,
                                               max_length=MAX_LEFTOVERS)


class EventIn(BaseModel):
    """drop_caches (mode 1, 2, 3), delete_files (one class, or all) or sync."""

    model_config = ConfigDict(extra="forbid")
    at_seconds: float = Field(ge=0)
    kind: Literal["drop_caches", "delete_files", "sync"]
    mode: int = Field(default=0, ge=0, le=3)
    job: str | None = Field(default=None, max_length=100)


class PressureIn(BaseModel):
    """Reclaim rates per object or page per day."""

    model_config = ConfigDict(extra="forbid")
    slab_per_day: float = Field(default=0.5, ge=0, le=10_000)
    pagecache_per_day: float = Field(default=1.0, ge=0, le=10_000)


class SimulationIn(BaseModel):
    """A scenario to run in some or all eras."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="custom", max_length=100)
    eras: list[Literal[ERA_NAMES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(ERA_NAMES), min_length=1, max_length=len(ERA_NAMES))
    seed: int = Field(default=0, ge=0, le=2**31)
    days: float = Field(default=30, gt=0, le=MAX_DAYS)
    step_seconds: float = Field(default=3600, ge=0.01, le=86_400)
    cpus: int = Field(default=2, ge=1, le=4096)
    numa_nodes: int = Field(default=1, ge=1, le=64)
    # The host's kernel, "MAJOR.MINOR": picks the cost generation within an era and whether
    # dying memcgs keep their memcg ID (before 4.8). None: each era's default.
    kernel: str | None = Field(default=None, pattern=r"^[0-9]{1,2}\.[0-9]{1,3}$")
    pressure: PressureIn = Field(default_factory=PressureIn)
    classes: list[JobClassIn] = Field(min_length=1, max_length=MAX_CLASSES)
    events: list[EventIn] = Field(default_factory=list, max_length=MAX_EVENTS)

    @model_validator(mode="after")
    def _bounded(self) -> SimulationIn:
        points = self.days * 86_400 / self.step_seconds
        if points > MAX_POINTS:
            raise ValueError(f"days / step gives {points:,.0f} points; the limit is "
                             f"{MAX_POINTS} (raise step_seconds)")
        total = 0.0
        for c in self.classes:
            if c.count is not None:
                total += c.count
            elif c.period_seconds:
                total += self.days * 86_400 / c.period_seconds
            else:
                total += c.per_day * self.days
        if total > MAX_CGROUPS:
            raise ValueError(f"the classes would create {total:,.0f} cgroups; the limit is "
                             f"{MAX_CGROUPS:,}")
        return self
