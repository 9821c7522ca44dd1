"""A range longer than the raw retention shows all of it: 30 days of 5-minute scrapes (with
counted churn and a removal a minute), raw rows kept for 14, hourly rollups for the rest.
Charts and the model's history read the rollups for the older part, in uniform hourly
buckets that say so; the churn chart's buckets are uniform whatever the range."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, literal, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import models as m
from app.db import queries as q
from app.db import retention
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.main import create_app
from app.services import churnview
from app.services import hosts as views
from app.web import charts
from tests.longhistory import seed_long

END = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
DAYS = 30
RAW_DAYS = 14.0
TICK = 300.0  # 5-minute scrapes
CHURN = (3, 2, 1)  # made, removed, freed at every scrape


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    e = make_engine(db_url)
    yield e
    e.dispose()


def _seed(engine: Engine) -> tuple[int, int]:
    """The 30 days, retention run at their end; (host id, removals written)."""
    seeded = seed_long(engine, days=DAYS, end=END, interval_seconds=TICK,
                       removals_per_minute=1.0)
    s_ = m.Scrape
    with engine.begin() as c:  # counted churn at every scrape, as the collector stores it
        c.execute(insert(m.CgroupChurn).from_select(
            ["scrape_id", "hierarchy", "host_id", "taken_at", "since_at", "created_total",
             "removed_total", "freed_total", "exact"],
            select(s_.id, literal("unified"), s_.host_id, s_.taken_at, s_.taken_at,
                   literal(CHURN[0]), literal(CHURN[1]), literal(CHURN[2]), literal(True))
            .where(s_.host_id == seeded.host_id)))
    with make_session_factory(engine).begin() as s:
        retention.run(s, END, raw_days=RAW_DAYS)
    with make_session_factory(engine)() as s:  # the raw rows of the older 16 days are gone
        first_raw = s.scalar(select(func.min(s_.taken_at)).where(s_.host_id == seeded.host_id))
        # (whole hours on SQLite, whole days on PostgreSQL)
        assert first_raw is not None and first_raw >= END - timedelta(days=RAW_DAYS + 1)
    return seeded.host_id, seeded.removed


def _host(s: Session, hid: int) -> m.Host:
    return s.get_one(m.Host, hid)


def test_charts_of_thirty_days_read_the_rollups_for_the_older_part(db_url: str,
                                                                   engine: Engine) -> None:
    hid, _ = _seed(engine)
    since = END - timedelta(days=DAYS)
    with make_session_factory(engine)() as s:
        # Hourly buckets over all 30 days, not 1,296 s buckets over the last 14.
        dying = views.host_series(s, hid, ["memcg_dying"], since, END, None)["memcg_dying"]
        assert dying.step_seconds == 3600
        # Every hour from the first whole one (the hour straddling `since` is raw-dropped
        # and would bring samples from before the range) to the one `until` is in.
        assert dying.times[0] == since + timedelta(minutes=30)
        assert len(dying.times) == DAYS * 24
        assert {(b - a).total_seconds() for a, b in pairwise(dying.times)} == {3600.0}
        cache = views.cache_series(s, hid, "dentry", ["bytes"], since, END, None)
        assert cache is not None and cache["bytes"].step_seconds == 3600
        # Within the raw data a chart stays fine.
        day = views.host_series(s, hid, ["memcg_dying"], END - timedelta(days=1), END, None)
        assert day["memcg_dying"].step_seconds == q.choose_step(END - timedelta(days=1), END,
                                                                None) == 44
    # The page says the resolution, in the titles and its JSON twin.
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        r = c.get("/hosts/long-0", params={"range": "30d", "format": "json"})
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["step_seconds"] == 3600 and got["points"]["memcgs"] == DAYS * 24
        assert got["figures"]["memcgs"]["layout"]["title"]["text"] == \
            "Memory cgroups (means per hour)"
        assert got["churn_json"]["width_seconds"] == 3600
        assert got["figures"] is not None
        for rng, width, n in (("30d", 3600, DAYS * 24 + 1), ("24h", 44, 289 + 1441)):
            r = c.get("/api/v1/hosts/long-0/churn", params={"range": rng})
            assert r.status_code == 200, r.text
            churn = r.json()
            assert churn["width_seconds"] == width and len(churn["buckets"]) <= n
            at = [datetime.fromisoformat(b["at"]).timestamp() for b in churn["buckets"]]
            assert all((b - a) % width == 0 for a, b in pairwise(at))
            each = CHURN[0] if width == 44 else 12 * CHURN[0]  # one scrape, or 12 an hour
            assert {b["created"] for b in churn["buckets"][1:-1]} - {None} == {each}
        r = c.get("/hosts/long-0", params={"range": "24h"})
        assert "Memory cgroups (means per 44 s)" in r.text
        assert "Cgroups made and removed per 44 s, counted by the kernel" in r.text


def test_the_models_history_reads_the_rollups_for_the_older_part(engine: Engine) -> None:
    hid, removed = _seed(engine)
    since = END - timedelta(days=DAYS)
    with make_session_factory(engine)() as s:
        h = views.history(s, _host(s, hid), days=DAYS)
        assert h is not None
        # From the first whole hour, as the chart: 30 removals and 6 scrapes of the half
        # hour before it are left out.
        assert h.start == since + timedelta(minutes=30)
        assert len(h.times_seconds) == DAYS * 24
        assert sum(b.removed for b in h.removals) == removed - 30 == DAYS * 1440 - 29
        assert {b2.seconds - b1.seconds for b1, b2 in pairwise(h.removals)} == {3600.0}
        assert sum(b.created for b in h.churn) == CHURN[0] * (DAYS * 288 + 1 - 6)


def test_churn_buckets_are_uniform(engine: Engine) -> None:
    hid, _ = _seed(engine)
    since = END - timedelta(days=DAYS)
    with make_session_factory(engine)() as s:
        # Over the last day (rolled up, raw kept): 44 s buckets, each one scrape's counts,
        # not a rolled-up hour beside them.
        v = churnview.churn_view(s, _host(s, hid), END - timedelta(days=1), END)
        assert v.width_seconds == 44
        counted = [c for c in v.created if c is not None]  # None: removals seen, no scrape
        assert set(counted) == {CHURN[0]} and len(counted) == 289
        assert max(v.seen) <= 1 and sum(v.seen) == 1441
        assert charts.per(v.width_seconds) == "per 44 s"
        # Over 30 days: hourly, where the raw rows are gone, 12 scrapes and 60 removals an
        # hour in every bucket.
        v = churnview.churn_view(s, _host(s, hid), since, END)
        assert v.width_seconds == 3600
        assert set(v.created[1:-1]) == {12 * CHURN[0]} and set(v.seen[1:-1]) == {60}
        assert sum(c or 0 for c in v.created) == CHURN[0] * (DAYS * 288 + 1 - 6)


def test_chart_resolution_in_words() -> None:
    assert [charts.per(x) for x in (44, 300, 1500, 3600, 7200, 5400)] == [
        "per 44 s", "per 5 min", "per 25 min", "per hour", "per 2 h", "per 90 min"]
