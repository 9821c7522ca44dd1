#!/usr/bin/env python3
"""Projection and refcounts of a host with 30 days of 15 s history (issue 8 target).

Seeds, by bulk SQL (tests/longhistory.py), a host with 30 days of 15 s scrapes (172,800) and
100 removed cgroups a minute (4.3 M removed_cgroup rows), and a host with 6 minutes of the
same, into SQLite and PostgreSQL; builds the hourly rollups (app.db.retention.rollup, as
`slabscope retention` does); then measures, through the ASGI app in process (TestClient),
p50/p95 of the projection API at 30 and 90 days ahead, of the projection page, and of the
refcounts API, for both hosts, interleaved call by call. Target: p95 < 500 ms for the long
host; the ratio long/short shows the cost is bounded by what is shown, not by the history.

Usage: python bench/projection.py [--days 30] [--calls 20] [--db sqlite,postgres]
       [--per-minute 100] [--sqlite-path FILE (reused if it exists)]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from app.config import Settings
from app.db import models as m
from app.db import retention
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.main import create_app
from tests.longhistory import seed_long

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_MS = 500.0


@contextmanager
def database(kind: str, sqlite_path: str | None) -> Iterator[str]:
    """A database URL for `kind`, dropped afterwards (a given SQLite file is kept)."""
    if kind == "sqlite":
        if sqlite_path:
            yield f"sqlite:///{sqlite_path}"
            return
        with tempfile.TemporaryDirectory() as d:
            yield f"sqlite:///{d}/bench.db"
        return
    import psycopg
    name = f"slabscope_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(engine: Engine, days: float, per_minute: float, end: datetime) -> None:
    """The long and the short host, and their hourly rollups (skipped if already there)."""
    with make_session_factory(engine)() as s:
        if s.scalar(select(func.count(m.Host.id))):
            print("  reusing the seeded database", flush=True)
            return
    t = time.perf_counter()
    long_ = seed_long(engine, days=days, end=end, name="long",
                      removals_per_minute=per_minute)
    short = seed_long(engine, days=6 / 1440, end=end, name="short",
                      removals_per_minute=per_minute)
    print(f"  seeded {long_.scrapes:,} + {short.scrapes} scrapes, {long_.removed:,} + "
          f"{short.removed} removed cgroups in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    with make_session_factory(engine).begin() as s:
        retention.rollup(s, end)
    print(f"  hourly rollups in {time.perf_counter() - t:.0f} s", flush=True)


def pct(xs: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of xs."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def measure(calls: dict[str, Callable[[], None]], n: int
            ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each call n times, interleaved (one round of all, n rounds), after one warm-up: wall
    and CPU milliseconds (the process's CPU: on a loaded machine, what the call itself costs)."""
    for f in calls.values():
        f()
    wall: dict[str, list[float]] = {k: [] for k in calls}
    cpu: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(n):
        for k, f in calls.items():
            t, c = time.perf_counter(), time.process_time()
            f()
            wall[k].append((time.perf_counter() - t) * 1000)
            cpu[k].append((time.process_time() - c) * 1000)
    return wall, cpu


def getter(client: TestClient, url: str) -> Callable[[], None]:
    """A call of `url` that fails loudly unless it answers 200."""
    def f() -> None:
        r = client.get(url)
        if r.status_code != 200:
            raise SystemExit(f"{url}: {r.status_code} {r.text[:300]}")
    return f


def run(kind: str, args: argparse.Namespace, end: datetime) -> list[tuple[str, ...]]:
    """Seed one database and measure every call on it."""
    rows: list[tuple[str, ...]] = []
    with database(kind, args.sqlite_path if kind == "sqlite" else None) as url:
        print(f"{kind}:", flush=True)
        upgrade(url)
        engine = make_engine(url)
        seed(engine, args.days, args.per_minute, end)
        engine.dispose()
        with TestClient(create_app(Settings(database_url=url))) as client:
            calls: dict[str, Callable[[], None]] = {}
            for host in ("long", "short"):
                for days in (30, 90):
                    calls[f"projection API {days} d|{host}"] = getter(
                        client, f"/api/v1/hosts/{host}/projection?days={days}")
                calls[f"projection page 30 d|{host}"] = getter(
                    client, f"/hosts/{host}/projection?days=30")
                for era in ("pre-5.3", "objcg-kmem"):
                    calls[f"refcounts API {era}|{host}"] = getter(
                        client, f"/api/v1/hosts/{host}/refcounts?era={era}")
            got, cpu = measure(calls, args.calls)
        for name in dict.fromkeys(k.split("|")[0] for k in calls):
            lo, sh = got[f"{name}|long"], got[f"{name}|short"]
            p95 = pct(lo, 95)
            rows.append((kind, name, f"{pct(lo, 50):.0f}", f"{p95:.0f}", f"{pct(sh, 95):.0f}",
                         f"{p95 / pct(sh, 95):.2f}",
                         f"{pct(cpu[f'{name}|long'], 50):.0f} / "
                         f"{pct(cpu[f'{name}|short'], 50):.0f}",
                         f"< {TARGET_MS:.0f}: {'met' if p95 < TARGET_MS else 'MISSED'}"))
    return rows


def main() -> None:
    """Seed, measure, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--per-minute", type=float, default=100.0)
    ap.add_argument("--db", default="sqlite,postgres")
    ap.add_argument("--sqlite-path", default=None)
    args = ap.parse_args()
    end = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)
    rows: list[tuple[str, ...]] = []
    for kind in args.db.split(","):
        rows += run(kind, args, end)
    head = ("db", "call", f"p50 ms ({args.days:g} d)", f"p95 ms ({args.days:g} d)",
            "p95 ms (6 min)", "long/short", "CPU p50 ms long / short", "target p95 ms")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print(f"\n{args.days:g} days of 15 s scrapes, {args.per_minute:g} removals/min, "
          f"{args.calls} calls each, interleaved; TestClient in process; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for r in [head, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
