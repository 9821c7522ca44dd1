"""The read services' domain errors become HTTP statuses once, in app/main.py, with the
services' own messages, for the API and the pages alike."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from app.config import Settings
from app.db import models as m
from app.db import store
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.main import STATUS, create_app, status_of
from app.services import errors
from tests.seed import snapshot

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ONE = "one-scrape"  # one scrape: too little history to fit
NONE = "no-scrape"  # a host row whose scrapes are gone (retention): nothing to count


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path_factory.mktemp('errors') / 'e.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        store.write_snapshot(s, snapshot(ONE, 0, AT, 5, 1))
        store.write_snapshot(s, snapshot(NONE, 0, AT, 5, 1))
    with sessions.begin() as s:
        hid = s.scalar(select(m.Host.id).where(m.Host.name == NONE))
        s.execute(delete(m.Scrape).where(m.Scrape.host_id == hid))
    engine.dispose()
    with TestClient(create_app(Settings(database_url=url))) as c:
        yield c


def test_every_domain_error_has_one_status() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, errors.ServiceError) and c is not errors.ServiceError]
    assert {c.__name__ for c in classes} == {"NotFound", "Conflict", "TooLittleHistory",
                                             "NoScrape", "Invalid"}
    got = {c.__name__: status_of(c("x")) for c in classes}
    assert got == {"NotFound": 404, "Conflict": 409, "TooLittleHistory": 409, "NoScrape": 409,
                   "Invalid": 422}
    assert set(STATUS.values()) == {404, 409, 422}
    with pytest.raises(TypeError, match="ServiceError has no HTTP status"):
        status_of(errors.ServiceError("unmapped"))


@pytest.mark.parametrize(("path", "status", "detail"), [
    ("/api/v1/hosts/nope", 404, "no host named 'nope': is its collector running?"),
    ("/api/v1/hosts/nope/caches", 404, "no host named 'nope': is its collector running?"),
    ("/api/v1/hosts/nope/projection", 404,
     "no host named 'nope': is its collector running?"),
    ("/api/v1/hosts/nope/refcounts", 404,
     "no host named 'nope': is its collector running?"),
    (f"/api/v1/hosts/{ONE}/projection", 409,
     f"host {ONE!r} has too little history to fit (a few scrapes at least)"),
    (f"/api/v1/hosts/{NONE}/refcounts", 409, f"host {NONE!r} has no scrape yet"),
    (f"/hosts/{ONE}/projection?format=json", 409,
     f"host {ONE!r} has too little history to fit (a few scrapes at least)"),
    (f"/hosts/{NONE}/refcounts?format=json", 409, f"host {NONE!r} has no scrape yet"),
    ("/hosts/nope?format=json", 404, "no host named 'nope': is its collector running? "
                                     "(`slabscope doctor` on that host)"),
    ("/simulate?scenario=nope&format=json", 404, "no scenario named 'nope'; presets: "),
])
def test_domain_errors_as_json(client: TestClient, path: str, status: int,
                               detail: str) -> None:
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(detail)


def test_domain_errors_as_pages(client: TestClient) -> None:
    r = client.get(f"/hosts/{ONE}/projection")
    assert r.status_code == 409 and r.headers["content-type"].startswith("text/html")
    assert "too little history to fit" in r.text
    r = client.get("/hosts/nope/cgroups")
    assert r.status_code == 404 and "slabscope doctor" in r.text


def test_over_budget_is_invalid(tmp_path_factory: pytest.TempPathFactory) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('budget') / 'b.db'}"
    with TestClient(create_app(Settings(database_url=url, simulation_max_work=1.0))) as c:
        r = c.post("/api/v1/simulations", json={
            "classes": [{"name": "x", "per_day": 10, "lifetime_seconds": 60}],
            "days": 1, "step_seconds": 3600, "eras": ["objcg"]})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("the simulation's estimated work is ")
    assert "over the budget of 1 (SLABSCOPE_SIMULATION_MAX_WORK" in r.json()["detail"]
