"""Responses go gzip-compressed to a client that accepts it (issue 11: plotly.min.js was
4.8 MB uncompressed on every cold page)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


def test_pages_json_and_plotly_are_compressed(seeded_url: str) -> None:
    with TestClient(create_app(Settings(database_url=seeded_url))) as c:
        for path, kind in (("/static/vendor/plotly.min.js", "javascript"),
                           ("/hosts/host-0", "text/html"), ("/api/v1/hosts", "json")):
            r = c.get(path, headers={"Accept-Encoding": "gzip"})
            assert r.status_code == 200 and kind in r.headers["content-type"], path
            assert r.headers["content-encoding"] == "gzip", path
            raw = r.num_bytes_downloaded  # on the wire
            assert raw < len(r.content) / 2, (path, raw, len(r.content))
        js = c.get("/static/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
        assert js.num_bytes_downloaded < 1_600_000 < 4_000_000 < len(js.content)
        # Without Accept-Encoding, the bytes as they are.
        plain = c.get("/static/vendor/plotly.min.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == js.content
