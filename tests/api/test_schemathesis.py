"""Schemathesis against /openapi.json: every operation, a real server, SQLite and PostgreSQL.

A real server (`slabscope serve`, on a free port) serves a seeded database: three hosts of
tests/seed.py (30 scrapes, 235 real caches, 50 cgroups, removals), one host of
tests/longhistory.py (a day of bulk-written history), a host with an odd name and one scrape,
and an ingest token. Path parameters are drawn from the real host and cache names as well as
generated ones (else every GET with a path parameter would only ever see a 404; each server
checks at the end that every operation answered 200 at least once), and POST /api/v1/ingest
is sent with a valid token as well as without.

Every response must be a documented status with the documented content type, headers and
JSON schema, and never a 5xx. Bounded (EXAMPLES fuzzed cases per operation, plus schemathesis'
examples and coverage phases) and seeded (SEED): the same cases in every run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.routes.ingest import token_hash
from app.collector.sources.slabinfo import read_slabinfo
from app.config import Settings
from app.db import fleetstate, store
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.main import create_app
from tests.conftest import HOST, ROOT
from tests.longhistory import seed_long
from tests.seed import seed, snapshot

TOKEN = "schemathesis-token-0123456789"
TOKEN_HOST = "host-0"
# A name with a quote, a space and a non-ASCII letter, and one scrape only (a 409 for the
# projection, which needs a few).
ODD_HOST = 'café "01"'
HOSTS = ["host-0", "host-1", "host-2", "long-0", ODD_HOST]
CACHES = [r.name for r in read_slabinfo(str(HOST / "proc"))]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
EXAMPLES = 15
SIMULATION_EXAMPLES = 10

# The document the server serves at /openapi.json (test_served_openapi_is_the_tested_one).
OPENAPI = create_app(Settings(database_url="sqlite://")).openapi()
SEED = 20261130
schema = schemathesis.openapi.from_dict(
    OPENAPI, config=schemathesis.Config.from_dict({"seed": SEED}))


@schema.hook("before_generate_path_parameters")
def real_names(context: schemathesis.HookContext, strategy: Any) -> Any:
    """Two cases in three name real rows: a seeded host, and one of its caches."""
    names = {p.name for p in context.operation.path_parameters}  # type: ignore[union-attr]
    if "host" not in names:
        return strategy
    real: dict[str, Any] = {"host": st.sampled_from(HOSTS)}
    if "name" in names:
        real["name"] = st.sampled_from(CACHES)
    seeded = st.fixed_dictionaries(real)
    return st.one_of(strategy, seeded, seeded)



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`slabscope serve` in a process of its own, on a free port of 127.0.0.1 (no state of
    the server's is left in the test process)."""

    def __init__(self, url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.statuses: dict[str, Counter[int]] = {}
        env = {**os.environ, "SLABSCOPE_MAINTENANCE_INTERVAL_SECONDS": "0"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port",
             str(self.port), "--database", url, "--no-migrate"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, "the server did not start in 60 s"
            try:
                if requests.get(self.base + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.05)

    def call(self, case: schemathesis.Case, timeout: float = 30, **kw: Any) -> None:
        """Send the case, run every check on the answer, count the answer's status."""
        r = case.call_and_validate(base_url=self.base, checks=CHECKS, timeout=timeout, **kw)
        self.statuses.setdefault(case.operation.label, Counter())[r.status_code] += 1

    def check_real_rows_reached(self) -> None:
        """Every operation that can answer 200 did, at least once: the cases reached real
        rows, not only 404s and 422s (ingest cannot: no generated body is a snapshot)."""
        never = [op for op, seen in self.statuses.items()
                 if op != "POST /api/v1/ingest" and 200 not in seen]
        assert not never, f"never answered 200: {never} ({self.statuses})"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("the server did not stop in 30 s") from None


def _seed(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    end = seed(sessions)
    with sessions.begin() as s:
        store.write_snapshot(s, snapshot(ODD_HOST, 0, end, 5, 1))
    seed_long(engine, days=1, end=end - timedelta(minutes=5), interval_seconds=60,
              removals_per_minute=2)
    with sessions.begin() as s:
        fleetstate.add_token(s, TOKEN_HOST, token_hash(TOKEN), datetime.now(UTC))
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    """A real server on a seeded database, once per database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 'slabscope.db'}"
        _seed(url)
        srv = Server(url)
        yield srv
        srv.stop()
        srv.check_real_rows_reached()
        return
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url
    admin = make_url(request.getfixturevalue("postgres_server"))
    name = f"slabscope_schemathesis_{uuid.uuid4().hex[:10]}"
    kw: dict[str, Any] = {"host": admin.host, "port": admin.port or 5432,
                          "user": admin.username, "dbname": admin.database, "autocommit": True}
    with psycopg.connect(**kw) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        _seed(url)
        srv = Server(url)
        yield srv
        srv.stop()
        srv.check_real_rows_reached()
    finally:
        with psycopg.connect(**kw) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


SIMULATIONS = {"path": "/api/v1/simulations", "method": "POST"}


@schema.exclude(**SIMULATIONS).parametrize()
@SETTINGS
def test_api(case: schemathesis.Case, server: Server) -> None:
    """Every operation (but the one below), as generated: no 5xx, every response as
    documented."""
    server.call(case)


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on an empty database: simulations read none."""
    url = f"sqlite:///{tmp_path_factory.mktemp('model') / 'slabscope.db'}"
    upgrade(url)
    srv = Server(url)
    yield srv
    srv.stop()
    srv.check_real_rows_reached()


@schema.include(**SIMULATIONS).parametrize()
@settings(SETTINGS, max_examples=SIMULATION_EXAMPLES)
def test_simulations(case: schemathesis.Case, model_server: Server) -> None:
    """POST /api/v1/simulations, once (it reads no database) and with fewer examples: each
    valid one runs the model (its cost is bounded by the route, see app/schemas/simulation)."""
    model_server.call(case, timeout=60)


ingest = schema.include(path="/api/v1/ingest", method="POST")


@ingest.parametrize()
@SETTINGS
def test_ingest_with_a_token(case: schemathesis.Case, server: Server) -> None:
    """Ingest past the token check: the token's own host, as the collector sends it."""
    server.call(case, headers={"Authorization": f"Bearer {TOKEN}"})


def test_served_openapi_is_the_tested_one(server: Server) -> None:
    r = requests.get(server.base + "/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.json() == OPENAPI
    ops = [(p, m) for p, item in OPENAPI["paths"].items() for m in item]
    assert ("/api/v1/ingest", "post") in ops and len(ops) >= 14


def test_real_rows_are_served(server: Server) -> None:
    """The seeded names the hook draws from are real: a generated case can reach a 200."""
    for h in HOSTS:
        assert requests.get(f"{server.base}/api/v1/hosts/{h}", timeout=10).status_code == 200
    r = requests.get(f"{server.base}/api/v1/hosts/host-0/caches?limit=1000", timeout=10)
    assert {c["name"] for c in r.json()["items"]} == set(CACHES)


def test_the_token_writes(server: Server) -> None:
    """The token given to the ingest cases is accepted: its cases get past the 401/403."""
    r = requests.post(server.base + "/api/v1/ingest", data=b"{}", timeout=10,
                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 422, r.text
    r = requests.post(server.base + "/api/v1/ingest", data=b"{}", timeout=10,
                      headers={"Authorization": "Bearer not-a-token-of-any-host"})
    assert r.status_code == 403, r.text


