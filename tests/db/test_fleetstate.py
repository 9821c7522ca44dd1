"""The web tier's shared state in the database: counters, spool drops, alert claims."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import fleetstate
from app.db import models as m
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory

T0 = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
RETRY = timedelta(minutes=10)


def rows(sessions: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with sessions() as s:
        return [(r.host_name, r.rule, r.fired_at, r.claimed_at, r.notified_at)
                for r in s.scalars(select(m.AlertState).order_by(m.AlertState.host_name,
                                                                 m.AlertState.rule))]


def test_counters_add_up_and_spool_drops_keep_the_largest(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    for outcome in ("stored", "stored", "forbidden", "stored"):
        with sessions.begin() as s:
            fleetstate.count_ingest(s, outcome)
    with sessions.begin() as s:
        fleetstate.count_ingest(s, "duplicate", 5)
    for host, total in (("vm-a", 3), ("vm-a", 7), ("vm-a", 2), ("vm-b", 0)):
        with sessions.begin() as s:
            fleetstate.record_spool_dropped(s, host, total)
    with sessions() as s:
        assert fleetstate.ingest_counts(s) == {"duplicate": 5, "forbidden": 1, "stored": 3}
        assert fleetstate.spool_dropped(s) == {"vm-a": 7, "vm-b": 0}
    engine.dispose()


def test_claims_fire_once_clear_and_fire_again(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)

    def claim(rules: set[str], at: datetime) -> set[str]:
        with sessions.begin() as s:
            return fleetstate.claim_alerts(s, "vm-a", rules, at, RETRY)

    assert claim({"dying_memcgs", "wasted_memory"}, T0) == {"dying_memcgs", "wasted_memory"}
    assert claim({"dying_memcgs", "wasted_memory"}, T0 + timedelta(minutes=1)) == set()
    assert claim({"dying_memcgs"}, T0 + timedelta(minutes=2)) == set()  # wasted_memory clears
    assert claim({"dying_memcgs", "wasted_memory"}, T0 + timedelta(minutes=3)) == {
        "wasted_memory"}
    with sessions.begin() as s:
        assert fleetstate.mark_notified(s, "vm-a", {"dying_memcgs"}, T0,
                                        T0 + timedelta(seconds=1)) == 1
        assert fleetstate.claim_alerts(s, "vm-b", {"dying_memcgs"}, T0, RETRY) == {"dying_memcgs"}
    t3 = T0 + timedelta(minutes=3)
    assert rows(sessions) == [("vm-a", "dying_memcgs", T0, T0, T0 + timedelta(seconds=1)),
                              ("vm-a", "wasted_memory", t3, t3, None),
                              ("vm-b", "dying_memcgs", T0, T0, None)]
    # Not taken by the webhook for RETRY since its claim: claimed (and posted) again, once.
    t14 = t3 + RETRY + timedelta(minutes=1)
    assert claim({"dying_memcgs", "wasted_memory"}, t3 + RETRY) == set()  # not yet
    assert claim({"dying_memcgs", "wasted_memory"}, t14) == {"wasted_memory"}
    assert claim({"dying_memcgs", "wasted_memory"}, t14) == set()
    assert rows(sessions)[1] == ("vm-a", "wasted_memory", t3, t14, None)
    assert claim(set(), T0 + timedelta(minutes=4)) == set()  # nothing fires: every row goes
    with sessions() as s:
        assert [r.host_name for r in s.scalars(select(m.AlertState))] == ["vm-b"]
    engine.dispose()


@pytest.mark.parametrize("late", [False, True], ids=["first", "retry"])
def test_concurrent_claims_have_one_winner(db_url: str, late: bool) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    rules = {"dying_memcgs", "memcg_id_limit"}
    at = T0
    if late:  # claimed long ago and never taken by the webhook: the UPDATE path decides
        with sessions.begin() as s:
            assert fleetstate.claim_alerts(s, "vm-a", rules, T0, RETRY) == rules
        at = T0 + 2 * RETRY
    threads = 8
    start = threading.Barrier(threads)
    won: list[set[str]] = []
    lock = threading.Lock()

    def claim() -> None:
        start.wait(timeout=10)
        with sessions.begin() as s:
            got = fleetstate.claim_alerts(s, "vm-a", rules, at, RETRY)
        with lock:
            won.append(got)

    workers = [threading.Thread(target=claim) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert len(won) == threads
    # Each rule is won by exactly one caller, whichever it is.
    assert Counter(r for w in won for r in w) == {"dying_memcgs": 1, "memcg_id_limit": 1}
    engine.dispose()
