"""Times a database cannot store, and churn no kernel makes, are a 422 that stores nothing
(SQLite and PostgreSQL), and a query time past what is stored is a 422, not a 500.

PostgreSQL's timestamptz ends at year 10000 and Python's datetime at year 1; an offset moves
a valid-looking value past either. Stored once, such a value made every later read of the
host a 503 and stopped rollups for every host (attacker run, issue 10)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.routes.ingest import gzip_body
from tests.api.test_ingest import client_with_tokens, push, scrapes, snapshot

YEAR_0 = "0001-01-01T00:00:00+14:00"  # year 0 once in UTC
YEAR_10000 = "9999-12-31T23:00:00-14:00"  # year 10000 once in UTC
BEFORE_EPOCH = "1969-12-31T23:59:59+00:00"


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    yield from client_with_tokens(db_url, [("vm-t", "token-t")])


def _snap() -> dict[str, Any]:
    snap = snapshot("vm-t")
    taken = datetime.fromisoformat(snap["taken_at"])
    snap["removed"] = [{"hierarchy": "unified", "path": "/job-1",
                        "last_seen_at": (taken - timedelta(seconds=30)).isoformat(),
                        "removed_by": taken.isoformat(), "last_memory_stat": {"file": 4096},
                        "last_memory_usage_bytes": 4096,
                        "stat_read_at": (taken - timedelta(seconds=30)).isoformat()}]
    snap["churn"] = [{"hierarchy": "unified", "since": (taken - timedelta(seconds=15))
                      .isoformat(), "created": 1, "removed": 1, "freed": None,
                      "exact": True}]
    return snap


def _set(snap: dict[str, Any], where: str, value: Any) -> None:
    parts = where.split(".")
    node: Any = snap
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node[p]
    node[parts[-1]] = value


def test_the_good_snapshot_is_stored(client: TestClient) -> None:
    r = push(client, "token-t", gzip_body("times-0000000001", _snap()))
    assert r.status_code == 200 and r.json()["status"] == "stored", r.text
    assert scrapes(client) == 1


@pytest.mark.parametrize("value", [YEAR_0, YEAR_10000, BEFORE_EPOCH])
@pytest.mark.parametrize("where", ["taken_at", "removed.0.removed_by",
                                   "removed.0.last_seen_at", "removed.0.stat_read_at",
                                   "churn.0.since"])
def test_a_time_no_database_stores_is_422(client: TestClient, where: str,
                                          value: str) -> None:
    snap = _snap()
    _set(snap, where, value)
    r = push(client, "token-t", gzip_body("times-0000000002", snap))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert where in detail and "outside 1970-01-01 .. 9000-01-01 in UTC" in detail, detail
    assert scrapes(client) == 0


@pytest.mark.parametrize(("field", "n"), [("created", 1_500_001), ("removed", 2**31 - 1),
                                          ("freed", 2**31 - 1)])
def test_churn_no_kernel_makes_is_422(client: TestClient, field: str, n: int) -> None:
    snap = _snap()
    snap["churn"][0][field] = n  # in 15 s: over 100,000 a second
    r = push(client, "token-t", gzip_body("times-0000000003", snap))
    assert r.status_code == 422, r.text
    assert f"{field} {n:,} in 15 s is over 100,000 a second" in r.json()["detail"]
    assert scrapes(client) == 0
    snap["churn"][0][field] = 1_500_000  # exactly the bound: stored
    ok = push(client, "token-t", gzip_body("times-0000000004", snap))
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59", "9000-01-01T00:00:00Z",
                                   "1969-12-31T00:00:00Z"])
def test_a_query_time_past_what_is_stored_is_422(client: TestClient, since: str) -> None:
    assert push(client, "token-t", gzip_body("times-0000000005", _snap())).status_code == 200
    for path in ("/api/v1/hosts/vm-t/removed", "/api/v1/hosts/vm-t/churn",
                 "/api/v1/hosts/vm-t/series", "/hosts/vm-t"):
        r = client.get(path, params={"since": since})
        assert r.status_code == 422, (path, r.status_code, r.text[:200])
        assert "out of range" in r.text


@pytest.mark.parametrize(("where", "shift", "says"), [
    ("removed.0.removed_by", timedelta(days=1), "removed.0.removed_by"),
    ("removed.0.last_seen_at", timedelta(seconds=31), "removed.0.last_seen_at"),
    ("removed.0.stat_read_at", timedelta(seconds=31), "removed.0.stat_read_at"),
])
def test_a_removal_out_of_order_with_its_snapshot_is_422(client: TestClient, where: str,
                                                        shift: timedelta, says: str) -> None:
    # removed_by is the scrape that first missed the cgroup; the listing and the read that
    # saw it come before. 8999-12-31 as removed_by sorted first for ever and never aged out.
    snap = _snap()
    taken = datetime.fromisoformat(snap["taken_at"])
    base = taken if where == "removed.0.removed_by" else taken - timedelta(seconds=30)
    # last_seen_at and stat_read_at 1 s after removed_by (= taken_at here)
    _set(snap, "removed.0.removed_by", taken.isoformat())
    _set(snap, where, (base + shift).isoformat())
    r = push(client, "token-t", gzip_body("times-0000000006", snap))
    assert r.status_code == 422, r.text
    assert says in r.json()["detail"] and " is after " in r.json()["detail"]
    assert scrapes(client) == 0
