"""Rows that arrive days late (a collector emptying its spool after an outage) reach the
hourly rollups, whatever the rollup's watermark: removals, scrapes and counted churn, in
hours whose raw rows are kept (recomputed) and in hours retention already dropped (added to
the final rollup once)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import counts, retention
from app.db import models as m
from app.db import queries as q
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from tests.db.history import host_row, write_scrape

NOW = datetime(2026, 11, 24, 0, 40, tzinfo=UTC)
RAW_DAYS = 7.0  # records before 2026-11-17 00:00 go
DROPPED_HOUR = datetime(2026, 11, 15, 5, tzinfo=UTC)  # past the retention
KEPT_HOUR = datetime(2026, 11, 20, 0, tzinfo=UTC)  # four days back: past any 48 h look-back


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def host(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as s:
        return int(s.execute(insert(m.Host).values(**host_row("late", NOW - timedelta(days=20)))
                             .returning(m.Host.id)).scalar_one())


def _removals(s: Session, host: int, at: datetime, n: int, tag: str) -> None:
    """n removal records at `at`, each leaving 4 KiB of page cache."""
    s.execute(insert(m.RemovedCgroup), [
        {"host_id": host, "hierarchy": "memory", "path": f"/late/{tag}-{i}",
         "last_seen_at": at - timedelta(seconds=15), "removed_at": at,
         "last_memory_usage_bytes": 4096, "file_bytes": 4096, "last_memory_stat": b""}
        for i in range(n)])


def _hourly(s: Session, host: int) -> dict[datetime, tuple[int, float, bool]]:
    rh = m.RemovedHourly
    return {r.hour_at: (r.removed_total, r.file_bytes_sum, r.raw_dropped)
            for r in s.scalars(select(rh).where(rh.host_id == host))}


def _run(sessions: sessionmaker[Session]) -> retention.RetentionReport:
    with sessions.begin() as s:
        return retention.run(s, NOW, raw_days=RAW_DAYS)


def test_late_removals_reach_the_rollup(sessions: sessionmaker[Session], host: int) -> None:
    with sessions.begin() as s:
        _removals(s, host, DROPPED_HOUR + timedelta(minutes=10), 10, "old")
        _removals(s, host, NOW - timedelta(hours=2), 20, "recent")
    assert _run(sessions).removed_deleted == 10
    with sessions() as s:
        assert _hourly(s, host)[DROPPED_HOUR] == (10, 10 * 4096.0, True)
        assert counts.removed_totals(s, [host]) == {host: 30}
    # The spool empties: 30 removals four days old, 5 more in the hour already dropped.
    with sessions.begin() as s:
        _removals(s, host, KEPT_HOUR + timedelta(minutes=40), 30, "spooled")
        _removals(s, host, DROPPED_HOUR + timedelta(minutes=30), 5, "spooled-old")
    _run(sessions)
    with sessions() as s:
        hourly = _hourly(s, host)
        assert hourly[KEPT_HOUR] == (30, 30 * 4096.0, False)
        assert hourly[DROPPED_HOUR] == (15, 15 * 4096.0, True)
        assert sum(v[0] for v in hourly.values()) == 65
        assert counts.removed_totals(s, [host]) == {host: 65}
        assert counts.removed_count(s, host, None, None) == 65
        assert counts.removed_count(s, host, KEPT_HOUR, KEPT_HOUR + timedelta(hours=1)) == 30
        # Records kept: the recent and the four-day-old ones; the late ones of the dropped
        # hour were added to its rollup and deleted.
        kept = s.scalar(select(func.count()).select_from(m.RemovedCgroup)
                        .where(m.RemovedCgroup.host_id == host))
        assert kept == 50
        _, total = q.removed(s, host, None, None, 1, 0)
        assert total == 50  # what the list pages through: the records kept
    # And only once.
    with sessions.begin() as s:
        assert retention.rollup_removed(s, NOW) == 0
    with sessions() as s:
        assert counts.removed_totals(s, [host]) == {host: 65}


def test_late_scrapes_and_churn_reach_the_rollups(sessions: sessionmaker[Session],
                                                  host: int) -> None:
    with sessions.begin() as s:
        for k in range(4):  # the hour four days back, and the last hour
            write_scrape(s, host, {}, KEPT_HOUR + timedelta(minutes=5 + 15 * k), k)
            write_scrape(s, host, {}, NOW - timedelta(minutes=80 - 15 * k), k)
    _run(sessions)
    with sessions.begin() as s:  # a late scrape, four days old, with its counted churn
        sid = write_scrape(s, host, {}, KEPT_HOUR + timedelta(minutes=59), 40)
        s.execute(insert(m.CgroupChurn).values(
            scrape_id=sid, hierarchy="unified", host_id=host,
            taken_at=KEPT_HOUR + timedelta(minutes=59),
            since_at=KEPT_HOUR + timedelta(minutes=50), created_total=7, removed_total=5,
            freed_total=3, exact=True))
    assert _run(sessions).scrape_hours == 1
    with sessions() as s:
        sh = s.scalars(select(m.ScrapeHourly).where(m.ScrapeHourly.host_id == host,
                                                    m.ScrapeHourly.hour_at == KEPT_HOUR)).one()
        assert sh.scrapes_total == 5
        kh = s.scalars(select(m.ChurnHourly).where(m.ChurnHourly.host_id == host)).one()
        got: dict[str, Any] = {"hour": kh.hour_at, "created": kh.created_total,
                               "removed": kh.removed_total, "freed": kh.freed_total}
        assert got == {"hour": KEPT_HOUR, "created": 7, "removed": 5, "freed": 3}
