#!/usr/bin/env python3
"""slabscope at the size of the hosts it is for (issue 8): the real collector daemon, default
settings, against a synthetic host of 10,000 cgroups (5,000 dying) whose values change every
tick and which creates and removes 100 cgroups a minute (bench/scaletree.py), on SQLite and on
PostgreSQL, v2 and v1 layouts; plus the walk-versus-floor ratio of the same files.

Printed as one table, each row with its target. Database growth per day is extrapolated from
the steady state: the growth over the measured window (every tick's host data, the
per-cgroup series frames, churn), corrected by measured sizes for what a window shorter than
the cadences cannot contain (whole memory.stat frames every 6 h, whole meminfo/vmstat every
hour) and for the series frames the window held against what a day holds.

  python bench/scale.py                      # 330 s per run, 4 runs two at a time (~12 min)
  python bench/scale.py --seconds 60 --dbs sqlite --layouts v2 --cgroups 2000   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scaletree import LiveMutator, LiveTree, Mutator, Tree, build  # noqa: E402

PG_ADMIN = os.environ.get("SLABSCOPE_TEST_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DAY = 86_400.0
TICK = 15.0
SERIES_EVERY = 300.0
FULL_EVERY = 21_600.0
HOST_FULL_EVERY = 3_600.0
WALK_EVERY = 60.0
CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Db:
    """A fresh database of one kind, its size, and SQL on it."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self._name = None
        if kind == "sqlite":
            self.path = workdir / "scale.db"
            self.url = f"sqlite:///{self.path}"
        else:
            import psycopg
            from sqlalchemy.engine import make_url
            u = make_url(PG_ADMIN)
            self._admin = {"host": u.host, "port": u.port or 5432, "user": u.username,
                           "dbname": u.database, "autocommit": True}
            self._name = f"slabscope_scale_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(**self._admin) as c:
                c.execute(f'CREATE DATABASE "{self._name}"')
            self.url = u.set(database=self._name).render_as_string(hide_password=False)

    def size(self) -> int:
        if self.kind == "sqlite":
            import sqlite3
            c = sqlite3.connect(self.path, timeout=30)
            try:
                # Pages in use by every table and index as this reader sees the database
                # (WAL included): the file itself only grows at checkpoints.
                return int(c.execute("SELECT sum(pgsize) FROM dbstat").fetchone()[0])
            finally:
                c.close()
        return int(self.scalar("select pg_database_size(current_database())"))

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        from sqlalchemy import create_engine, text
        url = self.url.replace("postgresql://", "postgresql+psycopg://", 1)
        eng = create_engine(url)
        try:
            with eng.connect() as c:
                return [tuple(r) for r in c.execute(text(sql)).all()]
        finally:
            eng.dispose()

    def scalar(self, sql: str) -> Any:
        got = self.rows(sql)
        return got[0][0] if got else None

    def drop(self) -> None:
        if self._name is not None:
            import psycopg
            with psycopg.connect(**self._admin) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')


@dataclass
class Run:
    """What one daemon run measured."""

    layout: str
    db: str
    cgroups: int
    seconds: float
    ticks: int = 0
    window_s: float = 0.0
    window_bytes: int = 0
    series_in_window: int = 0
    series_frame_bytes: float = 0.0
    full_frame_bytes: float = 0.0
    host_full_bytes: float = 0.0
    growth_per_day: float = 0.0
    cpu_avg: float = 0.0
    cpu_per_tick_ms: float = 0.0
    vm_hwm_mb: float = 0.0
    removed_eligible: int = 0
    removed_with_stat: int = 0
    removed_rows: int = 0
    churn_made: int = 0
    notes: list[str] = field(default_factory=list)


def _env(tree: Tree | LiveTree, db: Db) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLABSCOPE_")}
    env.update({"SLABSCOPE_DATABASE_URL": db.url, "SLABSCOPE_PROC_ROOT": tree.proc,
                "SLABSCOPE_SYS_ROOT": tree.sys, "SLABSCOPE_LOG_LEVEL": "WARNING",
                "SLABSCOPE_HOSTNAME": tree.hostname, "PYTHONPATH": str(ROOT)})
    return env


def _wait(cond: Callable[[], bool], limit: float, what: str) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.5)
    raise TimeoutError(what)


def run_daemon(layout: str, dbkind: str, cgroups: int, dying: int, seconds: float,
               churn: float, keep: bool = False) -> Run:
    """Build a host, start the real daemon at default settings, measure, stop, check."""
    base = Path(tempfile.mkdtemp(prefix=f"slabscope-scale-{layout}-", dir="/dev/shm"))
    work = Path(tempfile.mkdtemp(prefix="slabscope-scale-db-"))
    r = Run(layout, dbkind, cgroups, seconds)
    db = Db(dbkind, work)
    live: LiveTree | None = None
    try:
        tree: Tree | LiveTree
        mut: Mutator
        if layout == "live-v1":
            tree = live = LiveTree(cgroups)
            mut = LiveMutator(live, churn_per_minute=churn)
        else:
            tree = build(base / "host", layout, cgroups, dying)
            mut = Mutator(tree, period=TICK, churn_per_minute=churn)
        env = _env(tree, db)
        subprocess.run([str(Path(sys.executable).parent / "slabscope"), "migrate"], env=env,
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        mut.start()
        t_start = time.time()
        with open(work / "daemon.log", "wb") as log:  # the child keeps its own descriptor
            # As a user starts it: `slabscope collect` validates the settings and execs the
            # lean daemon (same pid), which is what is measured.
            proc = subprocess.Popen([str(Path(sys.executable).parent / "slabscope"),
                                     "collect"], env=env, cwd=ROOT, stderr=log)
        try:
            _wait(lambda: (db.scalar("select count(*) from scrape") or 0) >= 1, 120,
                  "first tick stored")
            size_a, cpu_a, t_a = db.size(), proc_cpu(proc.pid), time.monotonic()
            ticks_a = db.scalar("select count(*) from scrape")
            series_a = db.scalar("select count(*) from cgroup_frame where kind = 'series'")
            remaining = seconds - (time.time() - t_start)
            time.sleep(max(0.0, remaining))
            size_b, cpu_b, t_b = db.size(), proc_cpu(proc.pid), time.monotonic()
            ticks_b = db.scalar("select count(*) from scrape")
            series_b = db.scalar("select count(*) from cgroup_frame where kind = 'series'")
            r.vm_hwm_mb = vm_hwm_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            mut.stop.set()
        r.ticks = int(ticks_b)
        r.window_s = t_b - t_a
        r.window_bytes = size_b - size_a
        r.series_in_window = int(series_b - series_a)
        r.cpu_avg = (cpu_b - cpu_a) / r.window_s
        r.cpu_per_tick_ms = 1000 * (cpu_b - cpu_a) / max(1, ticks_b - ticks_a)
        frames = {k: (int(n), float(b or 0)) for k, n, b in db.rows(
            "select kind, count(*), sum(length(data)) from cgroup_frame group by kind")}
        n_s, b_s = frames.get("series", (0, 0.0))
        n_f, b_f = frames.get("full", (0, 0.0))
        r.series_frame_bytes = b_s / n_s if n_s else 0.0
        r.full_frame_bytes = b_f / n_f if n_f else 0.0
        hf = db.rows("select count(*), sum(length(cast(meminfo_json as text)) + "
                     "length(cast(vmstat_json as text))) from scrape "
                     "where meminfo_json is not null")
        r.host_full_bytes = float(hf[0][1] or 0) / hf[0][0] if hf and hf[0][0] else 0.0
        per_day = r.window_bytes / r.window_s * DAY
        # What a day holds that this window could not, at measured sizes.
        want_series = r.window_s / SERIES_EVERY
        per_day += (want_series - r.series_in_window) * r.series_frame_bytes * DAY / r.window_s
        per_day += DAY / FULL_EVERY * r.full_frame_bytes
        per_day += DAY / HOST_FULL_EVERY * r.host_full_bytes
        r.growth_per_day = per_day
        _check_removed(r, db, mut, t_start, time.time())
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    finally:
        if live is not None:
            live.cleanup()
        db.drop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return r


def _check_removed(r: Run, db: Db, mut: Mutator, t0: float, t1: float) -> None:
    """Removed cgroups that lived longer than one walk, while the daemon ran, all recorded
    with a last memory.stat."""
    stored = {p: bool(has) for p, has in db.rows(
        "select path, last_memory_stat is not null from removed_cgroup")}
    r.removed_rows = len(stored)
    r.churn_made = len(mut.log)
    for rec in mut.log:
        if rec.removed is None or rec.created < t0 + 5 or rec.removed > t1 - 2 * TICK:
            continue
        if rec.removed - rec.created <= WALK_EVERY + TICK:
            continue
        r.removed_eligible += 1
        r.removed_with_stat += stored.get(rec.path, False)


def walk_ratio(layout: str, cgroups: int, reps: int = 5) -> tuple[float, float, float]:
    """CPU of one collector walk against the read-and-convert floor, interleaved."""
    from bench.scale_tree import measure
    base = Path(tempfile.mkdtemp(prefix="slabscope-walk-", dir="/dev/shm"))
    try:
        build(base / "host", layout, cgroups, 0)
        m = measure(base / "host", reps)
        return m["ratio"], 1000 * m["walk"], 1000 * m["floor"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_bench(args: list[str]) -> list[str]:
    """Run another bench as it is run alone, echo its output, return its lines."""
    print(f"\n$ python {' '.join(args)}", flush=True)
    out = subprocess.run([sys.executable, *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, check=False).stdout
    print(out, flush=True)
    return out.splitlines()


def projection_rows(lines: list[str]) -> list[tuple[str, float]]:
    """(database, p95 ms) of the projection 30 days ahead, from bench/projection.py's table."""
    out = []
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 4 and cells[1].startswith("projection API 30 d"):
            out.append((cells[0], float(cells[3])))
    return out


def fleet_rows(lines: list[str]) -> dict[str, str]:
    """The steady phase's latency line, the growth and the delivery check of bench/fleet.py."""
    got: dict[str, str] = {}
    for line in lines:
        if line.startswith("steady"):
            got["steady"] = line.strip()
        elif line.startswith("PostgreSQL growth"):
            got["growth"] = line.strip()
        elif "distinct" in line or "missing" in line:
            got["check"] = line.strip()
    return got


def mb(x: float) -> str:
    return f"{x / 1e6:,.1f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=330.0)
    ap.add_argument("--cgroups", type=int, default=10_000)
    ap.add_argument("--dying", type=int, default=5_000)
    ap.add_argument("--churn", type=float, default=100.0, help="created and removed a minute")
    ap.add_argument("--dbs", default="sqlite,postgres")
    ap.add_argument("--layouts", default="v2,v1")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--with-projection", action="store_true",
                    help="also run bench/projection.py (30 days of 15 s history, both dbs)")
    ap.add_argument("--with-fleet", action="store_true",
                    help="also run bench/fleet.py (1,000 hosts x 1,000 cgroups, --workers 2)")
    ap.add_argument("--live", type=int, default=0,
                    help="also run on this kernel with this many real v1 memory cgroups of our "
                         "own (SQLite)")
    a = ap.parse_args()
    combos = [(lay, d) for lay in a.layouts.split(",") for d in a.dbs.split(",")]
    if a.live:
        combos.append(("live-v1", "sqlite"))
    print(f"{len(combos)} runs of {a.seconds:.0f} s, {a.cgroups:,} cgroups "
          f"({a.dying:,} dying), churn {a.churn:.0f}/min, {a.parallel} at a time", flush=True)
    with ThreadPoolExecutor(a.parallel) as ex:
        runs = list(ex.map(lambda c: run_daemon(
            c[0], c[1], a.live if c[0] == "live-v1" else a.cgroups, a.dying, a.seconds,
            a.churn), combos))
    ratios = {lay: walk_ratio(lay, a.cgroups) for lay in a.layouts.split(",")}
    proj = projection_rows(run_bench(["bench/projection.py", "--days", "30"])) \
        if a.with_projection else []
    fleet = fleet_rows(run_bench(["bench/fleet.py", "--hosts", "1000", "--cgroups", "1000",
                                  "--workers", "2"])) if a.with_fleet else {}
    print()
    print(f"{'measure':58} {'run':16} {'result':>16}  target")
    for r in runs:
        tag = f"{r.layout}/{r.db}"
        print(f"{'database growth per host per day':58} {tag:16} "
              f"{mb(r.growth_per_day):>16}  <= 250 MB "
              f"{'met' if r.growth_per_day <= 250e6 else 'MISSED'}")
        print(f"{'  window: bytes, seconds, series frames':58} {tag:16} "
              f"{mb(r.window_bytes):>16}  {r.window_s:.0f} s, {r.series_in_window} frame(s); "
              f"series {mb(r.series_frame_bytes)}, full {mb(r.full_frame_bytes)}")
        print(f"{'collector peak RSS (VmHWM)':58} {tag:16} {r.vm_hwm_mb:>13.1f} MB  <= 60 MB "
              f"{'met' if r.vm_hwm_mb <= 60 else 'MISSED'}")
        print(f"{'collector average CPU (one core)':58} {tag:16} {100 * r.cpu_avg:>15.2f}%  "
              f"<= 5 % {'met' if r.cpu_avg <= 0.05 else 'MISSED'}  "
              f"({r.cpu_per_tick_ms:.0f} ms CPU a tick, {r.ticks} ticks)")
        pct = 100 * r.removed_with_stat / r.removed_eligible if r.removed_eligible else 0.0
        print(f"{'removed (lived > one walk) with a last memory.stat':58} {tag:16} "
              f"{pct:>15.1f}%  100 % {'met' if pct == 100.0 else 'MISSED'}  "
              f"({r.removed_with_stat}/{r.removed_eligible}; {r.removed_rows} removals "
              f"stored, {r.churn_made} churned)")
    for lay, (ratio, walk_ms, floor_ms) in ratios.items():
        print(f"{'one cgroup walk CPU / read-and-convert floor':58} {lay:16} "
              f"{ratio:>15.2f}x  <= 1.5x {'met' if ratio <= 1.5 else 'MISSED'}  "
              f"(walk {walk_ms:.0f} ms, floor {floor_ms:.0f} ms, median)")
    for db, p95 in proj:
        print(f"{'projection p95, host with 30 days of 15 s history':58} {db:16} "
              f"{p95:>13.0f} ms  < 500 ms {'met' if p95 < 500 else 'MISSED'}")
    for k, v in fleet.items():
        print(f"{'fleet 1,000 hosts x 1,000 cgroups, --workers 2: ' + k:58} {'postgres':16} {v}")
    if a.json:
        a.json.write_text(json.dumps({"runs": [r.__dict__ for r in runs],
                                      "walk": ratios}, indent=1, default=str))


if __name__ == "__main__":
    main()
