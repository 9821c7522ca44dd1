"""Growth figures and alerts need evidence: none before an hour of history, and a robust
slope over the window the label names, which a burst does not move (issue 10)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import store
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.domain.samples import MemcgCount
from app.main import create_app
from tests.seed import snapshot

NOW = datetime.now(UTC).replace(microsecond=0)


def dying_at(minute: int) -> int:
    """300 dying memcgs, +2 a minute (2,880 a day), and a burst of 2,000 at minutes 20-29."""
    return 300 + 2 * minute + (2000 if 20 <= minute < 30 else 0)


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    # "young": the first 40 minutes of that history; "old": two hours of it.
    for name, minutes in (("young", 40), ("old", 120)):
        end = NOW - timedelta(seconds=30)
        for k in range(minutes + 1):
            at = end - timedelta(minutes=minutes - k)
            snap = snapshot(name, k, at, 0, 0)
            d = dying_at(k)
            with sessions.begin() as s:
                store.write_snapshot(s, replace(snap, memcg=MemcgCount(d + 60, 60, d, "test")))
    engine.dispose()
    with TestClient(create_app(Settings(database_url=db_url, alert_growth_per_day_max=5000,
                                        alert_dying_max=100_000,
                                        alert_days_to_limit_min=1))) as c:
        yield c


def test_no_growth_before_an_hour_and_a_burst_does_not_move_it(client: TestClient) -> None:
    by = {h["name"]: h for h in client.get("/api/v1/hosts").json()["items"]}
    young, old = by["young"], by["old"]
    # 40 minutes, a burst of 2,000 among them: no figure, no days-to-limit, no alert.
    assert young["dying_growth_per_day_24h"] is None and young["days_to_memcg_id_limit"] is None
    assert young["growth_note"] == "collecting, 40 min so far (growth from 60 min)"
    # Two hours: the slope is the steady +2 a minute; a two-point estimate from the burst's
    # edge would have said anything from -96,000 to +96,000 a day.
    assert old["dying_growth_per_day_24h"] == pytest.approx(2880, rel=0.05)
    assert old["growth_note"] == "over the 2 h there is, not 24 h"
    assert old["dying_growth_per_day_7d"] is None  # a week is not two hours
    assert old["days_to_memcg_id_limit"] == pytest.approx(
        (65_535 - (dying_at(120) + 60)) / old["dying_growth_per_day_24h"])
    alerts = client.get("/api/v1/alerts").json()["alerts"]
    assert [a["rule"] for a in alerts if a["host"] == "young"] == []
    assert [a["rule"] for a in alerts if a["host"] == "old"] == []  # 2,880 < 5,000 a day
    page = client.get("/hosts/young").text
    assert "collecting, 40 min so far" in page


def test_cache_growth_per_day_only_over_a_day(db_url: str) -> None:
    """Minutes of cache growth are shown over the range; a day or more is averaged per day,
    never extrapolated (3 minutes once read as "68 GiB/day")."""
    from app.db import queries as q
    from app.services import hosts as views
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    try:
        end = NOW - timedelta(seconds=30)
        for k, at in ((0, end - timedelta(hours=25)), (1, end - timedelta(minutes=3)),
                      (2, end)):
            with sessions.begin() as s:
                store.write_snapshot(s, snapshot("caches", k, at, 0, 0))
        with sessions() as s:
            host = q.host_by_name(s, "caches")
            assert host is not None
            short, _ = views.caches(s, host.id, None, timedelta(minutes=3))
            long, _ = views.caches(s, host.id, None, timedelta(hours=25))
        d_short = next(c for c in short if c.name == "dentry")
        d_long = next(c for c in long if c.name == "dentry")
        pages = d_short.pages_per_slab * 4096  # one slab a scrape (tests/seed.py)
        assert d_short.growth_bytes == pages and d_short.growth_bytes_per_day is None
        assert d_long.growth_bytes == 2 * pages
        assert d_long.growth_bytes_per_day == pytest.approx(2 * pages / (25 / 24))
    finally:
        engine.dispose()
