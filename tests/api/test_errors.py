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
