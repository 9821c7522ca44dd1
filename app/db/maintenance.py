"""The server's own upkeep: hourly rollups and raw-data retention, every few minutes.

Long ranges, the fleet sparklines and the model's history read the hourly rollups
(`app/db/retention.py`); without them a page's cost grows with the history again. `slabscope
retention` does the same job from cron; this thread makes a server that nobody scheduled
anything for behave the same. It is safe with many server processes: `retention.run`
serializes itself in the database (an advisory lock on PostgreSQL, an immediate transaction
on SQLite), and a run that finds nothing new does almost nothing.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.db import retention

log = logging.getLogger("slabscope.maintenance")


class Maintenance:
    """Runs retention.run every `interval_seconds` in a daemon thread until stopped."""

    def __init__(self, sessions: sessionmaker[Session], interval_seconds: float,
                 raw_days: float) -> None:
        self.sessions = sessions
        self.interval = interval_seconds
        self.raw_days = raw_days
        self.stop_event = threading.Event()
        self.runs = 0
        self.failures = 0
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> retention.RetentionReport | None:
        """One pass; a database error is logged and counted, never raised."""
        try:
            with self.sessions.begin() as s:
                report = retention.run(s, now or datetime.now(UTC), self.raw_days)
        except SQLAlchemyError as err:
            self.failures += 1
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            log.warning("rollup and retention failed, will retry: %s", first[:300])
            return None
        self.runs += 1
        return report

    def _loop(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.run_once()

    def start(self) -> None:
        """Start the thread (no-op when the interval is 0)."""
        if self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="slabscope-maintenance",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the pass in progress."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
