"""A database that is down or not migrated gives a clear 503, for the API and the pages."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError

from app.config import Settings
from app.db.migrate import upgrade
from app.main import create_app


def test_database_down_is_503_not_500() -> None:
    app = create_app(Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    with TestClient(app) as c:
        r = c.get("/api/v1/hosts")
        assert r.status_code == 503
        assert "database is unavailable" in r.json()["detail"]
        page = c.get("/")
        assert page.status_code == 503 and "text/html" in page.headers["content-type"]
        assert "slabscope migrate" in page.text
        assert c.get("/healthz").status_code == 503


def test_unmigrated_database_is_503(sqlite_url: str) -> None:
    with TestClient(create_app(Settings(database_url=sqlite_url))) as c:
        r = c.get("/api/v1/hosts/x/caches")
        assert r.status_code == 503 and "not migrated" in r.json()["detail"]


def test_a_nul_in_a_path_or_query_is_404_or_422_not_503(seeded_url: str) -> None:
    # PostgreSQL text cannot hold NUL: looked up, it was a DataError (503) on every host route.
    with TestClient(create_app(Settings(database_url=seeded_url))) as c:
        for path in ("/hosts/a%00b", "/api/v1/hosts/a%00b", "/api/v1/hosts/host-0/caches/a%00b",
                     "/hosts/host-0/caches/dentry%00", "/api/v1/hosts/a%00b/projection"):
            r = c.get(path)
            assert r.status_code == 404, (path, r.status_code, r.text)
            assert "NUL" in (r.json()["detail"] if "api" in path else r.text)
        r = c.get("/api/v1/hosts/host-0/removed", params={"since": "2026-11-01\x00"})
        assert r.status_code == 422 and "NUL" in r.json()["detail"]
        assert c.get("/api/v1/hosts/host-0").status_code == 200  # the rest as before


@pytest.mark.parametrize("exc", [
    OperationalError("INSERT ...", {}, Exception("database is locked")),
    SATimeoutError("QueuePool limit of size 5 overflow 10 reached, connection timed out")])
def test_a_busy_database_is_a_503_to_retry_not_down(sqlite_url: str, exc: Exception) -> None:
    upgrade(sqlite_url)
    app = create_app(Settings(database_url=sqlite_url))

    @app.get("/api/v1/busy")
    def busy() -> None:
        raise exc

    with TestClient(app) as c:
        r = c.get("/api/v1/busy")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json()["detail"].startswith("the database is busy")
        assert "not migrated" not in r.json()["detail"]
