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

The floors are hand-written SQL per dialect (this file), independent of app/db/queries.py;
before timing, each floor's result is checked equal to what its page shows (the pages' JSON
twins). Page and floor alternate in one loop; the ratio is the median of per-round ratios.

Usage: python bench/pages.py [--quick] [--hosts 20] [--days 3] [--reps 30]
                             [--db sqlite,postgres]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import struct
import sys
import tempfile
import time
import uuid
import zlib
from array import array
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from sqlalchemy import insert, text

from app.collector.scrape import Collector, CollectorOptions
from app.config import Settings
from app.db import models as m
from app.db.migrate import upgrade
from app.db.session import make_engine
from app.domain.cgtable import pack_stat, pack_table
from app.main import create_app
from bench._interleave import interleave, median_ratio, pct

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "fixtures" / "host-6.18"


@functools.cache
def base_caches() -> tuple[Any, ...]:
    """The fixture host's slab caches (collected once, on first use, not at import)."""
    return Collector(CollectorOptions(proc_root=str(HOST / "proc"), sys_root=str(HOST / "sys"),
                                      page_size_bytes=4096)).collect().caches


def cgroup_paths() -> list[str]:
    paths = ["/", "/system.slice", "/user.slice", "/kubepods.slice"]
    paths += [f"/system.slice/unit-{i}.service" for i in range(47)]
    return paths


def cgroup_rows(h: int, sid: int, at: datetime, k: int, step: timedelta,
                cgroup_id0: int, tables: set[str]) -> tuple[list[dict[str, Any]], str]:
    """One scrape's per-cgroup rows in whichever layout the schema has, and their table."""
    paths = cgroup_paths()
    if "cgroup_sample" in tables:  # the layout before issue 8: one JSON row per cgroup
        return [{"scrape_id": sid, "cgroup_id": cgroup_id0 + j,
                 "memory_usage_bytes": 1_000_000 + j, "kmem_usage_bytes": 4096 * j,
                 "file_bytes": 65536 * j, "anon_bytes": 4096 * j, "shmem_bytes": 0,
                 "slab_bytes": None, "kernel_stack_bytes": None,
                 "nr_descendants_total": None, "nr_dying_descendants_total": None,
                 "memory_stat_json": {"cache": 65536 * j, "rss": 4096 * j, "shmem": 0,
                                      "pgfault": 1000 + k},
                 "cgroup_stat_json": None} for j in range(len(paths))], "cgroup_sample"
    # Frames (migration 0004): a series table every 5 minutes, the whole stat every 6 hours.
    seconds = int(k * step.total_seconds())
    kind = "full" if seconds % 21_600 == 0 else "series" if seconds % 300 == 0 else None
    if kind is None:
        return [], "cgroup_frame"
    cols = ("memory.usage", "memory.stat:cache", "memory.stat:rss", "memory.stat:shmem")
    if kind == "full":
        cols += ("memory.stat:pgfault",)
    n = len(paths)
    vals = [array("Q", [1_000_000 + j for j in range(n)]),
            array("Q", [65536 * j for j in range(n)]), array("Q", [4096 * j for j in range(n)]),
            array("Q", bytes(8 * n)), array("Q", [1000 + k] * n)][:len(cols)]
    blob = pack_table(cols, [cgroup_id0 + j for j in range(n)], vals, [b"\x01" * n] * len(cols))
    return [{"host_id": h + 1, "scrape_id": sid, "taken_at": at, "kind": kind,
             "rows_total": n, "data": blob}], "cgroup_frame"


def removed_row(h: int, k: int, at: datetime, step: timedelta, cols: set[str]
                ) -> dict[str, Any]:
    """A removed cgroup, its last memory.stat as JSON or as a pack_stat blob (0004)."""
    stat = {"cache": 65536, "rss": 4096}
    row: dict[str, Any] = {
        "host_id": h + 1, "cgroup_id": None, "hierarchy": "memory",
        "path": f"/system.slice/job-{k}.service", "last_seen_at": at - step, "removed_at": at,
        "last_memory_usage_bytes": 70_000, "file_bytes": 65536, "shmem_bytes": 0,
        "slab_bytes": None, "kernel_stack_bytes": None, "last_memory_stat_json": stat,
        "last_memory_stat": pack_stat(stat), "stat_read_at": at - step}
    return {c: v for c, v in row.items() if c in cols}


SLAB_COLUMNS = ("active_objs", "num_objs", "num_slabs", "slab_bytes", "partial_slabs",
                "cpu_slabs")


def slab_frame_row(h: int, sid: int, at: datetime, k: int, cache_id0: int) -> dict[str, Any]:
    """One scrape's caches as a slab frame (0008), the same figures as the row layout's."""
    caches = base_caches()
    n = len(caches)
    grow = [(k * (j % 7)) // 30 for j in range(n)]
    vals = [array("Q", [c.active_objs + g * 10 for c, g in zip(caches, grow, strict=True)]),
            array("Q", [c.num_objs + g * 10 for c, g in zip(caches, grow, strict=True)]),
            array("Q", [c.num_slabs + g for c, g in zip(caches, grow, strict=True)]),
            array("Q", [(c.num_slabs + g) * c.pages_per_slab * 4096
                        for c, g in zip(caches, grow, strict=True)]),
            array("Q", bytes(8 * n)), array("Q", bytes(8 * n))]
    present = [b"\x01" * n] * 4 + [bytes(n)] * 2
    return {"scrape_id": sid, "host_id": h + 1, "taken_at": at,
            "data": pack_table(SLAB_COLUMNS, [cache_id0 + j for j in range(n)], vals, present)}


def rows_for_host(h: int, scrape_id0: int, cache_id0: int, cgroup_id0: int, end: datetime,
                  n: int, step: timedelta, tables: dict[str, Any]
                  ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Rows of one host, in batches: ("scrape", [...]), ("slab_sample", [...]), ..."""
    caches = base_caches()
    scrape_cols = {c.name for c in tables["scrape"].columns}
    removed_cols = {c.name for c in tables["removed_cgroup"].columns}
    frames = "slab_frame" in tables  # one blob per scrape (0008), else a row per cache
    slab_day = not frames and "taken_day" in {c.name for c in tables["slab_sample"].columns}
    batch = 200
    for start in range(0, n, batch):
        scrapes, slabs, cgs, removed = [], [], [], []
        cg_table = ""
        for k in range(start, min(n, start + batch)):
            sid = scrape_id0 + k
            at = end - step * (n - 1 - k)
            dying = 50 * (h + 1) + k // 60 + (k * 7919 % 13)
            row = {
                "id": sid, "host_id": h + 1, "snapshot_id": None, "taken_at": at,
                "duration_seconds": 0.002, "boot_id": "b", "kernel_release": "6.18.44",
                "era": "objcg-kmem", "memcg_num_cgroups_total": dying + 51,
                "memcg_total": dying + 51, "memcg_visible_total": 51,
                "memcg_dying_total": dying, "memcg_method": "v1", "mem_total_bytes": 24 << 30,
                "slab_bytes": 150_000_000 + k * 4096, "sreclaimable_bytes": 120_000_000 + k * 4096,
                "sunreclaim_bytes": 30_000_000, "percpu_bytes": 700_000 + 4096 * dying,
                "kernel_stack_bytes": 9_000_000, "shmem_bytes": 1_000_000, "errors_total": 0,
                "meminfo_json": {}, "vmstat_json": {}, "proc_cgroups_json": []}
            scrapes.append({c: v for c, v in row.items() if c in scrape_cols})
            if frames:
                slabs.append(slab_frame_row(h, sid, at, k, cache_id0))
            for j, c in enumerate(caches if not frames else ()):
                grow = (k * (j % 7)) // 30
                slab = {"scrape_id": sid, "cache_id": cache_id0 + j,
                        "active_objs_total": c.active_objs + grow * 10,
                        "num_objs_total": c.num_objs + grow * 10,
                        "num_slabs_total": c.num_slabs + grow,
                        "slab_bytes": (c.num_slabs + grow) * c.pages_per_slab * 4096,
                        "partial_slabs_total": None, "cpu_slabs_total": None}
                if slab_day:  # a table partitioned by day carries its day number (0005)
                    slab["taken_day"] = int(at.timestamp() // 86_400)
                slabs.append(slab)
            got, cg_table = cgroup_rows(h, sid, at, k, step, cgroup_id0, set(tables))
            if "taken_day" in {c.name for c in tables[cg_table].columns}:
                for r in got:
                    r["taken_day"] = int(at.timestamp() // 86_400)
            cgs += got
            if k % 10 == 0:
                removed.append(removed_row(h, k, at, step, removed_cols))
        yield "scrape", scrapes
        yield "slab_frame" if frames else "slab_sample", slabs
        yield cg_table, cgs
        yield "removed_cgroup", removed


def seed(url: str, hosts: int, days: float, end: datetime, step_seconds: int = 60) -> int:
    """Bulk-load the fleet; return the number of slab samples written (caches x scrapes)."""
    upgrade(url)
    engine = make_engine(url)
    step = timedelta(seconds=step_seconds)
    n = int(days * 86_400 / step_seconds)
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
            "last_seen_at": end} for h in range(hosts) for j, c in enumerate(base_caches())])
        conn.execute(insert(m.Cgroup), [{
            "id": h * 1000 + j + 1, "host_id": h + 1, "hierarchy": "memory", "path": p,
            "first_seen_at": end - step * (n - 1), "last_seen_at": end, "removed_at": None}
            for h in range(hosts) for j, p in enumerate(cgroup_paths())])
    pg = engine.dialect.name == "postgresql"
    if pg:
        make_partitions(engine, end - step * (n - 1), end)
    for h in range(hosts):
        with engine.begin() as conn:
            for table, rows in rows_for_host(h, h * n + 1, h * 1000 + 1, h * 1000 + 1, end, n,
                                             step, tables):
                if not rows:
                    continue
                if table == "slab_sample":
                    written += len(rows)
                elif table == "slab_frame":
                    written += len(rows) * len(base_caches())
                if pg and table in ("slab_sample", "cgroup_sample"):
                    _copy(conn, table, rows)
                else:
                    conn.execute(insert(tables[table]), rows)
    with engine.begin() as conn:
        if pg:
            conn.execute(text("SELECT setval('scrape_id_seq', (SELECT max(id) FROM scrape))"))
            for t in ("slab_sample", "slab_frame", "cgroup_sample", "cgroup_frame", "scrape",
                      "removed_cgroup"):
                if t in tables:
                    conn.execute(text(f"ANALYZE {t}"))
        else:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return written


def make_partitions(engine: Any, first: datetime, last: datetime) -> None:
    """Daily partitions for the seeded history, as the writer path would have made them
    (PostgreSQL from migration 0005 on; nothing to do before it)."""
    try:
        from app.db import partitions  # type: ignore[attr-defined]
    except ImportError:
        return
    from sqlalchemy.orm import Session
    with Session(engine) as s, s.begin():
        partitions.create_days(s, range(partitions.day_of(first), partitions.day_of(last) + 1))


def _copy(conn: Any, table: str, rows: list[dict[str, Any]]) -> None:
    import json
    cols = list(rows[0])
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(
            f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        for r in rows:
            cp.write_row([json.dumps(v) if isinstance(v, dict) else v for v in r.values()])


# The floors: hand-written SQL per dialect, computing each chart's data straight from the
# tables, independent of app/db/queries.py. A bucket is floor(epoch seconds / step); its value
# is the average of the bucket's raw rows (as the charts show). `{b}` is the bucket expression.
BUCKET = {
    # strftime('%s') is whole seconds; with an integer step, floor((s + frac) / step) equals
    # s / step in integer division, so this is exact.
    "sqlite": "CAST(strftime('%s', {t}) AS INTEGER) / :step",
    "postgresql": "CAST(floor(extract(epoch FROM {t})) AS bigint) / :step",
}
HOST_SERIES = """
SELECT {b} AS b, avg(memcg_dying_total), avg(memcg_visible_total), avg(sreclaimable_bytes),
       avg(sunreclaim_bytes), avg(percpu_bytes)
FROM scrape
WHERE host_id = :hid AND taken_at >= :since AND taken_at <= :until
GROUP BY b ORDER BY b
"""
HOST_METRICS = ["memcg_dying", "memcg_live", "sreclaimable_bytes", "sunreclaim_bytes",
                "percpu_bytes"]
# Slab frames (0008): the host's frames in range, one blob a scrape; the cache's cells are
# picked out in Python (floor_frames). The bucket comes from SQL, as in the other floors.
CACHE_FRAMES = """
SELECT {b} AS b, data
FROM slab_frame
WHERE host_id = :hid AND taken_at >= :since AND taken_at <= :until
"""
CACHE_METRICS = ["objects", "active_objs", "slabs", "bytes"]
DYING_SERIES = """
SELECT {b} AS b, avg(memcg_dying_total)
FROM scrape
WHERE host_id = :hid AND taken_at >= :since AND taken_at <= :until
GROUP BY b ORDER BY b
"""
# The fleet page's sparklines: each host's dying count over the 24 h before its last scrape,
# in 48 half-hour buckets (mean time and count, fitted for growth; the max, drawn); a bucket
# counts when it starts no earlier than one bucket before
# that window, rows from the earliest such window of the page's hosts on.
SPARKLINES = {
    "sqlite": """
SELECT s.host_id, CAST(strftime('%s', s.taken_at) AS INTEGER) / 1800 AS b,
       avg(CAST(strftime('%s', s.taken_at) AS INTEGER)), avg(s.memcg_dying_total),
       max(s.memcg_dying_total)
FROM scrape s JOIN host h ON h.id = s.host_id
WHERE s.taken_at >= (SELECT datetime(min(last_seen_at), '-24 hours') FROM host)
  AND (CAST(strftime('%s', s.taken_at) AS INTEGER) / 1800) * 1800
      >= CAST(strftime('%s', h.last_seen_at) AS INTEGER) - 88200
GROUP BY s.host_id, b ORDER BY s.host_id, b
""",
    "postgresql": """
SELECT s.host_id, CAST(floor(extract(epoch FROM s.taken_at)) AS bigint) / 1800 AS b,
       avg(extract(epoch FROM s.taken_at)), avg(s.memcg_dying_total), max(s.memcg_dying_total)
FROM scrape s JOIN host h ON h.id = s.host_id
WHERE s.taken_at >= (SELECT min(last_seen_at) - interval '24 hours' FROM host)
  AND (CAST(floor(extract(epoch FROM s.taken_at)) AS bigint) / 1800) * 1800
      >= extract(epoch FROM h.last_seen_at) - 88200
GROUP BY s.host_id, b ORDER BY s.host_id, b
""",
}


def bucketed(sql: str, dialect: str) -> Any:
    """A series query with this dialect's bucket expression."""
    return text(sql.format(b=BUCKET[dialect].format(t="taken_at" if "sc." not in sql
                                                      else "sc.taken_at")))


def when(at: datetime, dialect: str) -> Any:
    """A bind value for a time column: SQLite stores naive UTC text, PostgreSQL timestamptz."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else at


def floor_series(conn: Any, dialect: str, sql: str, names: list[str],
                 **binds: Any) -> dict[str, list[tuple[float, float]]]:
    """Run one hand-written series query; per metric, (bucket start epoch, average) pairs."""
    step = binds["step"]
    rows = conn.execute(bucketed(sql, dialect), binds).all()
    return {n: [(float(r[0] * step), float(r[i + 1])) for r in rows]
            for i, n in enumerate(names)}


def cache_step(step: int) -> int:
    """A cache chart's bucket width for a range whose charts bucket by `step`."""
    return step if step <= 60 or step >= 3600 else math.ceil(step / 300) * 300


def floor_frames(conn: Any, dialect: str, **binds: Any
                 ) -> dict[str, list[tuple[float, float]]]:
    """The cache chart's data from slab frames: fetch (bucket, blob), inflate each blob up to
    the last wanted column and read the cache's four cells straight from its byte-shuffled
    columns (the layout of cgtable.pack_table, decoded here by hand; every seeded frame has
    one shape), then average per bucket."""
    step, cid = binds["step"], binds["cid"]
    want = ["num_objs", "active_objs", "num_slabs", "slab_bytes"]  # CACHE_METRICS' order
    acc: dict[int, list[int]] = {}
    head, ids, where, row = b"", b"", [0], 0
    n = 0
    need = 0
    for b, blob in conn.execute(bucketed(CACHE_FRAMES, dialect), binds):
        # Inflate only up to the last wanted column (the shape is the previous frame's).
        raw = zlib.decompressobj().decompress(blob, need) if need else zlib.decompress(blob)
        (hlen,) = struct.unpack_from("<I", raw, 4)
        if raw[8:8 + hlen] != head:
            head = raw[8:8 + hlen]
            h = json.loads(head)
            n, where = h["rows"], [h["columns"].index(c) for c in want]
            need = 8 + hlen + 8 * n + (max(where) + 1) * 9 * n
        pos = 8 + hlen
        if raw[pos:pos + 8 * n] != ids:
            ids = raw[pos:pos + 8 * n]
            row = array("q", ids).index(cid)
        base = pos + 8 * n
        sums = acc.setdefault(int(b), [0] * 5)
        sums[4] += 1
        for i, j in enumerate(where):
            v = base + j * 9 * n + n + row
            sums[i] += int.from_bytes(raw[v:v + 8 * n:n], "little")
    return {name: [(float(b * step), sums[i] / sums[4]) for b, sums in sorted(acc.items())]
            for i, name in enumerate(CACHE_METRICS)}


def floor_sparklines(conn: Any, dialect: str) -> dict[int, list[float]]:
    """The sparklines of every host, from the hand-written query."""
    out: dict[int, list[float]] = {}
    for hid, _b, _t, _mean, top in conn.execute(text(SPARKLINES[dialect])).all():
        out.setdefault(int(hid), []).append(float(top))
    return out


def api_series(client: TestClient, path: str, params: dict[str, Any]
               ) -> tuple[int, list[tuple[float, float]]]:
    """The step and (epoch, value) points of a series the page draws, from its JSON twin."""
    s = _ok(client.get(path, params=params)).json()["series"]
    return s["step_seconds"], [(datetime.fromisoformat(t).timestamp(), float(v))
                               for t, v in zip(s["times"], s["values"], strict=True)
                               if v is not None]


def same(a: list[tuple[float, float]] | list[float], b: list[tuple[float, float]] | list[float],
         what: str) -> None:
    """Stop the bench when a floor's data differs from the page's."""
    flat_a = [x for p in a for x in (p if isinstance(p, tuple) else (p,))]
    flat_b = [x for p in b for x in (p if isinstance(p, tuple) else (p,))]
    if len(flat_a) != len(flat_b) or any(abs(x - y) > 1e-9 * max(1.0, abs(x), abs(y))
                                         for x, y in zip(flat_a, flat_b, strict=True)):
        raise SystemExit(f"floor and page differ for {what}: {len(a)} vs {len(b)} points; "
                         f"first {a[:2]} vs {b[:2]}")


def elapsed(fn: Callable[[], Any]) -> Callable[[], float]:
    """A case for interleave(): wall seconds of one call."""
    def run() -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    return run


Row = tuple[str, float, float, float, float, float]


Case = tuple[str, Callable[[], Any], Callable[[], Any]]


def cases(client: TestClient, conn: Any, end: datetime) -> list[Case]:
    """(name, page, floor) per page, after checking every floor returns the page's data."""
    dialect = conn.dialect.name
    since, until = end - timedelta(days=3), end
    rng = {"since": since.isoformat(), "until": until.isoformat()}
    # The bucket width every page uses: at most 2000 points over the range.
    step = max(1, math.ceil((until - since).total_seconds() / 2000))
    binds = {"since": when(since, dialect), "until": when(until, dialect), "step": step}
    hosts = _ok(client.get("/api/v1/hosts", params={"limit": 1000})).json()["items"]
    top = hosts[0]["name"]
    hid, cid = conn.execute(text(
        "SELECT h.id, c.id FROM host h JOIN slab_cache c ON c.host_id = h.id "
        "WHERE h.name = :n AND c.name = 'dentry'"), {"n": top}).one()

    def host_floor() -> dict[str, list[tuple[float, float]]]:
        return floor_series(conn, dialect, HOST_SERIES, HOST_METRICS, hid=hid, **binds)

    def cache_floor() -> dict[str, list[tuple[float, float]]]:
        # The host's frames in range (slab_frame's (host_id, taken_at) index), then an
        # inflate and a byte pick per frame: the least work for the data in blobs.
        # Cache charts bucket by whole 5 minutes past a minute (their 5-minute rollups);
        # the bench runs no retention, so every point is from raw frames, as here.
        return floor_frames(conn, dialect, cid=cid, hid=hid,
                            **{**binds, "step": cache_step(step)})

    def dying_floor() -> dict[str, list[tuple[float, float]]]:
        return floor_series(conn, dialect, DYING_SERIES, ["memcg_dying"], hid=hid, **binds)

    def spark_floor() -> dict[int, list[float]]:
        return floor_sparklines(conn, dialect)

    check_equal(client, top, rng, step, hosts, host_floor(), cache_floor(), dying_floor(),
                spark_floor())
    return [
        ("fleet page /", lambda: _ok(client.get("/")), spark_floor),
        ("host page, 3 days", lambda: _ok(client.get(f"/hosts/{top}", params=rng)),
         host_floor),
        ("cache page, 3 days", lambda: _ok(client.get(f"/hosts/{top}/caches/dentry",
                                                      params=rng)), cache_floor),
        ("series API, 3 days", lambda: _ok(client.get(
            f"/api/v1/hosts/{top}/series", params={"metric": "memcg_dying", **rng})),
         dying_floor),
    ]


def measure(url: str, reps: int, end: datetime) -> list[Row]:
    """Each page against its floor, interleaved; floors checked equal to the pages' data."""
    engine = make_engine(url)
    out: list[Row] = []
    with TestClient(create_app(Settings(database_url=url))) as client, \
            engine.connect() as conn:
        for name, page, fl in cases(client, conn, end):
            page(), fl()  # warm
            r = interleave({"page": elapsed(page), "floor": elapsed(fl)}, reps)
            out.append((name, pct(r["page"], .5), pct(r["page"], .95), pct(r["floor"], .5),
                        pct(r["floor"], .95), median_ratio(r["page"], r["floor"])))
    engine.dispose()
    return out


def check_equal(client: TestClient, top: str, rng: dict[str, str], step: int,
                hosts: list[dict[str, Any]], host_f: dict[str, list[tuple[float, float]]],
                cache_f: dict[str, list[tuple[float, float]]],
                dying_f: dict[str, list[tuple[float, float]]],
                spark_f: dict[int, list[float]]) -> None:
    """Every floor returns exactly the data its page shows (through the pages' JSON twins)."""
    for metric in HOST_METRICS:
        got_step, pts = api_series(client, f"/api/v1/hosts/{top}/series",
                                   {"metric": metric, **rng})
        if got_step != step:
            raise SystemExit(f"the page buckets by {got_step} s, the floor by {step} s")
        same(host_f[metric], pts, f"host series {metric}")
    same(dying_f["memcg_dying"], api_series(client, f"/api/v1/hosts/{top}/series",
                                            {"metric": "memcg_dying", **rng})[1],
         "series API memcg_dying")
    for what in CACHE_METRICS:
        got_step, pts = api_series(client, f"/api/v1/hosts/{top}/caches/dentry/series",
                                   {"what": what, **rng})
        if got_step != cache_step(step):
            raise SystemExit(f"the cache page buckets by {got_step} s, the floor by "
                             f"{cache_step(step)} s")
        same(cache_f[what], pts, f"cache series {what}")
    by_name = {h["name"]: h for h in hosts}
    ids = {int(n.split("-")[1]) + 1: n for n in by_name}  # bench hosts: id = number + 1
    for hid, values in spark_f.items():
        same(values, by_name[ids[hid]]["sparkline_dying_24h"], f"sparkline of host {hid}")


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
    ap.add_argument("--quick", action="store_true", help="3 hosts x 1 day, 5 rounds")
    ap.add_argument("--reuse", metavar="DIR", help="keep the seeded databases in DIR and reuse "
                    "them on the next run (sqlite file, and a postgres database name file)")
    a = ap.parse_args()
    if a.quick:
        a.hosts, a.days, a.reps = 3, 1.0, 5
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
            measured = measure(url, a.reps, end)
            print("floors (hand-written SQL) return the same data as the pages: checked")
            print(f"{'page':<22}{'p50 ms':>9}{'p95 ms':>9}{'floor p50':>11}{'floor p95':>11}"
                  f"{'ratio':>9}")
            # (not `name`: that is the PostgreSQL database dropped below)
            for page, p50, p95, f50, f95, ratio in measured:
                flag = "" if p95 < 0.3 and ratio <= 3 else "   <- misses a target"
                print(f"{page:<22}{p50 * 1e3:9.1f}{p95 * 1e3:9.1f}{f50 * 1e3:11.1f}"
                      f"{f95 * 1e3:11.1f}{ratio:8.2f}x{flag}")
            if db != "sqlite" and not a.reuse:
                with psycopg.connect(**kw) as c:
                    c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
