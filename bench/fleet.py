#!/usr/bin/env python3
"""A fleet pushing to one server through the collector's own Spool and Pusher, under faults.

N simulated hosts (default 1000) each build snapshots with the collector's encoder
(app.domain.snapshot_json.snapshot_to_dict of a Snapshot, gzip, as the push sink sends them),
put them in their own on-disk `Spool` and send them with their own `Pusher`. Host data goes
every --interval (30 s); each host carries --cgroups N cgroups whose data comes at the
collector's default cadence (settings): the series table every 300 s, the whole memory.stat
table every 6 h, staggered over hosts; every cgroup is sent once as new, in a warm-up before
the measured phases. The server is `slabscope serve --workers N` (or uvicorn --factory
app.main:create_app --workers N where serve has no --workers yet) on a PostgreSQL cluster of
the bench's own (so it can restart it without disturbing anyone), on loopback.

Phases, each with its own latency of every push (HTTP round trip, successes) and delay from a
snapshot's making to its storing:
  steady (--minutes) -> server stopped (--outage s) -> recovery -> PostgreSQL restarted ->
  recovery (spools drained after each recovery); then the rows are counted: every snapshot
  exactly once. PostgreSQL growth per day is extrapolated from the steady phase.
Targets (issue 8): 1,000 hosts x 1,000 cgroups, `--workers 2`: p99 < 250 ms, nothing lost,
nothing twice.

Usage: python bench/fleet.py [--quick] [--hosts 1000] [--cgroups 1000] [--workers 2]
                             [--interval 30] [--minutes 5] [--outage 60]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from app.collector.push import Pusher
from app.collector.scrape import Collector, CollectorOptions
from app.collector.sources._files import parse_flat_keyed
from app.config import Settings
from app.db.migrate import upgrade
from app.domain.cgtable import CgroupTable, table_from_rows
from app.domain.samples import CgroupSample, Snapshot
from app.domain.snapshot_json import snapshot_to_dict
from app.fleet.tokens import token_hash
from bench._fleetrun import Fleet, Server, check, phase_line
from bench._pgcluster import Cluster

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "fixtures" / "host-6.18"
STAT = HOST / "sys/fs/cgroup/memory/process_api/2fc70cf2b32325a09a5a8fda40c1b553/memory.stat"
SERIES_KEYS = ("cache", "rss", "shmem", "dirty", "writeback", "swap", "total_cache",
               "total_rss", "total_shmem")
# Replaced in each body by the push's own time: the encoder decides where taken_at goes.
PLACEHOLDER_AT = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)


class Bodies:
    """Snapshot bodies of one kind each, encoded once, stamped per push (host, id, time)."""

    def __init__(self, cgroups: int, seed: int = 8) -> None:
        base = Collector(CollectorOptions(proc_root=str(HOST / "proc"),
                                          sys_root=str(HOST / "sys"))).collect()
        stat = parse_flat_keyed(str(STAT), STAT.read_text())
        rng = random.Random(seed)
        keys = [("memory", f"/fleet.slice/job-{i}.service") for i in range(cgroups)]
        # Values differ per cgroup (page-aligned, as the kernel's are): frames compress as a
        # real host's would, not as one repeated row.
        rows = [{k: (v and rng.randrange(1, 1 << 18) * 4096) for k, v in stat.items()}
                for _ in keys]
        series = table_from_rows(["memory.usage", *(f"memory.stat:{k}" for k in SERIES_KEYS)],
                                 keys, [{"memory.usage": r["rss"] + r["cache"],
                                         **{f"memory.stat:{k}": r[k] for k in SERIES_KEYS}}
                                        for r in rows])
        full = table_from_rows([f"memory.stat:{k}" for k in stat], keys,
                               [{f"memory.stat:{k}": v for k, v in r.items()} for r in rows])
        new = tuple(CgroupSample(h, p, r, r["rss"] + r["cache"])
                    for (h, p), r in zip(keys, rows, strict=True))
        base = replace(base, taken_at=PLACEHOLDER_AT, removed=(),
                       host=replace(base.host, hostname="__HOST__"))
        tables = {"host": ((), None, None), "series": ((), series, None),
                  "full": ((), series, full), "new": (new, series, full)}
        # Whole meminfo/vmstat ride along at their own cadence (host_full); the host-level
        # figures that pages read go with every push either way.
        self.text = {f"{kind}{'/host_full' if hf else ''}": self._encode(
            replace(base, host_full=hf), *(parts if cgroups else ((), None, None)))
            for kind, parts in tables.items() for hf in (False, True)}

    @staticmethod
    def _encode(base: Snapshot, new: tuple[CgroupSample, ...], series: CgroupTable | None,
                full: CgroupTable | None) -> str:
        """The JSON text of one kind of push, with placeholders for host, id and time."""
        s = replace(base, new_cgroups=new, series=series, full=full)
        return json.dumps({"snapshot_id": "__SID__", "snapshot": snapshot_to_dict(s),
                           "spool_dropped_total": 0})

    def body(self, kind: str, host: str, sid: str) -> bytes:
        """One push's gzip body, as the collector's push sink makes it."""
        now = datetime.now(UTC).isoformat()
        raw = (self.text[kind].replace("__HOST__", host).replace("__SID__", sid)
               .replace(PLACEHOLDER_AT.isoformat(), now))
        return gzip.compress(raw.encode(), 5)


def every(seconds: float, interval: float) -> int:
    """A cadence in ticks of the host interval (at least every tick)."""
    return max(1, round(seconds / interval))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--cgroups", type=int, default=1000, help="cgroups per host")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--interval", type=float, default=30.0, help="host data, seconds")
    ap.add_argument("--minutes", type=float, default=5.0, help="steady phase")
    ap.add_argument("--outage", type=float, default=60.0, help="server stopped, seconds")
    ap.add_argument("--recovery", type=float, default=30.0, help="load after each fault, s")
    ap.add_argument("--quick", action="store_true",
                    help="50 hosts x 200 cgroups every 5 s, 30 s steady, 10 s outage")
    a = ap.parse_args()
    if a.quick:
        a.hosts, a.cgroups, a.interval, a.minutes, a.outage, a.recovery = 50, 200, 5.0, .5, 10, 10
    defaults = Settings.model_fields
    cadence = {k: every(defaults[f"{k}_interval_seconds"].default, a.interval)
               for k in ("cgroup_series", "cgroup_full_stat", "host_full")}
    logging.getLogger("slabscope.push").setLevel(logging.CRITICAL)  # 1,000 pushers' retries
    pg = Cluster()
    name = f"slabscope_fleet_{uuid.uuid4().hex[:8]}"
    admin = {"host": "127.0.0.1", "port": pg.port, "user": "postgres", "dbname": "postgres",
             "autocommit": True}
    kw: dict[str, Any] = dict(admin, dbname=name)
    spool_root = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="slabscope-fleet-"))
    server: Server | None = None
    fleet: Fleet | None = None
    try:
        with psycopg.connect(**admin) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/{name}"
        upgrade(url)
        names = [f"host-{i:04d}" for i in range(a.hosts)]
        with psycopg.connect(**kw) as c, c.cursor() as cur:
            cur.executemany("INSERT INTO host_token (host_name, token_sha256, created_at) "
                            "VALUES (%s, %s, now())", [(h, token_hash(f"token-{h}"))
                                                       for h in names])
        bodies = Bodies(a.cgroups)
        server = Server(url, a.workers)
        fleet = Fleet(server.url, names, a.interval, spool_root, bodies, cadence,
                      lambda url, tok, spool: Pusher(url, tok, spool, timeout=30))
        sizes = {k: len(bodies.body(k, "host-0000", "x" * 32)) for k in bodies.text
                 if "/" not in k}
        print(f"{a.hosts} hosts x {a.cgroups} cgroups, host data every {a.interval:g} s "
              f"({a.hosts / a.interval:.1f} pushes/s); in ticks: cgroup series every "
              f"{cadence['cgroup_series']}, whole memory.stat every "
              f"{cadence['cgroup_full_stat']}, whole meminfo/vmstat every "
              f"{cadence['host_full']}; server {server.how}, PostgreSQL (private cluster), "
              f"loopback")
        print("gzip bytes per push: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
        fleet.warm_up()
        print(phase_line(fleet, "warm-up"))
        size0 = db_size(kw)
        t0 = time.monotonic()
        fleet.run("steady", a.minutes * 60)
        fleet.drain("steady")
        steady_s = time.monotonic() - t0
        grown = db_size(kw) - size0
        print(phase_line(fleet, "steady") + "   (target p99 < 250 ms)")
        print(f"PostgreSQL growth: {grown / 2**20:,.1f} MiB in {steady_s:.0f} s = "
              f"{grown / steady_s * 86_400 / 2**30:,.2f} GiB per day "
              f"(pg_database_size, steady phase extrapolated)")
        server.stop()
        fleet.run("server stopped", a.outage)
        server.start()
        fleet.run("recovery after server", a.recovery)
        fleet.drain("recovery after server")
        restart = threading.Thread(target=pg.restart)
        restart.start()  # under load: the hosts keep pushing while it goes down and up
        fleet.run("PostgreSQL restarted", 10)
        restart.join()
        fleet.run("recovery after PostgreSQL", a.recovery)
        fleet.drain("recovery after PostgreSQL")
        for p in ("server stopped", "recovery after server", "PostgreSQL restarted",
                  "recovery after PostgreSQL"):
            print(phase_line(fleet, p))
        print(check(kw, fleet))
    finally:
        if fleet is not None:
            fleet.close()
        if server is not None:
            server.stop()
        shutil.rmtree(spool_root, ignore_errors=True)
        pg.remove()


def db_size(kw: dict[str, Any]) -> int:
    """pg_database_size of the bench's database."""
    with psycopg.connect(**kw) as c:
        row = c.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


if __name__ == "__main__":
    main()
