"""The model's API on a seeded database: eras, scenarios, simulations and their limits,
the protocol view, a host's projection and refcounts."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.simulation.engine import simulate
from app.simulation.scenarios import PRESETS


@pytest.fixture(scope="module")
def client(seeded_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=seeded_url))) as c:
        yield c


def test_eras_and_scenarios(client: TestClient) -> None:
    eras = client.get("/api/v1/eras").json()["eras"]
    assert [e["name"] for e in eras] == ["pre-5.3", "v4-5/7", "5.3", "objcg", "objcg-kmem",
                                         "lru-reparent"]
    assert eras[0]["slab_pin"] == "page" and eras[2]["caches_reparented"] is True
    d = client.get("/api/v1/scenarios").json()
    assert {s["name"] for s in d["scenarios"]} == set(PRESETS)
    dead = {(o["era"], o["passes"]) for o in d["selftests"]
            if o["test"] == "test_kmem_dead_cgroups"}
    assert ("pre-5.3", False) in dead and ("5.3", True) in dead


def test_simulation_matches_the_engine(client: TestClient) -> None:
    body = next(s["workload"] for s in client.get("/api/v1/scenarios").json()["scenarios"]
                if s["name"] == "kubernetes-cronjobs")
    r = client.post("/api/v1/simulations", json={**body, "eras": ["pre-5.3", "objcg-kmem"],
                                                  "seed": 3})
    assert r.status_code == 200
    got = r.json()["eras"]
    want = simulate(PRESETS["kubernetes-cronjobs"], ["pre-5.3", "objcg-kmem"], seed=3).eras
    assert got["pre-5.3"]["dying"] == want["pre-5.3"].dying
    assert got["objcg-kmem"]["zombie_caches"][-1] == 0


def _body(**kw: object) -> dict[str, object]:
    b: dict[str, object] = {"classes": [{"name": "x", "per_day": 10, "lifetime_seconds": 60,
                                         "leftovers": [{"kind": "pagecache", "amount": 4}]}],
                            "days": 2, "step_seconds": 3600}
    b.update(kw)
    return b


@pytest.mark.parametrize(("body", "fragment"), [
    (_body(days=365, step_seconds=60), "the limit is 2000"),
    (_body(classes=[{"name": "x", "per_day": 1_000_000, "lifetime_seconds": 1}], days=30),
     "the limit is 5,000,000"),
    (_body(eras=["5.10"]), "eras"),
    (_body(classes=[]), "at least 1"),
    (_body(classes=[{"name": "x", "lifetime_seconds": 1, "leftovers": [
        {"kind": "slab", "amount": 3}]}]), "needs a cache"),
    (_body(surprise=1), "surprise"),
    (_body(classes=[{"name": "x", "lifetime_seconds": 1}] * 21), "at most 20"),
])
def test_bad_simulations_are_422_with_the_limit(client: TestClient, body: dict[str, object],
                                                fragment: str) -> None:
    r = client.post("/api/v1/simulations", json=body)
    assert r.status_code == 422
    assert fragment in r.json()["detail"]


def test_oversized_body_is_422_with_the_limit(client: TestClient) -> None:
    big = json.dumps(_body(name="x" * 300_000))
    r = client.post("/api/v1/simulations", content=big,
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "limit of 262144 bytes" in r.json()["detail"]


def test_protocol_api(client: TestClient) -> None:
    v4 = client.get("/api/v1/protocol?variant=v4").json()
    assert v4["final_state"] == "deactivating" and not v4["css_put"]
    assert any("grace period never ended" in v for v in v4["violations"])
    assert not v4["memcg_released"] and v4["summary"].startswith("The memcg is never released")
    assert any(s["call"] == "out_unlock: rcu_read_lock();" for s in v4["steps"])
    v5 = client.get("/api/v1/protocol?variant=v5").json()
    assert v5["violations"] == [] and v5["memcg_released"]
    assert client.get("/api/v1/protocol?variant=v6").status_code == 422


def test_projection_of_a_seeded_host(client: TestClient) -> None:
    d = client.get("/api/v1/hosts/host-0/projection?days=7").json()
    assert set(d["projection"]) == {"pre-5.3", "v4-5/7", "5.3", "objcg", "objcg-kmem",
                                     "lru-reparent"}
    assert d["observed"]["dying"][0] == 10 and d["observed"]["dying"][-1] == 39
    assert d["backtest"]["points"] >= 5 and d["backtest"]["mae"] >= 0
    assert any("removed per day" in w for w in d["fit"]["words"])
    # 29 minutes of scrapes: the fit says it is a sketch (a 4-minute history projected 30
    # days without a word, in a cold run)
    short = [f for f in d["fit"]["flags"] if f["code"] == "short_history"]
    assert [f["message"][:27] for f in short] == ["fitted on 29 min of history"]
    horizon = d["projection"]["objcg-kmem"]["seconds"][-1]
    assert horizon >= 7 * 86_400
    assert d["projection"]["lru-reparent"]["dying"][-1] <= d["projection"]["pre-5.3"][
        "dying"][-1]
    assert client.get("/api/v1/hosts/nope/projection").status_code == 404
    assert client.get("/api/v1/hosts/host-0/projection?days=0").status_code == 422


def test_refcounts_of_a_seeded_host(client: TestClient) -> None:
    pre = client.get("/api/v1/hosts/host-0/refcounts?era=pre-5.3").json()
    assert pre["exact"] is False and pre["method"].startswith("estimated")
    assert pre["chain"] == "page -> mem_cgroup -> kmem_cache"
    assert pre["links"] and sum(m["css_refs"] for m in pre["memcgs"]) > 0
    v4 = client.get("/api/v1/hosts/host-0/refcounts?era=v4-5/7").json()
    assert v4["chain"] == "page -> kmem_cache -> mem_cgroup"
    assert sum(c["percpu_refs"] for c in v4["caches"]) > 0
    objcg = client.get("/api/v1/hosts/host-0/refcounts?era=objcg-kmem").json()
    assert objcg["memcgs"] == [] and sum(c["objcg_refs"] for c in objcg["caches"]) > 0
    assert client.get("/api/v1/hosts/host-0/refcounts?era=4.4").status_code == 422
    # No era asked: the host's own (it opened in pre-5.3 on a 6.18 host), page and API.
    own = client.get("/api/v1/hosts/host-0/refcounts").json()
    assert own["era"] == "objcg-kmem" and own["chain"] == objcg["chain"]
    page = client.get("/hosts/host-0/refcounts?format=json").json()
    assert page["era"] == "objcg-kmem"
