"""Sinks for the daemon tests: one that always fails, one that writes a real SQLite table."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.collector.daemon import SinkError
from app.domain.samples import Snapshot


class FailingSink:
    """Refuses every snapshot, as a database that is down."""

    def write(self, snap: Snapshot) -> None:
        raise SinkError("down")

    def close(self) -> None:
        pass


class FakeStore:
    """Stands in for store.write_snapshot: one row per snapshot in a real table.

    It runs inside the DatabaseSink's transaction, so commit and rollback are the real ones;
    `fail_next` makes the next write raise a database error after inserting (rolled back).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.fail_next = False
        with engine.begin() as c:
            c.execute(text("CREATE TABLE IF NOT EXISTS fake_scrape (taken_at TEXT, dying INT, "
                           "series_rows INT, full_rows INT, new INT, removed INT)"))

    def write(self, session: Session, snap: Snapshot) -> None:
        session.execute(text("INSERT INTO fake_scrape VALUES (:t, :d, :s, :f, :n, :r)"), {
            "t": snap.taken_at.isoformat(), "d": snap.memcg.dying,
            "s": len(snap.series) if snap.series is not None else None,
            "f": len(snap.full) if snap.full is not None else None,
            "n": len(snap.new_cgroups), "r": len(snap.removed)})
        if self.fail_next:
            self.fail_next = False
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    def rows(self) -> list[tuple[str, int]]:
        with self.engine.connect() as c:
            return [(r[0], r[1]) for r in c.execute(text(
                "SELECT taken_at, dying FROM fake_scrape ORDER BY rowid"))]
