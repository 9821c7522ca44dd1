"""Push ingest: tokens, idempotency, limits, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.api.routes.ingest import gzip_body
from app.collector.scrape import Collector, CollectorOptions
from app.config import Settings
from app.db import fleetstate
from app.db import models as m
from app.db.migrate import upgrade
from app.domain.snapshot_json import snapshot_to_dict
from app.fleet.tokens import token_hash
from app.main import create_app
from tests.conftest import ERAS


def snapshot(host: str) -> dict[str, Any]:
    root = ERAS / "v2-6.12-subsys"
    s = Collector(CollectorOptions(proc_root=str(root / "proc"),
                                   sys_root=str(root / "sys"))).collect()
    return snapshot_to_dict(replace(s, host=replace(s.host, hostname=host)))


def client_with_tokens(db_url: str, tokens: list[tuple[str, str]]) -> Iterator[TestClient]:
    """A migrated database and an app whose hosts have these (host, token) pairs."""
    upgrade(db_url)
    app = create_app(Settings(database_url=db_url))
    with TestClient(app) as c:
        with app.state.sessions.begin() as s:
            now = datetime.now(UTC)
            for host, token in tokens:
                fleetstate.add_token(s, host, token_hash(token), now)
        yield c


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    yield from client_with_tokens(db_url, [("vm-a", "token-a"), ("vm-b", "token-b"),
                                           ("vm-b", "old-b")])


def push(c: TestClient, token: str, body: bytes) -> Any:
    return c.post("/api/v1/ingest", content=body, headers={
        "Authorization": f"Bearer {token}", "Content-Encoding": "gzip",
        "Content-Type": "application/json"})


def scrapes(c: TestClient) -> int:
    with c.app.state.sessions() as s:  # type: ignore[attr-defined]
        return int(s.scalar(select(func.count(m.Scrape.id))) or 0)


def test_push_is_stored_once(client: TestClient) -> None:
    body = gzip_body("0123456789abcdef", snapshot("vm-a"))
    r = push(client, "token-a", body)
    assert r.status_code == 200 and r.json()["status"] == "stored"
    again = push(client, "token-a", body)  # a retry of the same snapshot
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert scrapes(client) == 1
    hosts = client.get("/api/v1/hosts").json()["items"]
    assert [h["name"] for h in hosts] == ["vm-a"] and hosts[0]["memcg_dying"] == 118


def test_wrong_revoked_or_foreign_token_writes_nothing(client: TestClient) -> None:
    body = gzip_body("aaaaaaaaaaaaaaaa", snapshot("vm-a"))
    assert push(client, "nope", body).status_code == 403
    r = push(client, "token-b", body)  # a valid token, another host
    assert r.status_code == 403 and "writes only host 'vm-b'" in r.json()["detail"]
    with client.app.state.sessions.begin() as s:  # type: ignore[attr-defined]
        assert fleetstate.revoke_tokens(s, "vm-b", datetime.now(UTC)) == 2
    assert push(client, "token-b", gzip_body("bbbbbbbbbbbbbbbb", snapshot("vm-b"))
                ).status_code == 403
    r = client.post("/api/v1/ingest", content=body, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 401
    assert scrapes(client) == 0
    counts = {line.split('"')[1]: float(line.split()[-1]) for line in
              client.get("/metrics").text.splitlines()
              if line.startswith("slabscope_ingest_requests_total{")}
    assert counts == {"forbidden": 3, "unauthorized": 1}


@pytest.mark.parametrize(("body", "status", "fragment"), [
    (gzip.compress(b"{not json"), 422, "not JSON"),
    (b"\x1f\x8b\x08\x00garbage", 422, "not valid gzip"),
    (gzip.compress(json.dumps({"snapshot_id": "x", "snapshot": {}}).encode()), 422,
     "snapshot_id: String should have at least 8 characters"),
    (gzip.compress(json.dumps({"snapshot_id": "0123456789", "snapshot": {"schema": "x"}})
                   .encode()), 422, "slabscope.snapshot/2"),
    (gzip.compress(b" " * (33 * 1024 * 1024)), 413, "once decompressed"),
])
def test_bad_payloads(client: TestClient, body: bytes, status: int, fragment: str) -> None:
    r = push(client, "token-a", body)
    assert r.status_code == status and fragment in r.json()["detail"]
    assert scrapes(client) == 0


def test_oversized_body_is_413(client: TestClient) -> None:
    r = push(client, "token-a", b"x" * (4 * 1024 * 1024 + 1))
    assert r.status_code == 413 and "over the limit of 4194304 bytes" in r.json()["detail"]


@pytest.mark.parametrize("where", ["dying", "num_cgroups"])
def test_values_a_column_cannot_hold_are_422_and_store_nothing(client: TestClient,
                                                                 where: str) -> None:
    snap = snapshot("vm-a")
    # No u64 (every u64 is stored: tests/db/test_hostile_values.py).
    if where == "dying":
        snap["memcg"]["dying"] = 1 << 64
    else:
        for r in snap["proc_cgroups"]:
            r["num_cgroups"] = 1 << 64
    r = push(client, "token-a", gzip_body("out-of-range-0001", snap))
    where = "memcg.dying" if where == "dying" else "proc_cgroups.0.num_cgroups"
    assert r.status_code == 422
    assert f"snapshot.{where}: Input should be less than or equal to {(1 << 64) - 1}" in \
        r.json()["detail"]
    assert scrapes(client) == 0
    # The same host's next, valid snapshot is stored as usual.
    assert push(client, "token-a", gzip_body("in-range-00000001", snapshot("vm-a"))
                ).json()["status"] == "stored"
