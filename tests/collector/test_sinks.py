"""One daemon loop, two sinks: push (spool + send) and database (one transaction a tick)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from app.collector.daemon import Daemon
from app.collector.dbsink import DatabaseSink
from app.collector.push import Pusher, PushSink, Spool
from app.collector.scrape import Collector, CollectorOptions
from app.config import Settings
from app.db.session import make_engine, make_session_factory
from app.domain.samples import Snapshot
from app.fleet.wire import snapshot_from_dict
from tests.collector.sinks import FakeStore
from tests.conftest import ERAS, ROOT


class Steps:
    """A monotonic clock that moves 30 s at each reading (the collector reads it once a tick)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 30.0
        return self.t


def _collector() -> Collector:
    t = ERAS / "pre-5.3-v1-memcg-sysfs"
    return Collector(CollectorOptions(proc_root=str(t / "proc"), sys_root=str(t / "sys")),
                     clock=Steps())


class Recording:
    """Wraps a sink and keeps what it was given."""

    def __init__(self, inner: PushSink | DatabaseSink) -> None:
        self.inner = inner
        self.seen: list[Snapshot] = []

    def write(self, snap: Snapshot) -> None:
        self.inner.write(snap)
        self.seen.append(snap)

    def close(self) -> None:
        self.inner.close()


def test_push_sink_spools_what_the_loop_collected(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "spool"), 10)
    # A closed port: nothing is sent, everything waits in the spool in order.
    sink = Recording(PushSink(spool, Pusher("http://127.0.0.1:9", "t", spool, timeout=1),
                              tmp_path / "spool/heartbeat"))
    stats = Daemon(_collector(), sink, 0.0, max_ticks=3).run()
    assert (stats.ticks, stats.stored, stats.sink_failures) == (3, 3, 0)
    files = spool.pending()
    assert len(files) == 3 and (tmp_path / "spool/heartbeat").exists()
    for f, snap in zip(files, sink.seen, strict=True):
        body = json.loads(gzip.decompress(f.read_bytes()))
        assert body["spool_dropped_total"] == 0 and len(body["snapshot_id"]) == 32
        assert snapshot_from_dict(body["snapshot"]) == snap  # tables exact, u64 exact
    assert sink.seen[0].full is not None and sink.seen[1].full is None


def test_database_sink_through_the_same_loop(sqlite_url: str) -> None:
    """store.write_snapshot is being rewritten on the storage branch: a fake store function
    writes a real SQLite table inside the sink's real transaction."""
    engine = make_engine(sqlite_url)
    fake = FakeStore(engine)
    sink = DatabaseSink(make_session_factory(engine), fake.write)
    d = Daemon(_collector(), sink, 0.0, max_ticks=2)
    d.run()
    fake.fail_next = True  # the third write fails after its INSERT: rolled back, kept
    d.tick()
    assert (d.stats.stored, d.stats.sink_failures, len(d.backlog)) == (2, 1, 1)
    d.tick()
    assert (d.stats.stored, len(d.backlog)) == (4, 0)
    with engine.connect() as c:
        rows = c.execute(text("SELECT dying, series_rows, full_rows, new, removed "
                              "FROM fake_scrape ORDER BY rowid")).all()
    # Each snapshot exactly once; series (every cgroup of both hierarchies) and full (the 4
    # with a memory.stat: v1; cgroup2 here has no memory controller) on the first tick only.
    assert [tuple(r) for r in rows] == [(53, 7, 4, 0, 0), (53, None, None, 0, 0),
                                        (53, None, None, 0, 0), (53, None, None, 0, 0)]
    engine.dispose()


def test_push_daemon_loads_no_database_code_and_no_pydantic(tmp_path: Path) -> None:
    """As `slabscope collect --push` starts it: settings as JSON on a pipe."""
    settings = Settings(push_url="http://127.0.0.1:9", token_file=str(tmp_path / "t"),
                        cgroup_walk_interval_seconds=30, spool_dir=str(tmp_path / "spool"))
    r, w = os.pipe()
    os.write(w, settings.model_dump_json().encode())
    os.close(w)
    code = ("import sys\n"
            "from app.collector.__main__ import read_config, _push_sink\n"
            "import app.collector.daemon, app.collector.push\n"
            f"c = read_config({r})\n"
            "print(c.options.walk_interval_seconds, c.push_url, c.spool_max_files)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sqlalchemy', 'alembic', 'psycopg', 'pydantic', 'pydantic_settings', 'typer')"
            " or m.startswith('app.db') or m == 'app.config'))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, pass_fds=(r,))
    os.close(r)
    assert out.stdout.splitlines() == ["30.0 http://127.0.0.1:9 10000", "[]"]
