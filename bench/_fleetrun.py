"""The moving parts of bench/fleet.py: the simulated hosts, the server, the final count.

Each host owns a Spool and a Pusher (app/collector/push.py, used through its public API:
put, flush, sent). Latency is timed around the HTTP call the Pusher makes (urllib's
urlopen, wrapped once for the whole process), so every push is counted, in every phase,
including those that send a backlog after an outage.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg

from app.collector.push import Pusher, Spool
from bench._interleave import pct

ROOT = Path(__file__).resolve().parent.parent


class BodyMaker(Protocol):
    def body(self, kind: str, host: str, sid: str) -> bytes: ...


@dataclass
class PhaseStats:
    """What one phase saw: pushes made, HTTP round trips, failures, making-to-storing delays."""

    made: int = 0
    latency: list[float] = field(default_factory=list)
    delay: list[float] = field(default_factory=list)
    failed: int = 0


@dataclass
class _Host:
    index: int
    name: str
    spool: Spool
    pusher: Pusher
    lock: threading.Lock = field(default_factory=threading.Lock)
    ticks: int = 0


class Fleet:
    """Simulated hosts, each ticking every interval, staggered evenly over it."""

    def __init__(self, url: str, names: list[str], interval: float, spool_root: Path,
                 bodies: BodyMaker, cadence: dict[str, int],
                 make_pusher: Callable[[str, str, Spool], Pusher]) -> None:
        self.interval = interval
        self.bodies = bodies
        self.cadence = cadence  # in ticks: cgroup_series, cgroup_full_stat, host_full
        self.hosts = []
        for i, n in enumerate(names):
            spool = Spool(str(spool_root / n), 100_000)
            self.hosts.append(_Host(i, n, spool, make_pusher(url, f"token-{n}", spool)))
        self.phase = "warm-up"
        self.stats: dict[str, PhaseStats] = {}
        self.made: list[str] = []
        self._made_at: dict[int, float] = {}  # hash(body) -> when it was made
        self.pool = ThreadPoolExecutor(max_workers=48)
        self.lagging = 0.0  # the most the load generator fell behind its schedule, seconds
        self._urlopen = urllib.request.urlopen
        urllib.request.urlopen = self._timed  # type: ignore[assignment]

    def _stat(self) -> PhaseStats:
        return self.stats.setdefault(self.phase, PhaseStats())

    def _timed(self, req: Any, *args: Any, **kw: Any) -> Any:
        """urlopen, timed when it carries a snapshot (the Pusher's POSTs)."""
        data = getattr(req, "data", None)
        t = time.perf_counter()
        try:
            resp = self._urlopen(req, *args, **kw)
        except (urllib.error.URLError, OSError):
            if data is not None:
                self._stat().failed += 1
            raise
        if data is not None:
            now = time.perf_counter()
            st = self._stat()
            st.latency.append(now - t)
            made = self._made_at.pop(hash(data), None)
            if made is not None:
                st.delay.append(now - made)
        return resp

    def _kind(self, h: _Host) -> str:
        """What this tick of this host carries; each cadence staggered over the hosts."""
        c, k, i = self.cadence, h.ticks, h.index
        host_full = "/host_full" if k == 0 or (k + i * 31) % c["host_full"] == 0 else ""
        if k == 0:  # the first snapshot registers every cgroup with its memory.stat
            return "new" + host_full
        if (k + i * 7919) % c["cgroup_full_stat"] == 0:
            return "full" + host_full
        return ("series" if (k + i) % c["cgroup_series"] == 0 else "host") + host_full

    def tick(self, h: _Host) -> None:
        """One collector tick of one host: spool the snapshot, then flush the spool."""
        with h.lock:
            sid = uuid.uuid4().hex
            body = self.bodies.body(self._kind(h), h.name, sid)
            self._made_at[hash(body)] = time.perf_counter()
            h.spool.put(sid, body)
            self.made.append(sid)
            self._stat().made += 1
            h.ticks += 1
            h.pusher.flush()

    def warm_up(self) -> None:
        """Every host's first snapshot (all its cgroups new), then the spools drained."""
        self.phase = "warm-up"
        list(self.pool.map(self.tick, self.hosts))
        self.drain("warm-up")

    def run(self, phase: str, seconds: float) -> None:
        """Tick every host every interval for `seconds`, hosts spread evenly."""
        self.phase = phase
        start = time.monotonic()
        n = len(self.hosts)
        k = 0
        inflight: list[Future[None]] = []
        while time.monotonic() - start < seconds:
            due = start + k * self.interval / n
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, 0.05))
                continue
            self.lagging = max(self.lagging, -delay)
            inflight.append(self.pool.submit(self.tick, self.hosts[k % n]))
            k += 1
        for f in inflight:
            f.result()

    def drain(self, phase: str, limit: float = 600) -> None:
        """Flush every spool until none has anything pending."""
        self.phase = phase
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            left = [h for h in self.hosts if h.spool.pending()]
            if not left:
                return
            list(self.pool.map(self._flush, left))
            time.sleep(0.5)
        raise SystemExit(f"spools did not drain in {limit:.0f} s")

    @staticmethod
    def _flush(h: _Host) -> None:
        with h.lock:
            h.pusher.flush()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        urllib.request.urlopen = self._urlopen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """slabscope's web tier with N workers, on a free loopback port."""

    def __init__(self, db_url: str, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, SLABSCOPE_DATABASE_URL=db_url,
                        SLABSCOPE_LOG_LEVEL="WARNING")
        helptext = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--help"],
                                  cwd=ROOT, capture_output=True, text=True).stdout
        if "--workers" in helptext:
            self.cmd = [sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port",
                        str(self.port), "--workers", str(workers)]
            self.how = f"`slabscope serve --workers {workers}`"
        else:  # until `serve --workers` exists: the same app, through uvicorn's own workers
            self.cmd = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
                        "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                        str(workers), "--log-level", "warning", "--no-access-log"]
            self.how = (f"uvicorn --factory app.main:create_app --workers {workers} "
                        "(serve has no --workers here)")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env,
                                     stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def phase_line(fleet: Fleet, phase: str) -> str:
    """One phase's figures, in milliseconds."""
    st = fleet.stats.get(phase, PhaseStats())
    lat, dl = st.latency, st.delay
    return (f"{phase:<26} made {st.made:>6,}  pushes ok {len(lat):>6,}  failed "
            f"{st.failed:>5,}  latency p50 {pct(lat, .5) * 1e3:6.0f} p95 "
            f"{pct(lat, .95) * 1e3:6.0f} p99 {pct(lat, .99) * 1e3:6.0f} ms  "
            f"made->stored p50 {pct(dl, .5):6.2f} p99 {pct(dl, .99):6.2f} max "
            f"{max(dl, default=float('nan')):6.2f} s")


def check(kw: dict[str, Any], fleet: Fleet) -> str:
    """Every snapshot made is stored exactly once: rows, distinct ids, missing, spool state."""
    with psycopg.connect(**kw) as c:
        stored = [r[0] for r in c.execute("SELECT snapshot_id FROM scrape")]
    made = set(fleet.made)
    distinct = set(stored)
    missing = len(made - distinct)
    sent = sum(h.pusher.sent for h in fleet.hosts)
    dropped = sum(h.spool.dropped for h in fleet.hosts)
    rejected = sum(len(list((h.spool.dir / "rejected").iterdir())) for h in fleet.hosts)
    ok = len(stored) == len(distinct) == len(made) and not missing
    return (f"{len(made):,} snapshots made, {sent:,} sent by the Pushers, {len(stored):,} rows "
            f"({len(distinct):,} distinct), {missing} missing, {dropped} dropped from spools, "
            f"{rejected} rejected: "
            f"{'every snapshot stored exactly once' if ok else 'LOST OR DUPLICATED'}; "
            f"load generator at most {fleet.lagging:.2f} s behind schedule")
