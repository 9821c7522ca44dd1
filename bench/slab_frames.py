#!/usr/bin/env python3
"""Cache page and cache series API over 24 h (--hours) of 15 s scrapes (5,760 slab frames).

Seeds hosts with bench/pages.py's seeder (one slab frame per scrape, 235 caches), then times
the cache page and the cache series endpoint over the last 24 h against the hand-written
frames floor (pages.floor_frames: fetch the blobs in range, inflate, pick the cache's
cells), interleaved, after checking the floor returns the page's data. No hourly rollups
exist unless --rollup (retention has not run), so every point comes from raw frames: the
worst case. Ranges past ~1.5 days bucket by whole 5 minutes and, with --rollup, read the
5-minute rollups for every complete hour.
Target: p95 < 300 ms on SQLite and PostgreSQL.

Usage: python bench/slab_frames.py [--hosts 2] [--reps 20] [--db sqlite,postgres]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from sqlalchemy import text

from app.config import Settings
from app.db import retention
from app.db.session import make_engine, make_session_factory
from app.main import create_app
from bench import pages
from bench._interleave import interleave, median_ratio, pct


def run(url: str, hosts: int, reps: int, hours: float = 24.0, rollup: bool = False) -> None:
    """Seed, check the floor, then time page, API and floor."""
    end = datetime.now(UTC).replace(microsecond=0)
    pages.seed(url, hosts, hours / 24, end, step_seconds=15)
    since = end - timedelta(hours=hours)
    rng = {"since": since.isoformat(), "until": end.isoformat()}
    step = pages.cache_step(max(1, math.ceil(hours * 3600 / 2000)))
    if rollup:  # as the hourly `slabscope retention` leaves it: complete hours rolled up
        engine = make_engine(url)
        with make_session_factory(engine).begin() as s:
            retention.rollup(s, end)
        engine.dispose()
    engine = make_engine(url)
    with TestClient(create_app(Settings(database_url=url))) as client, \
            engine.connect() as conn:
        dialect = conn.dialect.name
        hid, cid = conn.execute(text(
            "SELECT h.id, c.id FROM host h JOIN slab_cache c ON c.host_id = h.id "
            "WHERE h.name = 'host-00' AND c.name = 'dentry'")).one()
        frames = conn.scalar(text("SELECT count(*) FROM slab_frame WHERE host_id = :h"),
                             {"h": hid})
        binds = {"since": pages.when(since, dialect), "until": pages.when(end, dialect),
                 "step": step, "cid": cid, "hid": hid}

        def floor() -> object:
            return pages.floor_frames(conn, dialect, **binds)

        want = pages.floor_frames(conn, dialect, **binds)
        for what in pages.CACHE_METRICS:
            _, pts = pages.api_series(client, "/api/v1/hosts/host-00/caches/dentry/series",
                                      {"what": what, **rng})
            pages.same(want[what], pts, f"cache series {what}")
        cases = {
            f"cache page, {hours:g} h": lambda: pages._ok(client.get("/hosts/host-00/caches/dentry",
                                                             params=rng)),
            f"cache series API, {hours:g} h": lambda: pages._ok(client.get(
                "/api/v1/hosts/host-00/caches/dentry/series", params={"what": "bytes", **rng})),
        }
        print(f"\n== {dialect}: {hosts} hosts x {hours:g} h of 15 s scrapes, {frames} frames in "
              f"range, {step} s buckets, {'hours rolled up' if rollup else 'no rollups'};"
              " floor (raw frames) checked equal to the API")
        print(f"{'case':<24}{'p50 ms':>9}{'p95 ms':>9}{'floor p50':>11}{'floor p95':>11}"
              f"{'ratio':>9}")
        for name, fn in cases.items():
            fn(), floor()
            r = interleave({"page": pages.elapsed(fn), "floor": pages.elapsed(floor)}, reps)
            p95 = pct(r["page"], .95)
            flag = "" if p95 < 0.3 else "   <- misses p95 < 300 ms"
            print(f"{name:<24}{pct(r['page'], .5) * 1e3:9.1f}{p95 * 1e3:9.1f}"
                  f"{pct(r['floor'], .5) * 1e3:11.1f}{pct(r['floor'], .95) * 1e3:11.1f}"
                  f"{median_ratio(r['page'], r['floor']):8.2f}x{flag}")
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--hours", type=float, default=24.0, help="the range (and the history)")
    ap.add_argument("--rollup", action="store_true",
                    help="run the retention rollup first (5-minute and hourly rollups)")
    ap.add_argument("--db", default="sqlite,postgres")
    ap.add_argument("--postgres-admin", default="postgresql+psycopg://postgres@127.0.0.1/test")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        for db in a.db.split(","):
            if db == "sqlite":
                run(f"sqlite:///{Path(tmp) / 'frames.db'}", a.hosts, a.reps, a.hours, a.rollup)
                continue
            import psycopg
            from sqlalchemy.engine import make_url
            u = make_url(a.postgres_admin)
            name = f"slabscope_frames_{uuid.uuid4().hex[:8]}"
            kw = {"host": u.host, "port": u.port or 5432, "user": u.username,
                  "dbname": u.database, "autocommit": True}
            with psycopg.connect(**kw) as c:
                c.execute(f'CREATE DATABASE "{name}"')
            try:
                run(str(u.set(database=name).render_as_string(hide_password=False)),
                    a.hosts, a.reps, a.hours, a.rollup)
            finally:
                with psycopg.connect(**kw) as c:
                    c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
