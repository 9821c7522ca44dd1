"""The web tier's shared state in the database: counters, spool drops, alert claims."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.db import models as m
from app.db import store
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory

T0 = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)


def test_counters_add_up_and_spool_drops_keep_the_largest(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    for outcome in ("stored", "stored", "forbidden", "stored"):
        with sessions.begin() as s:
            store.count_ingest(s, outcome)
    with sessions.begin() as s:
        store.count_ingest(s, "duplicate", 5)
    for host, total in (("vm-a", 3), ("vm-a", 7), ("vm-a", 2), ("vm-b", 0)):
        with sessions.begin() as s:
            store.record_spool_dropped(s, host, total)
    with sessions() as s:
        assert store.ingest_counts(s) == {"duplicate": 5, "forbidden": 1, "stored": 3}
        assert store.spool_dropped(s) == {"vm-a": 7, "vm-b": 0}
    engine.dispose()


def test_claims_fire_once_clear_and_fire_again(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)

    def claim(rules: set[str], at: datetime) -> set[str]:
        with sessions.begin() as s:
            return store.claim_alerts(s, "vm-a", rules, at)

    assert claim({"dying_memcgs", "wasted_memory"}, T0) == {"dying_memcgs", "wasted_memory"}
    assert claim({"dying_memcgs", "wasted_memory"}, T0 + timedelta(minutes=1)) == set()
    assert claim({"dying_memcgs"}, T0 + timedelta(minutes=2)) == set()  # wasted_memory clears
    assert claim({"dying_memcgs", "wasted_memory"}, T0 + timedelta(minutes=3)) == {
        "wasted_memory"}
    with sessions.begin() as s:
        assert store.mark_notified(s, "vm-a", {"dying_memcgs"}, T0, T0 + timedelta(seconds=1)) == 1
        assert store.claim_alerts(s, "vm-b", {"dying_memcgs"}, T0) == {"dying_memcgs"}
    with sessions() as s:
        rows = [(r.host_name, r.rule, r.fired_at, r.notified_at) for r in s.scalars(
            select(m.AlertState).order_by(m.AlertState.host_name, m.AlertState.rule))]
    assert rows == [("vm-a", "dying_memcgs", T0, T0 + timedelta(seconds=1)),
                    ("vm-a", "wasted_memory", T0 + timedelta(minutes=3), None),
                    ("vm-b", "dying_memcgs", T0, None)]
    assert claim(set(), T0 + timedelta(minutes=4)) == set()  # nothing fires: every row goes
    with sessions() as s:
        assert [r.host_name for r in s.scalars(select(m.AlertState))] == ["vm-b"]
    engine.dispose()


def test_concurrent_claims_have_one_winner(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    threads = 8
    start = threading.Barrier(threads)
    won: list[set[str]] = []
    lock = threading.Lock()

    def claim() -> None:
        start.wait(timeout=10)
        with sessions.begin() as s:
            got = store.claim_alerts(s, "vm-a", {"dying_memcgs", "memcg_id_limit"}, T0)
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
