"""The server's own rollups and retention (app/db/maintenance.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import counts as q
from app.db import models as m
from app.db import queries
from app.db.maintenance import Maintenance
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.domain.cgtable import pack_stat
from app.main import create_app
from tests.db.history import cache_ids, seed_history, write_scrape

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_pass_rolls_up_and_applies_the_retention(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    old = NOW - timedelta(days=20)  # one hour of scrapes 20 days ago, one 3 hours ago
    hid = seed_history(sessions, hosts=1, start=old, scrapes=6,
                       interval=timedelta(minutes=10))["host-0"]
    with sessions.begin() as s:
        for k in range(6):
            write_scrape(s, hid, cache_ids(s, hid), NOW - timedelta(hours=3, minutes=-10 * k),
                         k)
    job = Maintenance(sessions, 600, raw_days=14)
    report = job.run_once(NOW)
    assert report is not None and job.runs == 1
    with sessions() as s:
        hours = s.scalar(select(func.count()).select_from(m.ScrapeHourly))
        raw = s.scalar(select(func.count()).select_from(m.Scrape))
    assert hours == 2  # both hours rolled up
    assert raw == 6  # the 20-day-old hour's raw rows are gone, its rollup stays
    assert job.run_once(NOW) is not None  # a second pass changes nothing
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.ScrapeHourly)) == 2
    engine.dispose()


def test_a_database_that_is_down_is_counted_not_raised(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    job = Maintenance(make_session_factory(engine), 600, raw_days=14)
    assert job.run_once(NOW) is None
    assert job.failures == 1 and job.runs == 0


def test_the_server_runs_it_on_its_interval(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    seed_history(make_session_factory(engine), hosts=1,
                 start=datetime.now(UTC) - timedelta(hours=5), scrapes=6,
                 interval=timedelta(minutes=10))
    engine.dispose()
    app_settings = Settings(database_url=sqlite_url, maintenance_interval_seconds=0.2)
    with TestClient(create_app(app_settings)) as client:
        job = client.app.state.maintenance  # type: ignore[attr-defined]
        end = time.monotonic() + 30
        while job.runs == 0 and time.monotonic() < end:
            time.sleep(0.05)
        assert job.runs >= 1
    assert job.stop_event.is_set()


def test_totals_read_the_rollups_and_agree_with_the_raw_rows(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    start = NOW - timedelta(hours=5)
    hid = seed_history(sessions, hosts=1, start=start, scrapes=30,
                       interval=timedelta(minutes=10))["host-0"]
    with sessions.begin() as s:
        s.execute(insert(m.RemovedCgroup), [
            {"host_id": hid, "hierarchy": "memory", "path": f"/job-{i}",
             "last_seen_at": start + timedelta(minutes=7 * i),
             "removed_at": start + timedelta(minutes=7 * i + 1),
             "last_memory_stat": pack_stat({"cache": 4096 * i})} for i in range(40)])
    with sessions() as s:
        before = (q.scrape_total(s, hid), q.removed_totals(s, [hid]))
    assert before == (30, {hid: 40})
    assert Maintenance(sessions, 600, raw_days=14).run_once(NOW) is not None
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.RemovedHourly)) > 0
        assert (q.scrape_total(s, hid), q.removed_totals(s, [hid])) == before
    engine.dispose()


def test_removed_counts_in_a_range_equal_the_raw_count_after_a_rollup(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    start = NOW - timedelta(hours=6)
    hid = seed_history(sessions, hosts=1, start=start, scrapes=2,
                       interval=timedelta(minutes=10))["host-0"]
    with sessions.begin() as s:
        s.execute(insert(m.RemovedCgroup), [
            {"host_id": hid, "hierarchy": "memory", "path": f"/job-{i}",
             "last_seen_at": start + timedelta(minutes=3 * i),
             "removed_at": start + timedelta(minutes=3 * i, seconds=30),
             "last_memory_stat": pack_stat({"cache": 4096})} for i in range(110)])
    ranges = [(None, None), (start + timedelta(minutes=37), start + timedelta(hours=4, minutes=2)),
              (start + timedelta(hours=1), start + timedelta(hours=2)),
              (start + timedelta(minutes=5), start + timedelta(minutes=20)), (start, None)]

    def raw(s: Session, lo: datetime | None, hi: datetime | None) -> int:
        cond = [m.RemovedCgroup.host_id == hid]
        if lo is not None:
            cond.append(m.RemovedCgroup.removed_at >= lo)
        if hi is not None:
            cond.append(m.RemovedCgroup.removed_at <= hi)
        return int(s.scalar(select(func.count()).select_from(m.RemovedCgroup)
                            .where(*cond)) or 0)

    with sessions() as s:
        want = [raw(s, lo, hi) for lo, hi in ranges]
        assert [q.removed_count(s, hid, lo, hi) for lo, hi in ranges] == want
    assert want[0] == 110 and want[2] == 20
    Maintenance(sessions, 600, raw_days=14).run_once(NOW)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.RemovedHourly)) == 6
        assert [q.removed_count(s, hid, lo, hi) for lo, hi in ranges] == want
    engine.dispose()


def test_old_removals_and_their_cgroups_go_with_the_retention(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    old, new = NOW - timedelta(days=20), NOW - timedelta(hours=3)
    hid = seed_history(sessions, hosts=1, start=old, scrapes=2,
                       interval=timedelta(minutes=10))["host-0"]
    with sessions.begin() as s:
        for when, tag in ((old, "old"), (new, "new")):
            for i in range(3):
                cid = s.scalar(insert(m.Cgroup).values(
                    host_id=hid, hierarchy="memory", path=f"/{tag}-{i}", first_seen_at=when,
                    last_seen_at=when, removed_at=when + timedelta(minutes=1))
                    .returning(m.Cgroup.id))
                s.execute(insert(m.RemovedCgroup).values(
                    host_id=hid, cgroup_id=cid, hierarchy="memory", path=f"/{tag}-{i}",
                    last_seen_at=when, removed_at=when + timedelta(minutes=1),
                    last_memory_stat=pack_stat({"cache": 4096})))
        s.execute(insert(m.Cgroup).values(host_id=hid, hierarchy="memory", path="/live",
                                          first_seen_at=old, last_seen_at=old))
    report = Maintenance(sessions, 600, raw_days=14).run_once(NOW)
    assert report is not None and report.removed_deleted == 3
    with sessions() as s:
        assert sorted(s.scalars(select(m.RemovedCgroup.path))) == ["/new-0", "/new-1", "/new-2"]
        assert sorted(s.scalars(select(m.Cgroup.path))) == ["/live", "/new-0", "/new-1",
                                                            "/new-2"]
        assert q.removed_totals(s, [hid]) == {hid: 6}  # the old ones live on in the rollup
        rows, total = queries.removed(s, hid, None, None, 100, 0)
        assert total == len(rows) == 3  # the list's total counts only rows it can show
    engine.dispose()
