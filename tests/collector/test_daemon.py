"""The daemon: ticks into a sink, survives a sink outage, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from app.collector.daemon import Daemon
from app.collector.dbsink import DatabaseSink
from app.collector.scrape import Collector, CollectorOptions
from app.db import fleetstate
from app.db import models as m
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from tests.collector.sinks import FailingSink, FakeStore
from tests.conftest import ERAS, ROOT


def _collector() -> Collector:
    t = ERAS / "v2-5.15-dying"
    return Collector(CollectorOptions(proc_root=str(t / "proc"), sys_root=str(t / "sys")))


def test_ticks_are_stored(db_url: str) -> None:
    """The real store (needs the storage branch's write_snapshot for the new Snapshot)."""
    upgrade(db_url)
    engine = make_engine(db_url)
    d = Daemon(_collector(), DatabaseSink(make_session_factory(engine)), 0.01, max_ticks=3)
    stats = d.run()
    assert (stats.ticks, stats.stored, stats.dropped) == (3, 3, 0)
    with make_session_factory(engine)() as s:
        assert fleetstate.count_scrapes(s, "k8s-node-515") == 3
        dying = s.scalars(select(m.Scrape.memcg_dying_total)).all()
    assert dying == [37, 37, 37]
    engine.dispose()


def test_database_outage_keeps_snapshots_and_replays_in_order(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    fake = FakeStore(engine)
    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none",
                       connect_args={"connect_timeout": 2})
    d = Daemon(_collector(), DatabaseSink(make_session_factory(down), fake.write), 0.01)
    for _ in range(3):
        d.tick()
    assert (d.stats.stored, len(d.backlog), d.stats.sink_failures) == (0, 3, 3)
    taken = [s.taken_at for s in d.backlog]
    d.sink = DatabaseSink(make_session_factory(engine), fake.write)
    d.tick()
    assert (d.stats.stored, len(d.backlog), d.stats.dropped) == (4, 0, 0)
    assert fake.rows()[:3] == [(t.isoformat(), 37) for t in taken]  # in the order taken
    engine.dispose()
    down.dispose()


def test_backlog_bound_drops_oldest_and_counts() -> None:
    d = Daemon(_collector(), FailingSink(), 0.01, backlog_max=2)
    for _ in range(4):
        d.tick()
    assert (len(d.backlog), d.stats.dropped, d.stats.sink_failures) == (2, 2, 4)


def test_backlog_byte_bound_keeps_the_newest() -> None:
    d = Daemon(_collector(), FailingSink(), 0.01, backlog_max_bytes=1)
    for _ in range(3):
        d.tick()
    assert (len(d.backlog), d.stats.dropped) == (1, 2)


def _scrapes(url: str) -> int:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            return fleetstate.count_scrapes(s)
    except Exception:
        return 0
    finally:
        engine.dispose()


def _sigterm_run(url: str, tmp_path: Path) -> None:
    env = dict(os.environ, SLABSCOPE_DATABASE_URL=url, SLABSCOPE_LOG_LEVEL="INFO")
    t = ERAS / "pre-5.3-v1-memcg-sysfs"
    log = tmp_path / "collector.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "collect", "--interval", "2",
             "--proc-root", str(t / "proc"), "--sys-root", str(t / "sys")],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while _scrapes(url) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _scrapes(url) >= 2, log.read_text()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        stopped_in = time.monotonic() - sent
    text = log.read_text()
    assert rc == 0, text
    assert stopped_in < 2 + 3  # within one interval (plus process teardown)
    line = next(x for x in text.splitlines() if "stopped after" in x)
    ticks = int(line.split("stopped after ")[1].split()[0])
    stored = int(line.split("(")[1].split()[0])
    assert ticks == stored == _scrapes(url)  # no completed tick lost


def test_sigterm_loses_no_tick_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    _sigterm_run(sqlite_url, tmp_path)


def test_sigterm_loses_no_tick_postgres(postgres_url: str, tmp_path: Path) -> None:
    _sigterm_run(postgres_url, tmp_path)
