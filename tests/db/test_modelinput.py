"""The model's input from a long history is bounded by buckets, and its totals are exact."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from app.db import models as m
from app.db import queries as q
from app.db import retention
from app.db.migrate import upgrade
from app.db.modelinput import bucket_width, removed_slab_mean
from app.db.session import make_engine, make_session_factory
from app.domain.history import HostHistory
from app.services import hosts as views
from tests.longhistory import Seeded, removal, seed_long

END = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    e = make_engine(db_url)
    yield e
    e.dispose()


def _history(s: Session, name: str) -> HostHistory:
    host = q.host_by_name(s, name)
    assert host is not None
    h = views.history(s, host, days=30)
    assert h is not None
    return h


def _check_totals(h: HostHistory, seeded: Seeded) -> None:
    assert sum(b.removed for b in h.removals) == seeded.removed
    assert sum(b.with_shmem for b in h.removals) == seeded.with_shmem
    assert sum(b.file_bytes for b in h.removals) == seeded.file_bytes
    assert sum(b.slab_bytes for b in h.removals) == seeded.slab_bytes
    assert sum(b.slab_known for b in h.removals) == seeded.removed  # cgroup2 reports slab


def test_ten_days_of_history_come_back_in_bounded_buckets(engine: Engine) -> None:
    seeded = seed_long(engine, days=10, end=END, removals_per_minute=10)
    assert seeded.scrapes == 57_601 and seeded.removed == 144_001
    sessions = make_session_factory(engine)
    with sessions() as s:
        # The totals the test expects are the rows' own, read back plainly.
        rc = m.RemovedCgroup
        assert s.execute(select(func.count(rc.id), func.sum(rc.file_bytes))).one() == (
            seeded.removed, seeded.file_bytes)
        h = _history(s, seeded.name)
    width = bucket_width(seeded.start, seeded.end)
    assert width == 433  # 10 days in 1,999 buckets: finer than an hour, so all raw
    assert len(h.times_seconds) <= q.MAX_POINTS and len(h.removals) <= q.MAX_POINTS
    touched = int(seeded.end.timestamp() // width) - int(seeded.start.timestamp() // width) + 1
    assert len(h.times_seconds) == touched == 1997  # every bucket the 10 days touch
    _check_totals(h, seeded)
    assert h.times_seconds == sorted(h.times_seconds) and h.times_seconds[0] == 0.0
    # Live is 10,000 + k % 7 at scrape k: a whole bucket (28+ scrapes) holds its most.
    assert set(h.live[1:-1]) == {10_006.0}
    shm_first = next(b for b in h.removals if b.with_shmem)
    assert shm_first.seconds == 0.0  # the first removal already left shmem


def test_rolled_up_hours_are_read_from_rollups(engine: Engine) -> None:
    seeded = seed_long(engine, days=10, end=END, removals_per_minute=10)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        retention.rollup(s, END)
        assert s.scalar(select(func.count()).select_from(m.RemovedHourly)) == 240
        assert s.scalar(select(func.sum(m.RemovedHourly.removed_total))) == \
            seeded.removed - 301  # the last half hour (12:00-12:30) is not complete yet
    with sessions.begin() as s:
        before = _history(s, seeded.name)
        # Take the raw rows of the rolled-up hours away: the input must not change, so it
        # came from the rollups (one row an hour), not from them.
        first = seeded.start.replace(minute=0) + timedelta(hours=1)
        last = END.replace(minute=0)
        for model, col in ((m.RemovedCgroup, m.RemovedCgroup.removed_at),
                           (m.Scrape, m.Scrape.taken_at)):
            s.execute(delete(model).where(col >= first, col < last))
        after = _history(s, seeded.name)
        s.rollback()
    _check_totals(after, seeded)
    assert after.times_seconds == before.times_seconds and after.dying == before.dying
    assert [b.removed for b in after.removals] == [b.removed for b in before.removals]


def test_a_long_history_projects_in_bounded_steps(engine: Engine) -> None:
    from app.simulation.calibrate import MAX_STEPS, project
    seeded = seed_long(engine, days=10, end=END, removals_per_minute=10)
    with make_session_factory(engine)() as s:
        h = _history(s, seeded.name)
    p30, p90 = project(h, 30), project(h, 90)
    for p in (p30, p90):
        assert all(len(e.dying) <= MAX_STEPS + 1 for e in p.result.eras.values())
    assert p30.fit.removed_per_day == pytest.approx(14_400, rel=0.001)
    assert p30.fit.shares["pagecache"] == pytest.approx(1 / 50 - 1 / 2000, rel=0.01)


def test_the_mean_slab_of_recent_removals_reads_a_day_at_most(engine: Engine) -> None:
    seeded = seed_long(engine, days=3, end=END, removals_per_minute=10)
    with make_session_factory(engine).begin() as s:
        retention.rollup(s, END)
        got = removed_slab_mean(s, seeded.host_id, END)
        # Removal i is at start + 6 s * i: the last day, ends included, holds i >= 2 d / 6 s.
        day = [removal(i)[2] for i in range(2 * 86_400 // 6, seeded.removed)]
        assert got == sum(day) // len(day) and len(day) == 14_401
        s.execute(update(m.RemovedCgroup).values(slab_bytes=None))  # a v1 host: not reported
        s.execute(delete(m.RemovedHourly))
        assert removed_slab_mean(s, seeded.host_id, END) is None
        s.rollback()
