"""Growth figures and alerts need evidence: none before an hour of history, and a robust
slope over the window the label names, which a burst does not move (issue 10)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


PRE_4_8 = "4.6.0"  # dying memcgs keep their memcg IDs (before 73f576c04b94)
LIVE = 60


def steady_at(minute: int) -> int:
    """300 dying memcgs, +2 a minute (2,880 a day), without the burst."""
    return 300 + 2 * minute


def _write(db_url: str, hosts: list[tuple[str, int, str, str, int]],
           dying: Callable[[int], int] = dying_at) -> None:
    """`minutes` + 1 scrapes a minute apart, ending now, of each (name, minutes, kernel
    release, era, live) host, with `dying(minute)` dying memcgs, through the collector's
    write path."""
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    end = NOW - timedelta(seconds=30)
    try:
        for name, minutes, release, era, live in hosts:
            for k in range(minutes + 1):
                at = end - timedelta(minutes=minutes - k)
                snap = snapshot(name, k, at, 0, 0)
                d = dying(k)
                host = replace(snap.host, kernel_release=release, era=era)
                with sessions.begin() as s:
                    store.write_snapshot(s, replace(
                        snap, host=host, memcg=MemcgCount(d + live, live, d, "test")))
    finally:
        engine.dispose()


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    # "young": the first 40 minutes of that history; "old": two hours of it. Both on a
    # kernel before 4.8, where the dying memcgs count against the memcg-ID limit.
    _write(db_url, [("young", 40, PRE_4_8, "pre-5.3", LIVE),
                    ("old", 120, PRE_4_8, "pre-5.3", LIVE)])
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
        (65_535 - (dying_at(120) + LIVE)) / old["dying_growth_per_day_24h"])
    assert old["dying_hold_ids"] is True and old["id_limit_note"] == ""
    alerts = client.get("/api/v1/alerts").json()["alerts"]
    assert [a["rule"] for a in alerts if a["host"] == "young"] == []
    assert [a["rule"] for a in alerts if a["host"] == "old"] == []  # 2,880 < 5,000 a day
    page = client.get("/hosts/young").text
    assert "collecting, 40 min so far" in page


def _alerts(client: TestClient) -> dict[str, dict[str, str]]:
    """Each host's memcg_id_limit alert (message by rule), from the API."""
    out: dict[str, dict[str, str]] = {}
    for a in client.get("/api/v1/alerts").json()["alerts"]:
        if a["rule"] == "memcg_id_limit":
            out.setdefault(a["host"], {})[a["rule"]] = a["message"]
    return out


def test_the_id_limit_counts_dying_memcgs_only_before_4_8(db_url: str) -> None:
    """The same two hours of steady dying growth (+2,880 a day) on five kernels. Before 4.8 and on
    a release that does not parse (the worst case) the dying memcgs near the 65535 memcg IDs
    in ~22 days; since 4.8 (73f576c04b94) they hold no ID: no days, a note saying why, and no
    memcg_id_limit alert from them; that alert fires on live memcgs near the limit."""
    crowded = 60_000  # live memcgs: over 90 % of the 65535 IDs
    _write(db_url, [("old", 120, PRE_4_8, "pre-5.3", LIVE),
                    ("rhel7", 120, "3.10.0-1160.el7.x86_64", "pre-5.3", LIVE),
                    ("odd", 120, "vendor-kernel", "objcg-kmem", LIVE),
                    ("new", 120, "6.18.44-fc-v657", "objcg-kmem", LIVE),
                    ("edge", 120, "4.8.0", "pre-5.3", LIVE),
                    ("crowded", 120, "6.18.44-fc-v657", "objcg-kmem", crowded)], steady_at)
    settings = Settings(database_url=db_url, alert_growth_per_day_max=5000,
                        alert_dying_max=100_000, alert_days_to_limit_min=30)
    with TestClient(create_app(settings)) as c:
        by = {h["name"]: h for h in c.get("/api/v1/hosts").json()["items"]}
        alerts = _alerts(c)
        new_page = c.get("/hosts/new").text
        old_page = c.get("/hosts/old").text
        odd_page = c.get("/hosts/odd").text
    assert by["old"]["dying_growth_per_day_24h"] == pytest.approx(2880, rel=0.05)
    days = (65_535 - (steady_at(120) + LIVE)) / by["old"]["dying_growth_per_day_24h"]
    assert 20 < days < 30
    for name in ("old", "rhel7", "odd"):
        h = by[name]
        assert h["dying_hold_ids"] is True, name
        assert h["days_to_memcg_id_limit"] == pytest.approx(days), name
        assert "in 2" in alerts[name]["memcg_id_limit"] and "ENOSPC" in alerts[name][
            "memcg_id_limit"], name
    assert by["old"]["id_limit_note"] == by["rhel7"]["id_limit_note"] == ""
    assert by["odd"]["id_limit_note"] == ("kernel release 'vendor-kernel' does not parse: "
                                          "counted as before 4.8, where dying memcgs keep "
                                          "their memcg IDs")
    for name in ("new", "edge"):
        h = by[name]
        assert h["dying_growth_per_day_24h"] == pytest.approx(2880, rel=0.05), name
        assert h["dying_hold_ids"] is False and h["days_to_memcg_id_limit"] is None, name
        assert h["id_limit_note"] == ("memcg IDs are recycled at offline since 4.8 "
                                      "(73f576c04b94): dying memcgs cost memory, not IDs; "
                                      "60 live of 65535"), name
        assert name not in alerts, name
    assert by["crowded"]["days_to_memcg_id_limit"] is None
    assert "60,000 live of 65535" in by["crowded"]["id_limit_note"]
    assert alerts["crowded"]["memcg_id_limit"] == (
        "crowded has 60,000 live memcgs of the 65535 memcg IDs (threshold 58,981; live "
        "growth is not tracked, so on the level alone): mkdir fails with ENOSPC at the limit")
    # The page: the note where the days were on 4.8+; the days (and any note) before.
    assert "data-id-limit-note>memcg IDs are recycled at offline since 4.8" in new_page
    assert "days to the 65535 memcg limit" not in new_page
    assert "days to the 65535 memcg limit</span><b>2" in old_page
    assert "data-id-limit-note" not in old_page
    assert "data-id-limit-note>kernel release &#39;vendor-kernel&#39; does not parse" in odd_page


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
