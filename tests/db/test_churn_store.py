"""Counted churn per scrape: stored, rolled up by the hour, and read into HostHistory.churn
the same before and after retention drops the raw rows (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import models as m
from app.db import retention, store
from app.db.migrate import upgrade
from app.db.modelinput import bucket_width, host_history
from app.db.session import make_engine, make_session_factory
from app.domain.history import ChurnBucket
from app.domain.samples import HierarchyChurn, MemcgCount
from tests.conftest import HOST
from tests.snapshots import host_snapshot

START = datetime(2026, 11, 20, tzinfo=UTC)
EVERY = timedelta(minutes=30)
SCRAPES = 3 * 48  # three days
NOW = START + timedelta(days=3, minutes=10)
RAW_DAYS = 1.5  # the first day's raw rows go (a whole partition on PostgreSQL)


def churn_of(k: int) -> tuple[HierarchyChurn, ...]:
    """Scrape k's churn: cgroup2 (the host's memcgs) varies; v1 rows must not be read."""
    since = START + (k - 1) * EVERY
    return (HierarchyChurn("unified", since, k % 5 + 1, k % 3, None if k % 11 == 0 else k % 2,
                           k % 7 != 0),
            HierarchyChurn("memory", since, 1000, 1000, 0, True))


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    base = host_snapshot(HOST, START)
    assert base.host.cgroup_layout == "v2"
    sessions = make_session_factory(engine)
    for k in range(SCRAPES):
        snap = replace(base, taken_at=START + k * EVERY, churn=churn_of(k) if k else (),
                       memcg=MemcgCount(100 + k, 100, k, "test"))
        with sessions.begin() as s:
            store.write_snapshot(s, snap)
    yield sessions
    engine.dispose()


def _history(s: Session) -> list[ChurnBucket]:
    host = s.scalars(select(m.Host)).one()
    h = host_history(s, host, START, START + (SCRAPES - 1) * EVERY)
    assert h is not None
    return h.churn


def test_churn_is_stored_per_scrape_and_hierarchy(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        rows = s.execute(select(m.CgroupChurn.hierarchy, func.count(),
                                func.sum(m.CgroupChurn.created_total))
                         .group_by(m.CgroupChurn.hierarchy)).all()
        assert sorted(rows) == [("memory", SCRAPES - 1, 1000 * (SCRAPES - 1)),
                                ("unified", SCRAPES - 1,
                                 sum(k % 5 + 1 for k in range(1, SCRAPES)))]
        one = s.execute(select(m.CgroupChurn).where(m.CgroupChurn.hierarchy == "unified")
                        .order_by(m.CgroupChurn.taken_at).limit(1)).scalar_one()
        assert (one.since_at, one.taken_at, one.created_total, one.removed_total,
                one.freed_total, one.exact) == (START, START + EVERY, 2, 1, 1, True)


def _expect(width: int) -> dict[int, tuple[int, int, int | None, bool]]:
    """The buckets the model must get, summed here from churn_of (each interval in the
    bucket of the scrape that ends it)."""
    acc: dict[int, list[int]] = {}
    for k in range(1, SCRAPES):
        c = churn_of(k)[0]
        b = int((START + k * EVERY).timestamp()) // width
        a = acc.setdefault(b, [0, 0, 0, 0, 0, 0])
        a[0] += 1
        a[1] += c.created
        a[2] += c.removed
        a[3] += c.freed or 0
        a[4] += c.freed is not None
        a[5] += not c.exact
    return {b: (a[1], a[2], a[3] if a[4] == a[0] else None, a[5] == 0)
            for b, a in acc.items()}


def test_history_churn_is_the_same_before_and_after_retention(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        before = _history(s)
    assert {b.created for b in before} and sum(b.created for b in before) == sum(
        k % 5 + 1 for k in range(1, SCRAPES))  # the cgroup2 rows only: no v1 1000s
    got = {round(b.seconds) for b in before}
    assert len(got) == len(before)
    with sessions.begin() as s:
        report = retention.run(s, NOW, RAW_DAYS)
        assert report.raw_scrapes_deleted > 0
    with sessions() as s:
        assert s.scalar(select(func.min(m.CgroupChurn.taken_at))) >= START + timedelta(days=1)
        hourly = s.execute(select(func.sum(m.ChurnHourly.intervals_total),
                                  func.sum(m.ChurnHourly.created_total))
                           .where(m.ChurnHourly.hierarchy == "unified")).one()
        # every hour before NOW is complete and rolled up, the first day's raw rows gone
        assert hourly == (SCRAPES - 1, sum(k % 5 + 1 for k in range(1, SCRAPES)))
        after = _history(s)
    # Rolled-up hours sit in the bucket of their start (modelinput's docstring): the
    # totals are the same, and every hour's inexact interval still marks a bucket.
    for f in ("created", "removed"):
        assert sum(getattr(b, f) for b in after) == sum(getattr(b, f) for b in before)
    assert sum(not b.exact for b in after) == sum(not b.exact for b in before)
    assert sum(b.freed is None for b in after) >= sum(b.freed is None for b in before)


def test_buckets_say_freed_only_where_every_interval_knew_it(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        host = s.scalars(select(m.Host)).one()
        h = host_history(s, host, START, START + (SCRAPES - 1) * EVERY)
    assert h is not None
    width = bucket_width(START, START + (SCRAPES - 1) * EVERY)
    want = _expect(width)
    t0 = h.start.timestamp()
    got = {round(b.seconds + t0) // width: (b.created, b.removed, b.freed, b.exact)
           for b in h.churn}
    assert got == want
    assert any(v[2] is None for v in want.values()) and any(not v[3] for v in want.values())
