"""Ingest under hostile pushes (issue 9 items 9-11): the token first, parsing off the event
loop, bounded nesting, no trailing gzip garbage, no future snapshots, bounded counters."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.api.routes import ingest
from app.api.routes.ingest import gzip_body
from app.db import fleetstate
from app.db import models as m
from tests.api.test_ingest import client_with_tokens, push, scrapes, snapshot


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    yield from client_with_tokens(db_url, [("vm-a", "token-a"), ("..", "token-dots")])


def counts(c: TestClient) -> dict[str, int]:
    with c.app.state.sessions() as s:  # type: ignore[attr-defined]
        return fleetstate.ingest_counts(s)


def test_an_unknown_token_is_refused_before_the_body_is_decompressed(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: Any) -> Any:
        raise AssertionError("a body was decompressed or parsed for an unknown token")
    monkeypatch.setattr(ingest, "_parse", never)
    monkeypatch.setattr(ingest, "_decompress", never)
    r = push(client, "nope", gzip_body("0123456789abcdef", snapshot("vm-a")))
    assert r.status_code == 403 and r.json()["detail"] == "unknown or revoked token"
    assert counts(client) == {"forbidden": 1}


def test_decompress_and_parse_run_off_the_event_loop(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = ingest._parse

    def spy(raw: bytes, encoding: str) -> Any:
        try:
            asyncio.get_running_loop()
            seen.append(True)  # on the loop
        except RuntimeError:
            seen.append(False)  # in a worker thread
        return real(raw, encoding)
    monkeypatch.setattr(ingest, "_parse", spy)
    r = push(client, "token-a", gzip_body("0123456789abcdef", snapshot("vm-a")))
    assert r.status_code == 200 and r.json()["status"] == "stored"
    assert seen == [False]


@pytest.mark.parametrize("gz", [True, False])
def test_deep_nesting_is_422_not_500(client: TestClient, gz: bool) -> None:
    raw = b"[" * 100_000
    r = client.post("/api/v1/ingest", content=gzip.compress(raw) if gz else raw, headers={
        "Authorization": "Bearer token-a", **({"Content-Encoding": "gzip"} if gz else {})})
    assert r.status_code == 422 and "nested too deeply" in r.json()["detail"]
    assert scrapes(client) == 0 and counts(client) == {"invalid": 1}


def test_gzip_with_trailing_garbage_is_refused(client: TestClient) -> None:
    body = gzip_body("0123456789abcdef", snapshot("vm-a"))
    r = push(client, "token-a", body + b"garbage")
    assert r.status_code == 422
    assert r.json()["detail"] == "body is not valid gzip: 7 bytes after the end of the stream"
    r = push(client, "token-a", body + gzip.compress(b"{}"))  # a second member: refused too
    assert r.status_code == 422 and scrapes(client) == 0
    assert push(client, "token-a", body).status_code == 200


def test_a_snapshot_from_the_future_is_refused(client: TestClient) -> None:
    snap = snapshot("vm-a")
    snap["taken_at"] = "2099-01-01T00:00:00+00:00"
    r = push(client, "token-a", gzip_body("future-0000000001", snap))
    assert r.status_code == 422 and "ahead of the server's clock" in r.json()["detail"]
    assert scrapes(client) == 0
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(m.Host.last_seen_at)) is None
    # Within the allowed skew (a collector clock a few minutes fast) is stored.
    soon = datetime.now(UTC) + timedelta(minutes=5)
    snap["taken_at"] = soon.isoformat()
    assert push(client, "token-a", gzip_body("future-0000000002", snap)).status_code == 200
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        last = s.scalar(select(m.Host.last_seen_at))
    assert last is not None and last.replace(tzinfo=UTC) == soon


@pytest.mark.parametrize(("header", "recorded"), [
    ("9" * 4000, None), (str(1 << 63), None), ("\u00b2", None), (str((1 << 63) - 1), (1 << 63) - 1),
    ("12", 12)])
def test_spool_dropped_header_is_bounded(client: TestClient, header: str,
                                         recorded: int | None) -> None:
    r = client.post("/api/v1/ingest", content=gzip_body("0123456789abcdef", snapshot("vm-a")),
                    headers={"Authorization": "Bearer token-a", "Content-Encoding": "gzip",
                             "X-Slabscope-Spool-Dropped": header.encode("latin-1")})
    assert r.status_code == 200 and r.json()["status"] == "stored"
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert fleetstate.spool_dropped(s) == ({} if recorded is None else {"vm-a": recorded})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    line = [x for x in metrics.text.splitlines()
            if x.startswith("slabscope_collector_spool_dropped_total{")]
    want = f'slabscope_collector_spool_dropped_total{{host="vm-a"}} {float(recorded or 0):.17g}'
    assert line == ([] if recorded is None else [want])


def test_a_body_field_past_a_counter_is_ignored(client: TestClient) -> None:
    body = gzip.compress(json.dumps({"snapshot_id": "0123456789abcdef",
                                     "snapshot": snapshot("vm-a"),
                                     "spool_dropped_total": 10 ** 40}).encode())
    assert push(client, "token-a", body).status_code == 200
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert fleetstate.spool_dropped(s) == {}
    assert client.get("/metrics").status_code == 200


def test_a_host_named_dot_dot_is_refused(client: TestClient) -> None:
    r = push(client, "token-dots", gzip_body("0123456789abcdef", snapshot("..")))
    assert r.status_code == 422 and "cannot be shown" in r.json()["detail"]
    assert scrapes(client) == 0
