"""Static files are fingerprinted and cached immutably; page scripts are deferred."""

from __future__ import annotations

import hashlib
import re
from importlib.metadata import version
from pathlib import Path

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

STATIC = Path(__file__).resolve().parent.parent.parent / "static"


def test_assets_are_fingerprinted_deferred_and_immutable(seeded_url: str) -> None:
    with TestClient(create_app(Settings(database_url=seeded_url))) as c:
        html = c.get("/hosts/host-0").text
        scripts = re.findall(r"<script ([^>]*)src=\"([^\"]+)\"", html)
        assert [src for _, src in scripts] == [
            f"/static/vendor/plotly.min.js?v={version('plotly')}",
            "/static/js/app.js?v=" + hashlib.sha256(
                (STATIC / "js/app.js").read_bytes()).hexdigest()[:12]]
        assert all(attrs.strip() == "defer" for attrs, _ in scripts)
        css = re.search(r'<link rel="stylesheet" href="([^"]+)"', html)
        assert css is not None and css.group(1).startswith("/static/css/app.css?v=")
        for _, src in scripts:
            r = c.get(src)
            assert r.status_code == 200
            assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        plain = c.get("/static/js/app.js")
        assert plain.headers["cache-control"] == "public, max-age=300"
        assert c.get("/static/js/nope.js?v=1").status_code == 404
