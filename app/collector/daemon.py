"""The collector loop: collect -> sink, one snapshot per tick, until told to stop.

One loop whatever the snapshots go to: a `Sink` (the database, `dbsink.DatabaseSink`, or a
central server, `push.PushSink`) takes each snapshot or raises `SinkError`. SIGTERM and
SIGINT set an event; the tick in progress finishes and is handed over, then the loop ends, so
a stop costs at most one interval and never a completed tick. While the sink fails, finished
snapshots wait in a bounded in-memory backlog and go out in order once it answers again; the
oldest are dropped (and counted, and logged) only when the bound is hit.

This module imports no database code: a push-mode collector stays small.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from app.collector.oncelog import OnceLog
from app.collector.scrape import Collector
from app.domain.samples import Snapshot

log = logging.getLogger("slabscope.collector")

BACKLOG_MAX = 1000  # snapshots kept while the sink fails
# ... and at most this many bytes of per-cgroup tables (a full table of 10,000 cgroups is
# ~5 MB): an outage must not grow the daemon without bound.
BACKLOG_MAX_BYTES = 32 << 20


class SinkError(Exception):
    """The sink could not take a snapshot now; the daemon keeps it and retries."""


class Sink(Protocol):
    """Where snapshots go: the database or a central server."""

    def write(self, snap: Snapshot) -> None:
        """Take one snapshot durably, or raise SinkError."""

    def close(self) -> None:
        """Last chance to send what is pending; release resources."""


@dataclass(slots=True)
class DaemonStats:
    """What the daemon did (for logs, tests and, later, metrics)."""

    ticks: int = 0
    stored: int = 0
    dropped: int = 0
    sink_failures: int = 0
    collect_cpu_seconds: float = 0.0  # process CPU spent in collect(), all ticks


def snapshot_weight(snap: Snapshot) -> int:
    """Rough bytes a snapshot holds in memory (its tables and new cgroups dominate)."""
    n = 20_000 + 2_000 * (len(snap.new_cgroups) + len(snap.removed))
    for t in (snap.series, snap.full):
        if t is not None:
            n += 9 * len(t) * len(t.columns) + 100 * len(t)
    return n


class Daemon:
    """Runs a Collector every `interval_seconds` into a sink until `stop` is set."""

    def __init__(self, collector: Collector, sink: Sink, interval_seconds: float, *,
                 stop: threading.Event | None = None, max_ticks: int | None = None,
                 backlog_max: int = BACKLOG_MAX, backlog_max_bytes: int = BACKLOG_MAX_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.collector = collector
        self.sink = sink
        self.interval = interval_seconds
        self.stop = stop or threading.Event()
        self.max_ticks = max_ticks
        self.backlog: deque[Snapshot] = deque()
        self.backlog_max = backlog_max
        self.backlog_max_bytes = backlog_max_bytes
        self._backlog_bytes = 0
        self.clock = clock
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

    def tick(self) -> None:
        """Collect once and hand everything pending to the sink."""
        cpu = time.process_time()
        snap = self.collector.collect()
        self.stats.collect_cpu_seconds += time.process_time() - cpu
        self.stats.ticks += 1
        self._once.snapshot_errors(snap)
        self.backlog.append(snap)
        self._backlog_bytes += snapshot_weight(snap)
        while len(self.backlog) > 1 and (len(self.backlog) > self.backlog_max
                                         or self._backlog_bytes > self.backlog_max_bytes):
            self._backlog_bytes -= snapshot_weight(self.backlog.popleft())
            self.stats.dropped += 1
            log.error("backlog full (%d snapshots, %d MB max): dropped the oldest "
                      "(%d dropped)", self.backlog_max, self.backlog_max_bytes >> 20,
                      self.stats.dropped)
        self.flush()

    def flush(self) -> None:
        """Hand pending snapshots over in order; stop at the first failure."""
        while self.backlog:
            snap = self.backlog[0]
            try:
                self.sink.write(snap)
            except SinkError as err:
                self.stats.sink_failures += 1
                log.error("write failed, %d snapshot(s) kept for retry: %s",
                          len(self.backlog), err)
                return
            self.backlog.popleft()
            self._backlog_bytes -= snapshot_weight(snap)
            self.stats.stored += 1

    def run(self) -> DaemonStats:
        """Tick until stopped; each wait is `interval - elapsed` on a monotonic clock."""
        while not self.stop.is_set():
            start = self.clock()
            self.tick()
            if self.max_ticks is not None and self.stats.ticks >= self.max_ticks:
                break
            elapsed = self.clock() - start
            if elapsed > self.interval:
                log.warning("tick took %.2fs, longer than the %.2fs interval", elapsed,
                            self.interval)
            self.stop.wait(max(0.0, self.interval - elapsed))
        if self.backlog:
            self.flush()
            if self.backlog:
                log.error("stopping with %d snapshot(s) the sink did not take",
                          len(self.backlog))
        self.sink.close()
        log.info("stopped after %d ticks (%d stored)", self.stats.ticks, self.stats.stored)
        return self.stats


def short(err: BaseException) -> str:
    """The first line of an error, bounded (database errors carry whole statements)."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:300]
