"""Two server workers give one alert: real `slabscope serve` processes on one database.

Snapshots of two hosts whose alerts cross their thresholds are pushed concurrently, many
times, to `slabscope serve --workers 2` and to two single-worker servers on two ports. The
webhook receiver must get each (host, rule) exactly once, and every server's /metrics must
count every request, whichever process answered it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.db import fleetstate
from app.db import models as m
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.fleet.tokens import token_hash
from tests.api.fleet import Receiver, body, fetch, ingest_counts, push, spool_dropped
from tests.conftest import ROOT

HOSTS = {"vm-a": "token-a", "vm-b": "token-b"}
STORED = 40  # per host, after one snapshot below the thresholds
RULES = ("dying_memcgs", "wasted_memory")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until(ok: Callable[[], bool], what: str | Callable[[], str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, \
            f"timed out waiting for {what if isinstance(what, str) else what()}"
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    """The processes whose parent is pid."""
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:  # gone meanwhile
            continue
        if f"\nPPid:\t{pid}\n" in text:
            out.append(int(status.parent.name))
    return out


def uses_database(pid: int, url: str) -> bool:
    """Whether a process holds the database open: the SQLite file, or a PostgreSQL socket."""
    try:
        links = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return str(u.database) in links
    inodes = {x[len("socket:["):-1] for x in links if x.startswith("socket:[")}
    port = f"{u.port or 5432:04X}"
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[2].endswith(":" + port) and f[9] in inodes:
                return True
    return False


class Serve:
    """`slabscope serve` in a process group of its own (the workers are its children)."""

    def __init__(self, url: str, workers: int, env: dict[str, str], log: IO[bytes]) -> None:
        self.url, self.port = url, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port",
             str(self.port), "--workers", str(workers), "--database", url, "--no-migrate"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}"
        try:
            return fetch(self.base + "/healthz")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # a worker its supervisor left behind
            os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def servers(request: pytest.FixtureRequest, db_url: str, receiver: Receiver,
            tmp_path: Path) -> Iterator[list[Serve]]:
    """`--workers 2` (one base URL), or two single-worker servers on two ports."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with make_session_factory(engine).begin() as s:
        for host, token in HOSTS.items():
            fleetstate.add_token(s, host, token_hash(token), datetime.now(UTC))
    engine.dispose()
    env = dict(os.environ, SLABSCOPE_ALERT_DYING_MAX="100",
               SLABSCOPE_ALERT_WASTED_BYTES_MAX="1000000",
               # Growth from the warm-up's 10 to 150 would fire the growth rules too.
               SLABSCOPE_ALERT_GROWTH_PER_DAY_MAX="1e12", SLABSCOPE_ALERT_DAYS_TO_LIMIT_MIN="0",
               SLABSCOPE_ALERT_WEBHOOK_URL=receiver.url, SLABSCOPE_LOG_LEVEL="WARNING")
    shape = [2] if request.param == "workers" else [1, 1]
    with open(tmp_path / "serve.log", "wb") as log:
        started: list[Serve] = []
        try:
            for n in shape:
                started.append(Serve(db_url, n, env, log))
            for srv in started:
                until(srv.ready, f"{srv.base}/healthz")
            yield started
        finally:
            for srv in started:
                srv.stop()


def _requests(bases: list[str]) -> list[tuple[str, str | None, bytes, int | None]]:
    """(base, token, body, dropped) of every push, spread over the bases in turn."""
    t0 = datetime.now(UTC) - timedelta(seconds=60)
    out: list[tuple[str | None, bytes, int | None]] = []
    for h, (host, token) in enumerate(HOSTS.items()):
        stored = [body(f"{host}-{i:06d}", host, 150, t0 + timedelta(seconds=1 + i))
                  for i in range(STORED)]
        out += [(token, b, i % (9 - 4 * h)) for i, b in enumerate(stored)]
        out += [(token, b, None) for b in stored[:10]]  # retries: duplicates
        out += [(HOSTS["vm-b" if host == "vm-a" else "vm-a"], stored[0], None)] * 5  # forbidden
        out += [(None, stored[1], None)] * 5  # unauthorized
        out += [(token, b"\x1f\x8b\x08\x00garbage", None)] * 5  # invalid
    return [(bases[k % len(bases)], *r) for k, r in enumerate(out)]


def _alert_rows(url: str) -> list[tuple[str, str, bool]]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            return [(r.host_name, r.rule, r.notified_at is not None) for r in s.scalars(
                select(m.AlertState).order_by(m.AlertState.host_name, m.AlertState.rule))]
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("servers", ["workers", "ports"], indirect=True)
def test_two_server_workers_give_one_alert(servers: list[Serve], receiver: Receiver,
                                           db_url: str) -> None:
    bases = [s.base for s in servers]
    if len(servers) == 1:
        # Both workers of `--workers 2` serve before the load: each holds the database open.
        workers = children(servers[0].proc.pid)

        def both_serve() -> bool:
            for b in bases * 4:
                fetch(b + "/healthz")
            return sum(uses_database(p, db_url) for p in workers) == 2

        until(both_serve, "both workers to answer")
    for host, token in HOSTS.items():  # below every threshold: the host rows exist, no alert
        assert push(bases[0], token, body(f"{host}-warmup", host, 10,
                                          datetime.now(UTC) - timedelta(seconds=90))) == 200
    todo = _requests(bases)
    with ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(lambda r: push(r[0], r[1], r[2], r[3]), todo))
    assert sorted(set(statuses)) == [200, 401, 403, 422]
    want = {(h, r) for h in HOSTS for r in RULES}
    until(lambda: set(receiver.pairs()) == want
          and _alert_rows(db_url) == [(h, r, True) for h, r in sorted(want)],
          lambda: f"each alert to be posted and marked: got {receiver.pairs()}, "
                  f"rows {_alert_rows(db_url)}")
    assert receiver.pairs() == {pair: 1 for pair in want}
    for base in bases:
        metrics = fetch(base + "/metrics")[1]
        assert ingest_counts(metrics) == {"stored": 2 * (1 + STORED), "duplicate": 20,
                                          "forbidden": 10, "unauthorized": 10, "invalid": 10}
        assert spool_dropped(metrics) == {"vm-a": 8, "vm-b": 4}
        assert 'slabscope_alerts_firing{rule="dying_memcgs"} 2' in metrics
        alerts = json.loads(fetch(base + "/api/v1/alerts")[1])["alerts"]
        assert sorted((a["host"], a["rule"]) for a in alerts) == sorted(want)
    assert receiver.pairs() == {pair: 1 for pair in want}  # still once, after all that
