"""Push mode end to end: a real server on loopback that goes away and comes back."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select
from typer.testing import CliRunner

from app.api.routes.ingest import gzip_body
from app.cli import cli
from app.collector.push import Pusher, PushSink, Spool
from app.collector.scrape import Collector, CollectorOptions
from app.config import Settings
from app.db import fleetstate
from app.db import models as m
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.fleet.tokens import token_hash
from app.main import create_app
from tests.api.test_ingest import snapshot
from tests.conftest import ERAS, ROOT


def fetch(url: str) -> str:
    import urllib.request
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """slabscope's web app in a thread, that can be stopped and started again."""

    def __init__(self, url: str, port: int, **settings: Any) -> None:
        self.url, self.port, self.settings = url, port, settings
        self.srv: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        app = create_app(Settings(database_url=self.url, **self.settings))
        self.srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                 log_level="error"))
        self.thread = threading.Thread(target=self.srv.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.srv.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.srv.started

    def stop(self) -> None:
        """Stop, and wait until the thread has ended and the port is free again."""
        assert self.srv is not None and self.thread is not None
        self.srv.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the server did not stop within 15 s"


@pytest.fixture
def server(sqlite_url: str) -> Iterator[Server]:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with make_session_factory(engine).begin() as s:
        fleetstate.add_token(s, "vm-a", token_hash("token-a"), datetime.now(UTC))
    engine.dispose()
    srv = Server(sqlite_url, free_port())
    srv.start()
    yield srv
    if srv.srv is not None and not srv.srv.should_exit:
        srv.stop()


def stored_ids(url: str) -> list[str]:
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        ids = [x for x in s.scalars(select(m.Scrape.snapshot_id).order_by(m.Scrape.id))
               if x is not None]
    engine.dispose()
    return ids


def test_outage_is_spooled_and_replayed_in_order(server: Server, tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "spool"), 100)
    pusher = Pusher(f"http://127.0.0.1:{server.port}", "token-a", spool, timeout=3)
    snap = snapshot("vm-a")
    ids = [f"snap-{i:04d}-xxxx" for i in range(6)]
    spool.put(ids[0], gzip_body(ids[0], snap))
    assert pusher.flush() == 1
    server.stop()
    for sid in ids[1:5]:
        spool.put(sid, gzip_body(sid, snap))
        assert pusher.flush() == 0  # down: kept, not lost
    assert len(spool.pending()) == 4
    server.start()
    spool.put(ids[5], gzip_body(ids[5], snap))
    assert pusher.flush() == 5 and spool.pending() == []
    assert stored_ids(server.url) == ids  # every snapshot once, in order


def test_full_spool_drops_oldest_and_says_so(server: Server, tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "spool"), 3)
    server.stop()
    for i in range(5):
        spool.put(f"drop-{i:04d}-xxxx", gzip_body(f"drop-{i:04d}-xxxx", snapshot("vm-a"),
                                                  spool.dropped))
    assert spool.dropped == 2 and [p.name.split("-", 1)[1] for p in spool.pending()] == [
        f"drop-{i:04d}-xxxx.json.gz" for i in (2, 3, 4)]
    assert Spool(str(tmp_path / "spool"), 3).dropped == 2  # survives a restart
    server.start()
    Pusher(f"http://127.0.0.1:{server.port}", "token-a", spool).flush()
    text = fetch(f"http://127.0.0.1:{server.port}/metrics")
    assert 'slabscope_collector_spool_dropped_total{host="vm-a"} 2' in text


def test_refused_token_keeps_the_spool(server: Server, tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "spool"), 10)
    spool.put("refused-0001-xx", gzip_body("refused-0001-xx", snapshot("vm-a")))
    p = Pusher(f"http://127.0.0.1:{server.port}", "wrong", spool)
    assert p.flush() == 0 and p.refused and len(spool.pending()) == 1
    assert stored_ids(server.url) == []


def test_collect_push_subprocess_and_hosts_cli(server: Server, tmp_path: Path) -> None:
    runner = CliRunner()
    token_file = tmp_path / "token"
    r = runner.invoke(cli, ["hosts", "add", "web-frontend-419", "--database", server.url,
                            "--token-file", str(token_file)])
    assert r.exit_code == 0, r.output
    assert token_file.read_text().strip() == r.stdout.strip()
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    tree = ERAS / "pre-5.3-v1-memcg-sysfs"
    env = dict(os.environ, SLABSCOPE_LOG_LEVEL="INFO")
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "collect", "--push",
         f"http://127.0.0.1:{server.port}", "--token-file", str(token_file), "--ticks", "2",
         "--interval", "0.2", "--spool-dir", str(tmp_path / "spool"),
         "--proc-root", str(tree / "proc"), "--sys-root", str(tree / "sys")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "2 sent, 0 pending, 0 dropped" in done.stderr
    assert len(stored_ids(server.url)) == 2
    listing = runner.invoke(cli, ["hosts", "list", "--database", server.url]).stdout
    assert "web-frontend-419" in listing and "live" in listing and r.stdout.strip() not in listing
    assert runner.invoke(cli, ["hosts", "revoke", "web-frontend-419", "--database",
                               server.url]).exit_code == 0
    assert "revoked" in runner.invoke(cli, ["hosts", "list", "--database", server.url]).stdout


def test_alerts_metrics_and_webhook(sqlite_url: str, tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with make_session_factory(engine).begin() as s:
        fleetstate.add_token(s, "vm-a", token_hash("token-a"), datetime.now(UTC))
    engine.dispose()
    srv = Server(sqlite_url, free_port(), alert_dying_max=100,
                 alert_webhook_url=f"http://127.0.0.1:{hook.server_port}/hook")
    srv.start()
    try:
        spool = Spool(str(tmp_path / "spool"), 10)
        spool.put("alert-0001-xxxx", gzip_body("alert-0001-xxxx", snapshot("vm-a")))
        assert Pusher(f"http://127.0.0.1:{srv.port}", "token-a", spool).flush() == 1
        base = f"http://127.0.0.1:{srv.port}"
        alerts = json.loads(fetch(base + "/api/v1/alerts"))
        assert [(a["host"], a["rule"]) for a in alerts["alerts"]] == [("vm-a", "dying_memcgs")]
        assert alerts["rules"]["dying_max"] == 100
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got and got[0]["alerts"][0]["rule"] == "dying_memcgs"
        metrics = fetch(base + "/metrics")
        assert 'slabscope_memcg_dying{host="vm-a"} 118' in metrics
        assert "# TYPE slabscope_last_scrape_age_seconds gauge" in metrics
        assert 'slabscope_alerts_firing{rule="dying_memcgs"} 1' in metrics
        page = fetch(base + "/")
        assert "data-alerts" in page and "118 dying memcgs" in page
    finally:
        srv.stop()
        hook.shutdown()
    hook.server_close()


def test_hosts_add_from_env_is_idempotent_and_never_prints_the_token(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("FLEET_TOKEN", "a-provisioned-token-0123456789")
    for _ in range(2):  # the compose migrate service runs it at every start
        r = runner.invoke(cli, ["hosts", "add", "db-7", "--database", sqlite_url,
                                "--token-env", "FLEET_TOKEN"])
        assert r.exit_code == 0 and "a-provisioned-token" not in r.output
    listing = runner.invoke(cli, ["hosts", "list", "--database", sqlite_url]).stdout
    assert listing.count("db-7") == 1
    monkeypatch.setenv("FLEET_TOKEN", "short")
    assert runner.invoke(cli, ["hosts", "add", "db-8", "--database", sqlite_url,
                               "--token-env", "FLEET_TOKEN"]).exit_code == 2


@pytest.mark.parametrize("null", ["page_size_bytes", "cache name", "cgroup path"])
def test_a_null_the_database_cannot_hold_is_rejected_not_a_duplicate(
        db_url: str, tmp_path: Path, null: str) -> None:
    """Issue 9 item 1: a NOT NULL column's null is a 422 (the sink keeps the file in
    rejected/), never "duplicate" (the sink would delete it) nor a database error."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with make_session_factory(engine).begin() as s:
        fleetstate.add_token(s, "vm-a", token_hash("token-a"), datetime.now(UTC))
    engine.dispose()
    srv = Server(db_url, free_port())
    srv.start()
    try:
        root = ERAS / "v2-6.12-subsys"
        good = Collector(CollectorOptions(proc_root=str(root / "proc"),
                                          sys_root=str(root / "sys"))).collect()
        good = replace(good, host=replace(good.host, hostname="vm-a"))
        assert good.caches and good.series is not None
        if null == "page_size_bytes":
            bad = replace(good, host=replace(good.host, page_size_bytes=None))
        elif null == "cache name":
            bad = replace(good, caches=(good.caches[0]._replace(name=None), *good.caches[1:]))
        else:
            bad = replace(good, series=replace(good.series,
                                               paths=(None, *good.series.paths[1:])))
        spool = Spool(str(tmp_path / "spool"), 10)
        sink = PushSink(spool, Pusher(f"http://127.0.0.1:{srv.port}", "token-a", spool))
        sink.write(bad)
        sink.write(good)
        assert spool.pending() == []
        rejected = sorted((spool.dir / "rejected").iterdir())
        assert len(rejected) == 1 and sink.pusher.sent == 1
        assert len(stored_ids(db_url)) == 1  # the good one, once
        text = fetch(f"http://127.0.0.1:{srv.port}/metrics")
        counts = {line.split('"')[1]: float(line.split()[-1]) for line in text.splitlines()
                  if line.startswith("slabscope_ingest_requests_total{")}
        assert counts == {"invalid": 1, "stored": 1}
        # The server says which value and why.
        req = urllib.request.Request(
            f"http://127.0.0.1:{srv.port}/api/v1/ingest", method="POST",
            data=rejected[0].read_bytes(), headers={"Authorization": "Bearer token-a",
                                                    "Content-Encoding": "gzip"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        r = (err.value.code, err.value.read().decode())
        where = {"page_size_bytes": "snapshot.host.page_size_bytes: Input should be a valid "
                                    "integer",
                 "cache name": "snapshot.caches.0.name: Input should be a valid string",
                 "cgroup path": "snapshot.series.paths.0: Input should be a valid string"}
        assert r[0] == 422 and where[null] in r[1]
    finally:
        srv.stop()
