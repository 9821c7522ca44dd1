"""Rollups and retention: the series read the same before and after raw data goes (whole
partitions on PostgreSQL, rows on SQLite), late data is rolled up, runs are idempotent and
safe to run concurrently."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import cacheseries as cs
from app.db import models as m
from app.db import partitions, retention
from app.db import queries as q
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from tests.db.history import cache_ids, seed_history, write_scrape

START = datetime(2026, 11, 20, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 0, 40, tzinfo=UTC)  # four whole days seeded before it
EVERY = timedelta(minutes=15)
SCRAPES = 4 * 96 + 2  # four days, then two scrapes of the incomplete hour
RAW_DAYS = 2.0  # cut at 2026-11-22 00:40: the 20th and the 21st expire
SCRAPE_METRICS = ["memcg_dying", "percpu_bytes", "sunreclaim_bytes"]
CACHE_METRICS = ["objects", "bytes", "active_objs"]


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def hosts(sessions: sessionmaker[Session]) -> dict[str, int]:
    return seed_history(sessions, hosts=2, start=START, scrapes=SCRAPES, interval=EVERY)


def _count(s: Session, model: type[m.Base], *where: Any) -> int:
    return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _series(s: Session, hosts: dict[str, int]) -> dict[str, Any]:
    """Every host's and cache's series over the whole range, by the hour."""
    out: dict[str, Any] = {}
    for name, hid in hosts.items():
        for k, v in q.scrape_series(s, hid, SCRAPE_METRICS, START, NOW, 3600).items():
            out[f"{name}/{k}"] = (v.times, v.values)
        for cache, cid in cache_ids(s, hid).items():
            for k, v in cs.cache_series(s, cid, CACHE_METRICS, START, NOW, 3600).items():
                out[f"{name}/{cache}/{k}"] = (v.times, v.values)
    return out


def _assert_same(after: dict[str, Any], before: dict[str, Any]) -> None:
    assert after.keys() == before.keys()
    for k in before:
        assert after[k][0] == before[k][0], k
        assert after[k][1] == pytest.approx(before[k][1], rel=1e-12), k


def _per_day(s: Session) -> dict[int, int]:
    """Slab frames per UTC day."""
    out: dict[int, int] = {}
    for at in s.scalars(select(m.SlabFrame.taken_at)):
        out[partitions.day_of(at)] = out.get(partitions.day_of(at), 0) + 1
    return out


def _partitions(s: Session) -> set[str]:
    """The partitions in the catalog (pg_inherits), tables only."""
    return set(s.scalars(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE c.relkind = 'r'")))


def test_retention_keeps_the_series_identical(sessions: sessionmaker[Session],
                                              hosts: dict[str, int]) -> None:
    with sessions() as s:
        before = _series(s, hosts)
        days_before = _per_day(s)
        pg = partitions.is_postgres(s)
        parts_before = _partitions(s) if pg else set()
    d20, d22 = partitions.day_of(START), partitions.day_of(START) + 2
    assert sorted(days_before) == list(range(d20, d20 + 5))  # the 24th: two scrapes
    with sessions.begin() as s:
        r = retention.run(s, NOW, raw_days=RAW_DAYS)
    assert r.scrape_hours == 2 * 96 and r.cache_hours == 2 * 96 * 5
    assert r.hours_from == START and r.hours_to == datetime(2026, 11, 24, tzinfo=UTC)
    assert r.raw_scrapes_deleted == 2 * 2 * 96
    with sessions() as s:
        _assert_same(_series(s, hosts), before)
        days_after = _per_day(s)
        assert days_after == {d: n for d, n in days_before.items() if d >= d22}
        assert _count(s, m.Scrape) == 2 * (SCRAPES - 2 * 96)
        assert _count(s, m.ScrapeHourly, m.ScrapeHourly.raw_dropped) == 2 * 48
        assert s.scalar(select(func.min(m.Scrape.taken_at))) == START + timedelta(days=2)
        if pg:
            gone = {partitions.partition_name(t.table, d)
                    for t in partitions.TABLES for d in (d20, d20 + 1)}
            assert set(r.partitions_dropped) == gone
            assert _partitions(s) == parts_before - gone
            assert {partitions.partition_name("slab_frame", d) for d in range(d22, d22 + 6)
                    } <= _partitions(s)
        else:
            assert r.partitions_dropped == ()
    with sessions.begin() as s:  # a second run finds nothing to do
        again = retention.run(s, NOW, raw_days=RAW_DAYS)
    assert (again.scrape_hours, again.cache_hours, again.raw_scrapes_deleted,
            again.partitions_dropped) == (0, 0, 0, ())
    with sessions() as s:
        _assert_same(_series(s, hosts), before)


def _hour_avg(s: Session, host_id: int, hour: datetime) -> float:
    return float(s.scalar(select(func.avg(m.Scrape.memcg_dying_total)).where(
        m.Scrape.host_id == host_id, m.Scrape.taken_at >= hour,
        m.Scrape.taken_at < hour + timedelta(hours=1))) or 0)


def _dying_at(s: Session, host_id: int, hour: datetime) -> float | None:
    series = q.scrape_series(s, host_id, ["memcg_dying"], START, NOW, 3600)["memcg_dying"]
    return series.values[series.times.index(hour)]


def test_late_data_is_rolled_up_however_late(sessions: sessionmaker[Session],
                                             hosts: dict[str, int]) -> None:
    hid = hosts["host-0"]
    with sessions.begin() as s:
        retention.run(s, NOW, raw_days=RAW_DAYS)
    kept = datetime(2026, 11, 22, 10, tzinfo=UTC)  # rolled up, raw kept
    with sessions.begin() as s:
        write_scrape(s, hid, cache_ids(s, hid), kept + timedelta(minutes=7), 1000)
    with sessions() as s:
        truth = _hour_avg(s, hid, kept)  # (4 scrapes + the late one) / 5
        assert _dying_at(s, hid, kept) != pytest.approx(truth)  # the rollup is stale
    with sessions.begin() as s:
        r = retention.run(s, NOW, raw_days=RAW_DAYS)
    assert (r.scrape_hours, r.cache_hours) == (1, 5)
    with sessions() as s:
        assert _dying_at(s, hid, kept) == pytest.approx(truth)
    # After its raw rows were dropped, an hour's rollup is final: a late row adds to it.
    dropped = datetime(2026, 11, 20, 5, tzinfo=UTC)
    with sessions() as s:
        old = _dying_at(s, hid, dropped)
        assert old is not None
    with sessions.begin() as s:
        write_scrape(s, hid, cache_ids(s, hid), dropped + timedelta(minutes=20), 2000)
    with sessions.begin() as s:
        r = retention.run(s, NOW, raw_days=RAW_DAYS)
    assert r.raw_scrapes_deleted == 0 and (r.scrape_hours, r.cache_hours) == (1, 5)
    with sessions() as s:
        late = 10 + 2000 + hid
        assert _dying_at(s, hid, dropped) == pytest.approx((old * 4 + late) / 5)
        row = s.scalars(select(m.ScrapeHourly).where(m.ScrapeHourly.host_id == hid,
                                                     m.ScrapeHourly.hour_at == dropped)).one()
        assert (row.scrapes_total, row.raw_dropped) == (5, True)
        assert _count(s, m.Scrape, m.Scrape.taken_at < START + timedelta(days=2)) == 0
    with sessions.begin() as s:  # and only once
        assert retention.run(s, NOW, raw_days=RAW_DAYS).scrape_hours == 0


def test_concurrent_runs_give_one_result(sessions: sessionmaker[Session],
                                         hosts: dict[str, int]) -> None:
    with sessions() as s:
        before = _series(s, hosts)
    gate = threading.Barrier(2, timeout=30)
    reports: list[retention.RetentionReport] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            gate.wait()
            with sessions.begin() as s:
                reports.append(retention.run(s, NOW, raw_days=RAW_DAYS))
        except BaseException as err:  # reported below, not lost in the thread
            errors.append(err)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a retention run did not finish within 60 s"
    assert errors == []
    assert sorted(r.raw_scrapes_deleted for r in reports) == [0, 2 * 2 * 96]
    assert sorted(r.scrape_hours for r in reports) == [0, 2 * 96]
    with sessions() as s:
        _assert_same(_series(s, hosts), before)
        assert _count(s, m.ScrapeHourly) == 2 * 96
        assert _count(s, m.SlabHourly) == 2 * 96 * 5


def test_cli_runs_retention(db_url: str, sessions: sessionmaker[Session]) -> None:
    from typer.testing import CliRunner

    from app.cli import cli
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    seed_history(sessions, hosts=1, start=start - timedelta(days=40), scrapes=12,
                 interval=timedelta(hours=6))  # all past a 14-day retention
    out = CliRunner().invoke(cli, ["retention", "--raw-days", "14", "--database", db_url])
    assert out.exit_code == 0, out.output
    assert "rolled up 12 host-hours and 60 cache-hours" in out.output
    assert "deleted 12 raw scrapes" in out.output
    with sessions() as s:
        assert _count(s, m.Scrape) == 0
        assert _count(s, m.ScrapeHourly, m.ScrapeHourly.raw_dropped) == 12
        if partitions.is_postgres(s):
            # the writer made 4 days x 7 tables; the migration made today and 3 ahead
            assert f"dropped {4 * len(partitions.TABLES)} partitions, created 0" in out.output
