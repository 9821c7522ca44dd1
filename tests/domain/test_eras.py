"""The one era registry: detection, derived facts, and no era names spelled elsewhere."""

from __future__ import annotations

import dataclasses
import pathlib
import re

import pytest

from app.domain import cost
from app.domain.eras import (
    DEFAULT_ERA,
    ERA_NAMES,
    ERAS,
    FACT_SOURCES,
    UnknownRelease,
    era_for_release,
)
from app.simulation import eras as sim_eras

APP = pathlib.Path(__file__).resolve().parents[2] / "app"


@pytest.mark.parametrize(("release", "era"), [
    ("3.10.0-1160.el7.x86_64", "pre-5.3"), ("4.19.0", "pre-5.3"), ("5.2.21", "pre-5.3"),
    ("5.3.0", "5.3"), ("5.8.18", "5.3"), ("5.9.1", "objcg"), ("5.12.19", "objcg"),
    ("5.13.0", "objcg-kmem"), ("6.18.44-fc-v657", "objcg-kmem"), ("7.0.1", "objcg-kmem"),
    ("7.1.0-rc1", "lru-reparent"),
])
def test_era_for_release(release: str, era: str) -> None:
    assert era_for_release(release) == era


def test_unparsable_release() -> None:
    with pytest.raises(UnknownRelease, match=r"MAJOR\.MINOR"):
        era_for_release("linux")


def test_reparented_kinds_follow_the_facts() -> None:
    # The table pins.py held before the registry (kernel-notes.md 2, 'Pins and release').
    assert {n: set(e.reparented_kinds) for n, e in ERAS.items()} == {
        "pre-5.3": set(), "v4-5/7": set(), "5.3": {"slab"}, "objcg": {"slab", "percpu"},
        "objcg-kmem": {"slab", "percpu", "kernel_stack", "kernel"},
        "lru-reparent": {"slab", "percpu", "kernel_stack", "kernel", "file", "dirty", "shmem",
                         "anon", "swap"}}
    lru = dataclasses.replace(ERAS["objcg-kmem"], lru_pins=False)
    assert {"file", "shmem"} <= lru.reparented_kinds


def test_cost_model_per_era_comes_from_its_release() -> None:
    assert [cost.model_for_era(n) for n in ERA_NAMES] == [
        cost.UP_TO_5_8, cost.UP_TO_5_8, cost.UP_TO_5_8, cost.FROM_5_9, cost.FROM_6_10,
        cost.FROM_6_10]


def test_simulation_reexports_the_same_registry() -> None:
    assert sim_eras.ERAS is ERAS and sim_eras.EraModel is type(ERAS[DEFAULT_ERA])
    assert list(ERAS) == list(ERA_NAMES) == sim_eras.ORDER


def test_every_fact_has_a_source() -> None:
    fields = {f.name for f in dataclasses.fields(type(ERAS[DEFAULT_ERA]))} - {"name"}
    assert fields == set(FACT_SOURCES)
    assert all(FACT_SOURCES[f].strip() for f in fields)


def test_no_era_names_spelled_outside_the_registry() -> None:
    # Quoted era names (a literal list or a comparison) anywhere in app/ but the registry.
    pattern = re.compile(r"""["'](pre-5\.3|v4-5/7|objcg-kmem|lru-reparent|objcg)["']""")
    found = [f"{p.relative_to(APP)}:{i}" for p in APP.rglob("*.py")
             if p.name != "eras.py" or p.parent.name != "domain"
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
