"""Auto-refresh: off by default, the interval in the URL, a "last updated" stamp."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.web.templating import refresh_seconds, with_refresh


def test_refresh_is_off_by_default_and_kept_in_the_url(seeded_url: str) -> None:
    with TestClient(create_app(Settings(database_url=seeded_url))) as c:
        off = c.get("/hosts/host-0?range=1h").text
        assert 'http-equiv="refresh"' not in off and "updated <time datetime=" in off
        assert '<a href="/hosts/host-0?range=1h&amp;refresh=30">30 s</a>' in off
        on = c.get("/hosts/host-0?range=1h&refresh=60").text
        assert '<meta http-equiv="refresh" content="60">' in on
        assert '<a href="/hosts/host-0?range=1h&amp;refresh=60" class="on">1 min</a>' in on
        assert '<a href="/hosts/host-0?range=1h">off</a>' in on
        for bad in ("0", "4", "3601", "x", "-5", "1e3"):
            assert 'http-equiv="refresh"' not in c.get(f"/?refresh={bad}").text, bad


def test_refresh_bounds() -> None:
    assert refresh_seconds({"refresh": "5"}) == 5 and refresh_seconds({}) is None
    assert refresh_seconds({"refresh": "3600"}) == 3600
    assert refresh_seconds({"refresh": "3601"}) is None
    assert with_refresh({"range": "7d", "refresh": "30"}, "/", None) == "/?range=7d"
