"""Alerts and ingest counters live in the database: two apps on one database answer as one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app.api.routes.alerts import WEBHOOK_THREAD
from app.cli import cli
from app.config import Settings
from app.db import fleetstate
from app.db import models as m
from app.db.migrate import upgrade
from app.fleet.tokens import token_hash
from app.main import create_app
from tests.api.fleet import Receiver, body, ingest_counts, spool_dropped

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)  # not stale


@pytest.fixture(autouse=True)
def _recent_t0() -> None:
    """T0 a minute before each test (not before the whole run: a slow run makes it stale,
    and `stopped_reporting` would fire and be posted too)."""
    global T0
    T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _app(url: str, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(database_url=url, **settings)))


def _push(c: TestClient, token: str | None, data: bytes, dropped: int | None = None) -> int:
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if dropped is not None:
        headers["X-Slabscope-Spool-Dropped"] = str(dropped)
    return int(c.post("/api/v1/ingest", content=data, headers=headers).status_code)


def _until(ok: Any, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _webhooks_done(seconds: float = 10) -> None:
    """Join every webhook post thread (started before the ingest that fired it answered):
    after this, every post is in the receiver and every mark is written."""
    deadline = time.monotonic() + seconds
    for t in threading.enumerate():
        if t.name == WEBHOOK_THREAD:
            t.join(max(0.0, deadline - time.monotonic()))
            assert not t.is_alive(), "a webhook post did not finish"


def _alert_rows(c: TestClient) -> list[tuple[str, str, bool]]:
    with c.app.state.sessions() as s:  # type: ignore[attr-defined]
        return [(r.host_name, r.rule, r.notified_at is not None) for r in
                s.scalars(select(m.AlertState).order_by(m.AlertState.rule))]


def test_alert_fires_once_clears_and_fires_again(db_url: str, receiver: Receiver) -> None:
    upgrade(db_url)
    with _app(db_url, alert_dying_max=100, alert_webhook_url=receiver.url) as c:
        with c.app.state.sessions.begin() as s:  # type: ignore[attr-defined]
            fleetstate.add_token(s, "vm-a", token_hash("token-a"), T0)
        dying = [50, 118, 120, 125, 40, 130, 131]  # fires, clears (40), fires again
        for i, d in enumerate(dying):
            assert _push(c, "token-a", body(f"snap-{i:08d}", "vm-a", d,
                                            T0 + timedelta(seconds=i))) == 200
            _webhooks_done()  # each push's post (if it fired one) is in before the next
            posted = {0: 0, 1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 2}[i]
            assert receiver.pairs() == ({("vm-a", "dying_memcgs"): posted} if posted else {})
            firing = [("vm-a", "dying_memcgs", True)] if d > 100 else []
            assert _alert_rows(c) == firing  # posted and marked; stopped firing: row gone
        assert [b["alerts"][0]["value"] for b in receiver.bodies] == [118, 130]


def test_alert_the_webhook_refused_is_posted_again_once(db_url: str) -> None:
    upgrade(db_url)
    receiver = Receiver(fail=1)
    try:
        with _app(db_url, alert_dying_max=100, alert_webhook_url=receiver.url,
                  alert_webhook_retry_seconds=0.2) as c:
            with c.app.state.sessions.begin() as s:  # type: ignore[attr-defined]
                fleetstate.add_token(s, "vm-a", token_hash("token-a"), T0)
            sent = 0

            def push_one() -> int:
                nonlocal sent
                sent += 1
                return _push(c, "token-a", body(f"snap-{sent:08d}", "vm-a", 118,
                                                T0 + timedelta(seconds=sent)))

            assert push_one() == 200
            _webhooks_done()
            assert len(receiver.refused) == 1 and receiver.bodies == []
            assert _alert_rows(c) == [("vm-a", "dying_memcgs", False)]
            # Ingests go on; the first one past the retry delay (0.2 s) posts it again.
            def reposted() -> bool:
                assert push_one() == 200
                _webhooks_done()
                return bool(receiver.bodies)
            _until(reposted, "the repost")
            assert _alert_rows(c) == [("vm-a", "dying_memcgs", True)]
            for _ in range(3):
                assert push_one() == 200
            _webhooks_done()  # any post those pushes started has arrived
            assert len(receiver.refused) == 1
            assert receiver.pairs() == {("vm-a", "dying_memcgs"): 1}
            assert receiver.refused[0] == receiver.bodies[0]
    finally:
        receiver.close()


def test_two_apps_on_one_database_count_as_one(db_url: str) -> None:
    upgrade(db_url)
    with _app(db_url) as one, _app(db_url) as two:
        with one.app.state.sessions.begin() as s:  # type: ignore[attr-defined]
            fleetstate.add_token(s, "vm-a", token_hash("token-a"), T0)
        data = body("snap-00000001", "vm-a", 10, T0)
        assert _push(one, "token-a", data, dropped=3) == 200
        assert _push(two, "token-a", data, dropped=5) == 200  # a retry: duplicate
        assert _push(two, "token-a", body("snap-00000002", "vm-a", 10, T0 + timedelta(
            seconds=1)), dropped=4) == 200
        assert _push(one, None, data) == 401
        assert _push(two, "nope", data) == 403
        assert _push(one, "token-a", b"\x1f\x8b\x08\x00garbage") == 422
        for c in (one, two):
            text = c.get("/metrics").text
            assert ingest_counts(text) == {"duplicate": 1, "forbidden": 1, "invalid": 1,
                                           "stored": 2, "unauthorized": 1}
            assert spool_dropped(text) == {"vm-a": 5}


def test_concurrent_first_pushes_of_a_host_are_all_stored(db_url: str) -> None:
    upgrade(db_url)
    with _app(db_url) as c:
        with c.app.state.sessions.begin() as s:  # type: ignore[attr-defined]
            for h in range(6):
                fleetstate.add_token(s, f"vm-{h}", token_hash(f"token-{h}"), T0)
        # Each new host gets several snapshots at once: they race to create its row.
        todo = [(h, i) for h in range(6) for i in range(4)]
        with ThreadPoolExecutor(max_workers=12) as pool:
            got = list(pool.map(lambda r: c.post("/api/v1/ingest", content=body(
                f"snap-{r[0]}-{r[1]:06d}", f"vm-{r[0]}", 10, T0 + timedelta(seconds=r[1])),
                headers={"Authorization": f"Bearer token-{r[0]}",
                         "Content-Encoding": "gzip"}).json()["status"], todo))
        assert got == ["stored"] * len(todo)
        with c.app.state.sessions() as s:  # type: ignore[attr-defined]
            assert fleetstate.count_scrapes(s) == len(todo)
        assert ingest_counts(c.get("/metrics").text) == {"stored": len(todo)}


def test_database_down_counts_nothing_and_answers_as_before(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'slabscope.db'}"  # a directory that is not there
    with _app(url) as c:
        data = body("snap-00000001", "vm-a", 10, T0)
        assert _push(c, None, data) == 401
        # The token is checked before the body is read: with no database, even garbage is a
        # 503 (the collector keeps it and retries), never a parse the sender did not pay for.
        assert _push(c, "token-a", b"\x1f\x8b\x08\x00garbage") == 503
        r = c.post("/api/v1/ingest", content=data, headers={
            "Authorization": "Bearer token-a", "Content-Encoding": "gzip"})
        assert r.status_code == 503 and "database is unavailable" in r.json()["detail"]
        assert c.get("/metrics").status_code == 503


@pytest.mark.parametrize("workers", ["0", "65", "-3"])
def test_serve_refuses_a_bad_worker_count(workers: str) -> None:
    r = CliRunner().invoke(cli, ["serve", "--workers", workers, "--no-migrate"])
    assert r.exit_code == 2
    assert r.output.strip() == f"slabscope: --workers must be 1 to 64, not {workers}"
