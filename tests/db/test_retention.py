"""Rollups and retention: long-range series read the same from rollups, runs are idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import models as m
from app.db import queries as q
from app.db import retention
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from tests.seed import seed


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def _count(s: Session, model: type[m.Base]) -> int:
    return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_series_survive_retention_through_rollups(sessions: sessionmaker[Session]) -> None:
    end = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=2)
    seed(sessions, hosts=1, scrapes=48, interval=timedelta(minutes=30), end=end,
         stale_host=False)
    since, until = end - timedelta(days=2), end + timedelta(minutes=1)
    with sessions() as s:
        hid = q.host_by_name(s, "host-0").id  # type: ignore[union-attr]
        cid = q.cache_id(s, hid, "dentry")
        assert cid is not None
        before = q.scrape_series(s, hid, ["memcg_dying", "percpu_bytes"], since, until, 3600)
        cbefore = q.cache_series(s, cid, ["objects"], since, until, 3600)
        raw = _count(s, m.SlabSample)
    now = end + timedelta(hours=2)
    with sessions.begin() as s:
        r = retention.run(s, now, raw_days=0.5)
    assert r.scrape_hours == 24 and r.cache_hours == 24 * 235
    assert r.raw_scrapes_deleted > 20
    with sessions() as s:
        after = q.scrape_series(s, hid, ["memcg_dying", "percpu_bytes"], since, until, 3600)
        cafter = q.cache_series(s, cid, ["objects"], since, until, 3600)
        assert _count(s, m.SlabSample) < raw / 2
        rolled = _count(s, m.ScrapeHourly), _count(s, m.SlabHourly)
    for k in ("memcg_dying", "percpu_bytes"):
        assert after[k].values == pytest.approx(before[k].values)
        assert after[k].times == before[k].times
    assert cafter["objects"].values == pytest.approx(cbefore["objects"].values)
    with sessions.begin() as s:  # a second run changes nothing
        again = retention.run(s, now, raw_days=0.5)
    assert again.raw_scrapes_deleted == 0
    with sessions() as s:
        assert (_count(s, m.ScrapeHourly), _count(s, m.SlabHourly)) == rolled
        again_series = q.scrape_series(s, hid, ["memcg_dying"], since, until, 3600)
    assert again_series["memcg_dying"].values == pytest.approx(before["memcg_dying"].values)
