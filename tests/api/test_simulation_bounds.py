"""POST /api/v1/simulations is bounded: a work budget checked before anything runs, and each
run in a child process with memory, CPU and wall-clock limits, a few at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.schemas.simulation import SimulationIn
from app.services.model import result_json, to_workload
from app.simulation import engine, sandbox

ERAS = ["pre-5.3", "v4-5/7", "5.3", "objcg", "objcg-kmem", "lru-reparent"]


def big(cgroups: int, leftovers: int = 8, events: int = 4, steps: int = 2000,
        eras: int = 6, seed: int = 0) -> dict[str, Any]:
    """A Poisson class of `cgroups` over 30 days with every kind of leftover."""
    kinds = ["slab", "pagecache", "shmem", "kstack"]
    lefts = [{"kind": kinds[i % 4], "amount": 10 + i,
              **({"cache": {"name": "dentry"}} if kinds[i % 4] == "slab" else {})}
             for i in range(leftovers)]
    days = 30
    return {"name": "big", "days": days, "step_seconds": days * 86_400 / (steps - 1),
            "eras": ERAS[:eras], "seed": seed,
            "classes": [{"name": "jobs", "per_day": cgroups / days, "lifetime_seconds": 600,
                         "leftovers": lefts}],
            "events": [{"at_seconds": days * 86_400 * (j + 1) / (events + 1),
                        "kind": ["drop_caches", "delete_files"][j % 2], "mode": 3}
                       for j in range(events)]}


def cost(body: dict[str, Any]) -> float:
    s = SimulationIn.model_validate(body)
    return engine.work(to_workload(s), len(s.eras)).total


def app_client(sqlite_url: str, **kw: Any) -> TestClient:
    return TestClient(create_app(Settings(database_url=sqlite_url, **kw)))


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    with app_client(sqlite_url) as c:
        yield c


class Spy:
    """Counts calls of sandbox.run (and of the engine in this process) and passes them on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs = 0
        real = sandbox.run

        def run(*a: Any, **kw: Any) -> engine.SimulationResult:
            self.runs += 1
            return real(*a, **kw)
        monkeypatch.setattr(sandbox, "run", run)


def test_over_the_budget_is_a_422_before_anything_runs(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    called: list[object] = []
    monkeypatch.setattr(engine, "simulate", lambda *a, **kw: called.append(a))
    # The request: 20 classes x 300 leftovers x 50 events over 2000 steps.
    body = big(100, leftovers=300, events=50)
    body["classes"] = [dict(body["classes"][0], name=f"c{i}") for i in range(20)]
    budget = Settings().simulation_max_work
    assert cost(body) > 100 * budget
    r = client.post("/api/v1/simulations", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert f"over the budget of {budget:.3g}" in detail
    assert f"estimated work is {cost(body):.3g} units" in detail
    assert "steps_squared" in detail and "raise step_seconds" in detail
    assert "2,000 cgroups, 2000 steps, 6000 leftovers, 6 eras" in detail
    assert spy.runs == 0 and called == []
    # Too many cgroups: the cgroups term names the fields that create them.
    r = client.post("/api/v1/simulations", json=big(4_000_000, leftovers=1, events=0))
    assert r.status_code == 422 and "classes[].count, per_day or period_seconds" in r.text
    assert spy.runs == 0


def test_an_accepted_body_gives_what_the_engine_gives(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    body = big(20_000, seed=5)
    r = client.post("/api/v1/simulations", json=body)
    assert r.status_code == 200, r.text
    s = SimulationIn.model_validate(body)
    want = result_json(engine.simulate(to_workload(s), list(s.eras), seed=5))
    assert r.json() == want
    assert spy.runs == 1
    assert want["eras"]["pre-5.3"]["created_total"] > 19_000


def test_the_largest_accepted_body_runs(client: TestClient) -> None:
    body = big(290_000)
    assert 0.8 * Settings().simulation_max_work < cost(body) <= Settings().simulation_max_work
    r = client.post("/api/v1/simulations", json=body)
    assert r.status_code == 200, r.text
    assert set(r.json()["eras"]) == set(ERAS)


def _run_beside_healthz(c: TestClient, body: dict[str, Any]) -> Any:
    """POST body in a thread; while its child runs and after, /healthz answers."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(c.post("/api/v1/simulations", json=body)))
    t.start()
    deadline = time.monotonic() + 60
    while not getattr(c.app.state, "simulation_gate", None) or \
            c.app.state.simulation_gate.running == 0:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline and t.is_alive(), "the simulation never started"
        time.sleep(0.005)
    during = c.get("/healthz")
    assert during.status_code == 200 and during.json()["status"] == "ok"
    t.join()
    assert c.get("/healthz").status_code == 200
    return out[0]


@pytest.mark.parametrize(("limits", "status", "fragment"), [
    ({"simulation_memory_bytes": 20 << 20}, 422,
     "more than its memory limit of 20,971,520 bytes (SLABSCOPE_SIMULATION_MEMORY_BYTES)"),
    ({"simulation_cpu_seconds": 1}, 422,
     "more than its CPU limit of 1 s (SLABSCOPE_SIMULATION_CPU_SECONDS)"),
    ({"simulation_timeout_seconds": 1}, 503,
     "did not finish within 1 s (SLABSCOPE_SIMULATION_TIMEOUT_SECONDS)"),
])
def test_a_run_over_a_limit_is_stopped_and_the_server_answers(
        sqlite_url: str, limits: dict[str, Any], status: int, fragment: str) -> None:
    # A run of hundreds of MB, or (for the CPU limit) of many seconds of CPU in little memory:
    # leftovers x events x steps^2 (the budget raised to let either in).
    body = big(1_000_000, leftovers=4, events=2)
    if "simulation_cpu_seconds" in limits:
        body = big(100, leftovers=300, events=50)
    with app_client(sqlite_url, simulation_max_work=1e12, **limits) as c:
        r = _run_beside_healthz(c, body)
        assert r.status_code == status, r.text
        assert fragment in r.json()["detail"]
        if status == 503:
            assert r.headers["retry-after"] == "5"
            return
        # The slot is given back: a small run goes through.
        small = big(100, leftovers=1, events=0, steps=50, eras=1)
        assert c.post("/api/v1/simulations", json=small).status_code == 200


def test_over_the_concurrency_cap_is_a_503_with_retry_after(sqlite_url: str) -> None:
    body = big(600_000, leftovers=4, events=2)
    with app_client(sqlite_url, simulation_max_work=1e12, simulation_concurrency=1) as c:
        start = threading.Barrier(3)
        got: list[Any] = []

        def post() -> None:
            start.wait()
            got.append(c.post("/api/v1/simulations", json=body))
        threads = [threading.Thread(target=post) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in got)
        assert codes[0] == 200 and 503 in codes, codes
        busy = next(r for r in got if r.status_code == 503)
        assert busy.headers["retry-after"] == "5"
        assert "1 simulation(s) already running" in busy.json()["detail"]
        assert c.post("/api/v1/simulations", json=big(1000)).status_code == 200


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmRSS:"))


def test_server_memory_does_not_grow_with_large_runs(client: TestClient) -> None:
    body = big(150_000)
    assert client.post("/api/v1/simulations", json=body).status_code == 200  # warm up
    before = _rss()
    for seed in range(5):
        assert client.post("/api/v1/simulations",
                           json={**body, "seed": seed}).status_code == 200
    assert _rss() - before < 50 << 20


def test_the_openapi_documents_the_bounds(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/api/v1/simulations"]["post"]
    assert "Retry-After" in op["responses"]["503"]["headers"]
    assert "SLABSCOPE_SIMULATION_MAX_WORK" in op["responses"]["422"]["description"]


@pytest.mark.parametrize("shape", [
    {"period_seconds": 3600.0}, {"period_seconds": 600.0, "count": 50},
    {"count": 777}, {"per_day": 0.0, "count": 0}])
def test_the_estimate_counts_the_cgroups_the_engine_creates(shape: dict[str, Any]) -> None:
    body = big(1000, leftovers=3, events=2, steps=100, eras=2)
    body["classes"][0] = {**body["classes"][0], "per_day": 0, **shape,
                          "start_seconds": 86_400.5}
    s = SimulationIn.model_validate(body)
    w = to_workload(s)
    created = engine.simulate(w, list(s.eras)).eras["pre-5.3"].created_total
    est = engine.work(w, 2)
    assert est.cgroups == created and est.steps == 100 and est.leftovers == 3
    # Every term grows with what it counts: doubling the steps grows the convolution term 4x.
    w2 = to_workload(SimulationIn.model_validate({**body, "step_seconds":
                                                  body["step_seconds"] * 99 / 199}))
    assert engine.work(w2, 2).steps == 200
    assert engine.work(w2, 2).terms["steps_squared"] == pytest.approx(
        4 * est.terms["steps_squared"], rel=1e-9)
