"""A database that is down or not migrated gives a clear 503, for the API and the pages."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.config import Settings
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
