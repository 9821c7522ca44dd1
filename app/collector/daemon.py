"""The collector loop: collect -> store, one transaction per tick, until told to stop.

SIGTERM and SIGINT set an event; the tick in progress finishes and is stored, then the loop
ends, so a stop costs at most one interval and never a completed tick. When the database is
down, finished snapshots wait in a bounded in-memory backlog and are written in order once it
answers again; the oldest are dropped (and counted, and logged) only when the bound is hit.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import FrameType

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.collector.oncelog import OnceLog
from app.collector.scrape import Collector
from app.db import store
from app.domain.samples import Snapshot

log = logging.getLogger("slabscope.collector")

BACKLOG_MAX = 1000  # snapshots kept while the database is down (~80 kB each)


@dataclass(slots=True)
class DaemonStats:
    """What the daemon did (for logs, tests and, later, metrics)."""

    ticks: int = 0
    stored: int = 0
    dropped: int = 0
    db_failures: int = 0


class Daemon:
    """Runs a Collector every `interval_seconds` into the database until `stop` is set."""

    def __init__(self, collector: Collector, sessions: sessionmaker[Session],
                 interval_seconds: float, *, stop: threading.Event | None = None,
                 max_ticks: int | None = None, backlog_max: int = BACKLOG_MAX) -> None:
        self.collector = collector
        self.sessions = sessions
        self.interval = interval_seconds
        self.stop = stop or threading.Event()
        self.max_ticks = max_ticks
        self.backlog: deque[Snapshot] = deque()
        self.backlog_max = backlog_max
        self.stats = DaemonStats()
        self._once = OnceLog(log)

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT end the loop after the tick in progress."""
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: finishing the tick in progress, then stopping",
                     signal.Signals(signum).name)
            self.stop.set()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def seed_from_database(self, hostname: str) -> None:
        """Carry removal tracking over a restart: the last stored cgroups are 'previous'."""
        try:
            with self.sessions() as s:
                seed = store.latest_cgroups(s, hostname)
        except SQLAlchemyError as err:
            log.warning("could not read the last scrape to seed removals: %s", _short(err))
            return
        if seed is not None:
            self.collector.seed_previous(*seed)

    def tick(self) -> None:
        """Collect once and store everything pending."""
        snap = self.collector.collect()
        self.stats.ticks += 1
        self._once.snapshot_errors(snap)
        if len(self.backlog) >= self.backlog_max:
            self.backlog.popleft()
            self.stats.dropped += 1
            log.error("database backlog full (%d): dropped the oldest snapshot (%d dropped)",
                      self.backlog_max, self.stats.dropped)
        self.backlog.append(snap)
        self.flush()

    def flush(self) -> None:
        """Write pending snapshots in order, one transaction each; stop at the first failure."""
        while self.backlog:
            snap = self.backlog[0]
            try:
                with self.sessions.begin() as s:
                    store.write_snapshot(s, snap)
            except SQLAlchemyError as err:
                self.stats.db_failures += 1
                log.error("database write failed, %d snapshot(s) kept for retry: %s",
                          len(self.backlog), _short(err))
                return
            self.backlog.popleft()
            self.stats.stored += 1

    def run(self) -> DaemonStats:
        """Tick until stopped; each wait is `interval - elapsed` on a monotonic clock."""
        while not self.stop.is_set():
            start = time.monotonic()
            self.tick()
            if self.max_ticks is not None and self.stats.ticks >= self.max_ticks:
                break
            elapsed = time.monotonic() - start
            if elapsed > self.interval:
                log.warning("tick took %.2fs, longer than the %.2fs interval", elapsed,
                            self.interval)
            self.stop.wait(max(0.0, self.interval - elapsed))
        if self.backlog:
            self.flush()
            if self.backlog:
                log.error("stopping with %d snapshot(s) the database did not take",
                          len(self.backlog))
        log.info("stopped after %d ticks (%d stored)", self.stats.ticks, self.stats.stored)
        return self.stats


def _short(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:300]
