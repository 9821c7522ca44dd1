"""Pushes with counted churn: stored per hierarchy; older pushes without it still ingest;
bad churn values are a 422 that stores nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.api.routes.ingest import gzip_body
from app.db import models as m
from tests.api.test_ingest import client_with_tokens, push, scrapes, snapshot


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    yield from client_with_tokens(db_url, [("vm-c", "token-c")])


def with_churn(churn: list[dict[str, Any]]) -> dict[str, Any]:
    """A real collector's snapshot with this churn; `since` 15 s before it unless given."""
    snap = snapshot("vm-c")
    since = datetime.fromisoformat(snap["taken_at"]) - timedelta(seconds=15)
    snap["churn"] = [{"since": since.isoformat(), **c} for c in churn]
    return snap


def one(hierarchy: str = "unified", **kw: Any) -> dict[str, Any]:
    return {"hierarchy": hierarchy, "created": 51, "removed": 50, "freed": 7, "exact": True,
            **kw}


def test_churn_is_stored(client: TestClient) -> None:
    snap = with_churn([one(), one("memory", freed=None, exact=False, created=3, removed=0)])
    r = push(client, "token-c", gzip_body("churn-000000001", snap))
    assert r.status_code == 200, r.text
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        rows = s.execute(select(m.CgroupChurn.hierarchy, m.CgroupChurn.created_total,
                                m.CgroupChurn.removed_total, m.CgroupChurn.freed_total,
                                m.CgroupChurn.exact, m.CgroupChurn.since_at,
                                m.CgroupChurn.taken_at)
                         .order_by(m.CgroupChurn.hierarchy)).all()
    taken = datetime.fromisoformat(snap["taken_at"])
    assert [r[:5] for r in rows] == [("memory", 3, 0, None, False),
                                     ("unified", 51, 50, 7, True)]
    assert {r[6] for r in rows} == {taken} and {r[5] for r in rows} == {
        taken - timedelta(seconds=15)}


def test_a_push_without_churn_still_ingests(client: TestClient) -> None:
    snap = snapshot("vm-c")
    del snap["churn"]  # what collectors before counted churn send
    r = push(client, "token-c", gzip_body("churn-000000002", snap))
    assert r.status_code == 200 and r.json()["status"] == "stored"
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(m.CgroupChurn)) == 0


@pytest.mark.parametrize(("churn", "says"), [
    ([one(created=-1)], "churn.0.created"),
    ([one(removed=1 << 31)], "churn.0.removed"),
    ([one(freed=1 << 64)], "churn.0.freed"),
    ([one(created="5")], "churn.0.created"),
    ([one(exact=1)], "churn.0.exact"),
    ([one(hierarchy="cpu")], "churn.0.hierarchy"),
    ([one(), one()], "one entry per hierarchy"),
    ([one(), one("memory"), one("unified")], "churn"),
    ([one(since="2099-01-01T00:00:00+00:00")], "is after taken_at"),
    ([one(since="2026-11-30T00:00:00")], "churn.0.since"),  # no UTC offset
])
def test_bad_churn_is_422_and_stores_nothing(client: TestClient, churn: list[Any],
                                             says: str) -> None:
    r = push(client, "token-c", gzip_body("churn-000000003", with_churn(churn)))
    assert r.status_code == 422, r.text
    assert says in r.json()["detail"]
    assert scrapes(client) == 0
