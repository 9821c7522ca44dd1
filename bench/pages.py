#!/usr/bin/env python3
"""Latency of the dashboard's pages and series endpoint on a fleet-sized database.

Seeds 20 hosts x 3 days of 60 s scrapes (235 caches and 51 cgroups per scrape: about 20 M
slab samples and 4.4 M cgroup samples) into SQLite and into PostgreSQL, then measures p50/p95
of: the fleet page, a host page over 3 days, a cache page over 3 days, and the series endpoint
over 3 days, each against the floor of the single SQL query it needs, run directly in the same
process: for the host and cache pages and the endpoint, the one bucketed series query that
holds all their charts; for the fleet page, its heaviest query (24 h of every host's dying
count, bucketed for the sparklines); the page's other queries are small lookups by index.
Targets (issue 3): p95 < 300 ms for every page on both databases; no page > 3x its
floor. Requests go through the ASGI app in process (TestClient), as a browser's would.

Usage: python bench/pages.py [--hosts 20] [--days 3] [--reps 30] [--db sqlite,postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from app.collector.scrape import Collector, CollectorOptions
from app.config import Settings
from app.db import models as m
from app.db import partitions
from app.db import queries as q
from app.db.migrate import upgrade
from app.db.session import make_engine
from app.main import create_app

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "fixtures" / "host-6.18"
BASE = Collector(CollectorOptions(proc_root=str(HOST / "proc"), sys_root=str(HOST / "sys"),
                                  page_size_bytes=4096)).collect()


def cgroup_paths() -> list[str]:
    paths = ["/", "/system.slice", "/user.slice", "/kubepods.slice"]
    paths += [f"/system.slice/unit-{i}.service" for i in range(47)]
    return paths


def rows_for_host(h: int, scrape_id0: int, cache_id0: int, cgroup_id0: int, end: datetime,
                  n: int, step: timedelta) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Rows of one host, in batches: ("scrape", [...]), ("slab_sample", [...]), ..."""
    caches = BASE.caches
    paths = cgroup_paths()
    batch = 200
    for start in range(0, n, batch):
        scrapes, slabs, cgs, removed = [], [], [], []
        for k in range(start, min(n, start + batch)):
            sid = scrape_id0 + k
            at = end - step * (n - 1 - k)
            dying = 50 * (h + 1) + k // 60 + (k * 7919 % 13)
            scrapes.append({
                "id": sid, "host_id": h + 1, "snapshot_id": None, "taken_at": at,
                "duration_seconds": 0.002, "boot_id": "b", "kernel_release": "6.18.44",
                "era": "objcg-kmem", "memcg_num_cgroups_total": dying + 51,
                "memcg_total": dying + 51, "memcg_visible_total": 51,
                "memcg_dying_total": dying, "memcg_method": "v1", "mem_total_bytes": 24 << 30,
                "slab_bytes": 150_000_000 + k * 4096, "sreclaimable_bytes": 120_000_000 + k * 4096,
                "sunreclaim_bytes": 30_000_000, "percpu_bytes": 700_000 + 4096 * dying,
                "kernel_stack_bytes": 9_000_000, "shmem_bytes": 1_000_000, "errors_total": 0,
                "meminfo_json": {}, "vmstat_json": {}, "proc_cgroups_json": []})
            for j, c in enumerate(caches):
                grow = (k * (j % 7)) // 30
                slabs.append({"scrape_id": sid, "taken_day": partitions.day_of(at),
                              "cache_id": cache_id0 + j,
                              "active_objs_total": c.active_objs + grow * 10,
                              "num_objs_total": c.num_objs + grow * 10,
                              "num_slabs_total": c.num_slabs + grow,
                              "slab_bytes": (c.num_slabs + grow) * c.pages_per_slab * 4096,
                              "partial_slabs_total": None, "cpu_slabs_total": None})
            for j, _ in enumerate(paths):
                cgs.append({"scrape_id": sid, "taken_day": partitions.day_of(at),
                            "cgroup_id": cgroup_id0 + j,
                            "memory_usage_bytes": 1_000_000 + j, "kmem_usage_bytes": 4096 * j,
                            "file_bytes": 65536 * j, "anon_bytes": 4096 * j, "shmem_bytes": 0,
                            "slab_bytes": None, "kernel_stack_bytes": None,
                            "nr_descendants_total": None, "nr_dying_descendants_total": None,
                            "memory_stat_json": {"cache": 65536 * j, "rss": 4096 * j,
                                                 "shmem": 0, "pgfault": 1000 + k},
                            "cgroup_stat_json": None})
            if k % 10 == 0:
                removed.append({"host_id": h + 1, "cgroup_id": None, "hierarchy": "memory",
                                "path": f"/system.slice/job-{k}.service",
                                "last_seen_at": at - step, "removed_at": at,
                                "last_memory_usage_bytes": 70_000, "file_bytes": 65536,
                                "shmem_bytes": 0, "slab_bytes": None, "kernel_stack_bytes": None,
                                "last_memory_stat_json": {"cache": 65536}})
        yield "scrape", scrapes
        yield "slab_sample", slabs
        yield "cgroup_sample", cgs
        yield "removed_cgroup", removed


def seed(url: str, hosts: int, days: float, end: datetime) -> int:
    """Bulk-load the fleet; return the number of slab_sample rows written."""
    upgrade(url)
    engine = make_engine(url)
    step = timedelta(seconds=60)
    n = int(days * 86_400 / 60)
    tables = {t.name: t for t in m.Base.metadata.sorted_tables}
    written = 0
    with engine.begin() as conn:
        conn.execute(insert(m.Host), [{
            "id": h + 1, "name": f"host-{h:02d}", "machine_id": None, "boot_id": "b",
            "kernel_release": "6.18.44", "era": "objcg-kmem", "cgroup_layout": "hybrid",
            "possible_cpus_total": 2 + h % 3 * 30, "numa_nodes_total": 1, "page_size_bytes": 4096,
            "first_seen_at": end - step * (n - 1), "last_seen_at": end} for h in range(hosts)])
        conn.execute(insert(m.SlabCache), [{
            "id": h * 1000 + j + 1, "host_id": h + 1, "name": c.name,
            "aliases_json": list(c.aliases), "object_size_bytes": c.object_size_bytes,
            "slab_size_bytes": c.slab_size_bytes, "objs_per_slab_total": c.objs_per_slab,
            "pages_per_slab_total": c.pages_per_slab, "order": c.order,
            "reclaim_account": c.reclaim_account, "first_seen_at": end - step * (n - 1),
            "last_seen_at": end} for h in range(hosts) for j, c in enumerate(BASE.caches)])
        conn.execute(insert(m.Cgroup), [{
            "id": h * 1000 + j + 1, "host_id": h + 1, "hierarchy": "memory", "path": p,
            "first_seen_at": end - step * (n - 1), "last_seen_at": end, "removed_at": None}
            for h in range(hosts) for j, p in enumerate(cgroup_paths())])
    pg = engine.dialect.name == "postgresql"
    if pg:  # daily partitions for the history, as the writer path would have made them
        with Session(engine) as s, s.begin():
            partitions.create_days(s, range(partitions.day_of(end - step * (n - 1)),
                                            partitions.day_of(end) + 1))
    for h in range(hosts):
        with engine.begin() as conn:
            for table, rows in rows_for_host(h, h * n + 1, h * 1000 + 1, h * 1000 + 1, end, n,
                                             step):
                if not rows:
                    continue
                if table == "slab_sample":
                    written += len(rows)
                if pg and table in ("slab_sample", "cgroup_sample"):
                    _copy(conn, table, rows)
                else:
                    conn.execute(insert(tables[table]), rows)
    with engine.begin() as conn:
        if pg:
            conn.execute(text("SELECT setval('scrape_id_seq', (SELECT max(id) FROM scrape))"))
            for t in ("slab_sample", "cgroup_sample", "scrape", "removed_cgroup"):
                conn.execute(text(f"ANALYZE {t}"))
        else:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return written


def _copy(conn: Any, table: str, rows: list[dict[str, Any]]) -> None:
    import json
    cols = list(rows[0])
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(
            f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        for r in rows:
            cp.write_row([json.dumps(v) if isinstance(v, dict) else v for v in r.values()])


def timed(fn: Callable[[], Any], reps: int) -> tuple[float, float]:
    fn()  # warm
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def measure(url: str, reps: int, end: datetime) -> list[tuple[str, float, float, float, float]]:
    app = create_app(Settings(database_url=url))
    out = []
    since, until = end - timedelta(days=3), end
    rng = {"since": since.isoformat(), "until": until.isoformat()}
    with TestClient(app) as client:
        sessions = app.state.sessions

        def floor(build: Callable[[Any], Any]) -> Callable[[], Any]:
            def run() -> Any:
                with sessions() as s:
                    return build(s)
            return run

        top = "host-19" if client.get("/api/v1/hosts?limit=1").json()["items"][0][
            "name"] == "host-19" else client.get("/api/v1/hosts?limit=1").json()["items"][0][
            "name"]
        with sessions() as s:
            host = q.host_by_name(s, top)
            assert host is not None
            hid = host.id
            cid = q.cache_id(s, hid, "dentry")
            assert cid is not None
        step = q.choose_step(since, until, None)
        with sessions() as s:
            last_seen = {h.id: h.last_seen_at for h in s.scalars(select(m.Host)).all()}
        metrics = ["memcg_dying", "memcg_live", "sreclaimable_bytes", "sunreclaim_bytes",
                   "percpu_bytes"]
        cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
            # The fleet page's heaviest query: 24 h of dying counts of every host, bucketed.
            ("fleet page /", lambda: _ok(client.get("/")),
             floor(lambda s: q.sparklines(s, last_seen))),
            ("host page, 3 days", lambda: _ok(client.get(f"/hosts/{top}", params=rng)),
             floor(lambda s: q.scrape_series(s, hid, metrics, since, until, step))),
            ("cache page, 3 days", lambda: _ok(client.get(f"/hosts/{top}/caches/dentry",
                                                          params=rng)),
             floor(lambda s: q.cache_series(s, cid, ["objects", "active_objs", "slabs",
                                                     "bytes"], since, until, step))),
            ("series API, 3 days", lambda: _ok(client.get(
                f"/api/v1/hosts/{top}/series", params={"metric": "memcg_dying", **rng})),
             floor(lambda s: q.scrape_series(s, hid, ["memcg_dying"], since, until, step))),
        ]
        for name, page, fl in cases:
            p50, p95 = timed(page, reps)
            f50, f95 = timed(fl, reps)
            out.append((name, p50, p95, f50, f95))
    return out


def _ok(r: Any) -> Any:
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--days", type=float, default=3)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--db", default="sqlite,postgres")
    ap.add_argument("--postgres-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--reuse", metavar="DIR", help="keep the seeded databases in DIR and reuse "
                    "them on the next run (sqlite file, and a postgres database name file)")
    a = ap.parse_args()
    end = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as scratch:
        tmp = a.reuse or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for db in a.db.split(","):
            stamp = Path(tmp) / f"{db}.end"
            reused = a.reuse is not None and stamp.exists()
            if reused:
                end = datetime.fromisoformat(stamp.read_text().split()[0])
            if db == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'pages.db'}"
            elif reused:
                url = stamp.read_text().split()[1]
            else:
                import psycopg
                from sqlalchemy.engine import make_url
                u = make_url(a.postgres_admin)
                name = f"slabscope_bench_{uuid.uuid4().hex[:8]}"
                kw = {"host": u.host, "port": u.port or 5432, "user": u.username,
                      "dbname": u.database, "autocommit": True}
                with psycopg.connect(**kw) as c:
                    c.execute(f'CREATE DATABASE "{name}"')
                url = str(u.set(database=name).render_as_string(hide_password=False))
            t = time.perf_counter()
            if reused:
                print(f"\n== {db}: reusing the database seeded earlier in {tmp}")
            else:
                rows = seed(url, a.hosts, a.days, end)
                print(f"\n== {db}: seeded {a.hosts} hosts x {a.days:g} days: {rows:,} slab "
                      f"samples in {time.perf_counter() - t:.0f} s")
                if a.reuse:
                    stamp.write_text(f"{end.isoformat()} {url}")
            print(f"{'page':<22}{'p50 ms':>9}{'p95 ms':>9}{'floor p50':>11}{'floor p95':>11}"
                  f"{'p50 ratio':>11}{'p95 ratio':>11}")
            for name, p50, p95, f50, f95 in measure(url, a.reps, end):
                flag = "" if p95 < 0.3 and p50 / f50 <= 3 else "   <- misses a target"
                print(f"{name:<22}{p50 * 1e3:9.1f}{p95 * 1e3:9.1f}{f50 * 1e3:11.1f}"
                      f"{f95 * 1e3:11.1f}{p50 / f50:10.2f}x{p95 / f95:10.2f}x{flag}")
            if db != "sqlite" and not a.reuse:
                with psycopg.connect(**kw) as c:
                    c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
