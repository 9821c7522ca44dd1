"""bench/pages.py: the hand-written floor SQL returns exactly what the pages show."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.session import make_engine
from app.main import create_app
from bench import pages

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def seeded(request: pytest.FixtureRequest, tmp_path: Path
           ) -> tuple[str, datetime]:
    """Two hosts with 26 hours of 10-minute scrapes: enough for the 24 h sparklines."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pages.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    end = datetime(2026, 11, 30, 12, 0, 7, tzinfo=UTC)
    pages.seed(url, 2, 26 / 24, end, step_seconds=600)
    return url, end


def test_every_floor_equals_its_page(seeded: tuple[str, datetime]) -> None:
    url, end = seeded
    engine = make_engine(url)
    with TestClient(create_app(Settings(database_url=url))) as client, engine.connect() as c:
        got = pages.cases(client, c, end)  # raises SystemExit on any difference
        assert [name for name, _, _ in got] == ["fleet page /", "host page, 3 days",
                                                "cache page, 3 days", "series API, 3 days"]
        host = dict((n, f) for n, _, f in got)["host page, 3 days"]()
        # 26 h of 10-minute scrapes in 130 s buckets: one bucket per scrape.
        assert len(host["memcg_dying"]) == 156
        spark = dict((n, f) for n, _, f in got)["fleet page /"]()
        assert sorted(spark) == [1, 2] and all(45 <= len(v) <= 50 for v in spark.values())
    engine.dispose()


def test_a_floor_that_differs_from_the_page_stops_the_bench() -> None:
    with pytest.raises(SystemExit, match="floor and page differ for x"):
        pages.same([(0.0, 1.0), (60.0, 2.0)], [(0.0, 1.0), (60.0, 2.5)], "x")
    with pytest.raises(SystemExit, match="1 vs 2 points"):
        pages.same([(0.0, 1.0)], [(0.0, 1.0), (60.0, 2.0)], "x")
    pages.same([(0.0, 1.0)], [(0.0, 1.0 + 1e-12)], "x")  # float noise is not a difference


def test_time_binds_match_each_dialect() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert pages.when(at, "sqlite") == "2026-01-02 03:04:05.000006"
    assert pages.when(at, "postgresql") is at
