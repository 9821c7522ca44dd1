#!/usr/bin/env python3
"""A fleet pushing to one server, under load and under faults (issue 5 targets).

N simulated hosts (default 1000) each push a real snapshot (this VM's capture: 235 caches,
padded to 50 cgroups) every 30 s to one `slabscope serve` on PostgreSQL, on loopback, through
the collector's own spool (app/collector/push.py's Spool, on disk) and the same HTTP call.
  1. steady load for --minutes (default 5): p50/p95/p99 ingest latency, every snapshot stored;
  2. the server stopped for --outage seconds (default 60) under load, then started again;
  3. PostgreSQL restarted under load;
after each phase the spools drain and the rows are counted: every snapshot exactly once.
Targets: p99 < 250 ms at 1000 hosts / 30 s; nothing lost, nothing twice.

Usage: python bench/fleet.py [--hosts 1000] [--interval 30] [--minutes 5] [--outage 60]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from app.api.routes.ingest import token_hash
from app.collector.push import Spool
from app.collector.scrape import Collector, CollectorOptions
from app.db.migrate import upgrade
from app.domain.samples import CgroupSample
from app.domain.snapshot_json import snapshot_to_dict

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "fixtures" / "host-6.18"


def template() -> str:
    s = Collector(CollectorOptions(proc_root=str(HOST / "proc"),
                                   sys_root=str(HOST / "sys"))).collect()
    extra = tuple(CgroupSample("memory", f"/fleet.slice/job-{i}.service",
                               {"cache": 65536 * i, "rss": 4096 * i, "shmem": 0}, 1_000_000 + i,
                               4096 * i) for i in range(50 - len(s.cgroups)))
    s = replace(s, host=replace(s.host, hostname="__HOST__"), cgroups=s.cgroups + extra)
    d = snapshot_to_dict(s)
    d["taken_at"] = "__TS__"
    return json.dumps({"snapshot_id": "__SID__", "snapshot": d})


class Fleet:
    def __init__(self, url: str, hosts: int, interval: float, spool_root: Path) -> None:
        self.url = url + "/api/v1/ingest"
        self.interval = interval
        self.tpl = template()
        self.hosts = [f"host-{i:04d}" for i in range(hosts)]
        self.spools = {h: Spool(str(spool_root / h), 100_000) for h in self.hosts}
        self.locks = {h: threading.Lock() for h in self.hosts}
        self.made: list[str] = []
        self.latency: list[float] = []
        self.errors = 0
        self.record = True
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=48)

    def body(self, host: str) -> tuple[str, bytes]:
        sid = uuid.uuid4().hex
        now = time.time_ns()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now / 1e9)) + \
            f".{now // 1000 % 10**6:06d}+00:00"
        raw = self.tpl.replace("__HOST__", host).replace("__SID__", sid).replace("__TS__", ts)
        return sid, gzip.compress(raw.encode(), 5)

    def tick(self, host: str) -> None:
        sid, body = self.body(host)
        with self.locks[host]:
            self.spools[host].put(sid, body)
            self.made.append(sid)
            self.flush(host)

    def flush(self, host: str) -> None:
        spool = self.spools[host]
        pending = spool.pending()
        for path in pending:
            req = urllib.request.Request(self.url, data=path.read_bytes(), method="POST",
                                         headers={"Authorization": f"Bearer token-{host}",
                                                  "Content-Encoding": "gzip",
                                                  "Content-Type": "application/json"})
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
            except (urllib.error.URLError, OSError):
                self.errors += 1
                return
            if self.record and len(pending) == 1:
                self.latency.append(time.perf_counter() - t)
            path.unlink()

    def run_for(self, seconds: float) -> None:
        """Each host ticks every interval, hosts spread evenly over it."""
        start = time.monotonic()
        n = len(self.hosts)
        k = 0
        while time.monotonic() - start < seconds:
            due = start + k * self.interval / n
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, 0.05))
                continue
            self.pool.submit(self.tick, self.hosts[k % n])
            k += 1

    def drain(self, limit: float = 300) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            left = [h for h in self.hosts if self.spools[h].pending()]
            if not left:
                return
            list(self.pool.map(lambda h: self._flush_locked(h), left))
            time.sleep(0.5)
        raise SystemExit("spools did not drain")

    def _flush_locked(self, host: str) -> None:
        with self.locks[host]:
            self.flush(host)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SLABSCOPE_DATABASE_URL=url, SLABSCOPE_LOG_LEVEL="WARNING")
    p = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port",
                          str(port)], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return p
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def check(conn_kw: dict[str, Any], made: list[str]) -> tuple[int, int, int]:
    with psycopg.connect(**conn_kw) as c:
        rows = c.execute("SELECT count(*), count(DISTINCT snapshot_id) FROM scrape").fetchone()
        assert rows is not None
        stored = {r[0] for r in c.execute("SELECT snapshot_id FROM scrape")}
    missing = len(set(made) - stored)
    return int(rows[0]), int(rows[1]), missing


def verdict(rows: int, distinct: int, missing: int, made: list[str]) -> str:
    ok = rows == distinct == len(made) and not missing
    return "every snapshot stored exactly once" if ok else "LOST OR DUPLICATED"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--outage", type=float, default=60.0)
    ap.add_argument("--admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    a = ap.parse_args()
    from sqlalchemy.engine import make_url
    u = make_url(a.admin)
    name = f"slabscope_fleet_{uuid.uuid4().hex[:8]}"
    admin_kw = {"host": u.host, "port": u.port or 5432, "user": u.username,
                "dbname": u.database, "autocommit": True}
    with psycopg.connect(**admin_kw) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = str(u.set(database=name).render_as_string(hide_password=False))
    kw = dict(admin_kw, dbname=name)
    upgrade(url)
    with psycopg.connect(**kw) as c, c.cursor() as cur:
        cur.executemany("INSERT INTO host_token (host_name, token_sha256, created_at) "
                        "VALUES (%s, %s, now())",
                        [(f"host-{i:04d}", token_hash(f"token-host-{i:04d}"))
                         for i in range(a.hosts)])
    port = free_port()
    server = start_server(url, port)
    spool_root = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="slabscope-fleet-"))
    fleet = Fleet(f"http://127.0.0.1:{port}", a.hosts, a.interval, spool_root)
    rate = a.hosts / a.interval
    try:
        print(f"{a.hosts} hosts every {a.interval:g} s = {rate:.1f} pushes/s, "
              f"{len(fleet.body('x')[1]):,} bytes gzip each; server on PostgreSQL, loopback")
        # 1. steady load
        fleet.run_for(a.minutes * 60)
        fleet.drain()
        rows, distinct, missing = check(kw, fleet.made)
        lat = fleet.latency
        print(f"steady {a.minutes:g} min: {len(fleet.made):,} snapshots, "
              f"{len(fleet.made) / (a.minutes * 60):.1f}/s; latency p50 "
              f"{statistics.median(lat) * 1e3:.0f} ms, p95 {pct(lat, .95) * 1e3:.0f} ms, "
              f"p99 {pct(lat, .99) * 1e3:.0f} ms   (target p99 < 250 ms); rows {rows:,} "
              f"(distinct {distinct:,}, missing {missing})")
        fleet.record = False
        # 2. the server goes away for a minute under load
        t0 = time.monotonic()
        threading.Timer(5, lambda: server.send_signal(signal.SIGTERM)).start()
        fleet.run_for(5 + a.outage)
        server.wait(timeout=30)
        server = start_server(url, port)
        fleet.run_for(10)
        fleet.drain()
        rows, distinct, missing = check(kw, fleet.made)
        print(f"server stopped {a.outage:g} s under load: {len(fleet.made):,} snapshots made, "
              f"rows {rows:,}, distinct {distinct:,}, missing {missing}, "
              f"{verdict(rows, distinct, missing, fleet.made)} "
              f"(recovered in {time.monotonic() - t0:.0f} s)")
        # 3. PostgreSQL restarts under load
        etc = "/etc/postgresql"
        ver = sorted(os.listdir(etc))[-1] if os.path.isdir(etc) else None
        if ver and shutil.which("pg_ctlcluster"):
            def restart() -> None:
                subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", ver, "main",
                                "restart"], check=False, capture_output=True)
            threading.Timer(5, restart).start()
            fleet.run_for(30)
            fleet.drain()
            rows, distinct, missing = check(kw, fleet.made)
            print(f"PostgreSQL restarted under load: {len(fleet.made):,} snapshots made, rows "
                  f"{rows:,}, distinct {distinct:,}, missing {missing}, "
                  f"{verdict(rows, distinct, missing, fleet.made)}")
        else:
            print("PostgreSQL restart: skipped (no pg_ctlcluster here)")
    finally:
        fleet.pool.shutdown(wait=False, cancel_futures=True)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(spool_root, ignore_errors=True)
        with psycopg.connect(**admin_kw) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
