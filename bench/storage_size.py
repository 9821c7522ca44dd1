#!/usr/bin/env python3
"""Database growth per host per day at default cadences, on SQLite and PostgreSQL.

Writes synthetic snapshots of one large host through store.write_snapshot (the collector's
and the ingest's path), one transaction per tick, and prints bytes per table per simulated
day, extrapolated from a steady-state window:

- 10,000 live cgroups (cgroup2, ~60-key memory.stat, paths like a Kubernetes node's);
- a tick every 15 s: 235 slab caches (this VM's) as one slab frame, meminfo columns,
  /proc/cgroups;
- 100 cgroups created and 100 removed a minute (25 a tick), each new one with its whole
  memory.stat, each removed one with its last memory.stat;
- a series frame of every live cgroup every 300 s, a full frame every 6 h (measured once,
  counted 4 times a day), whole meminfo/vmstat every hour;
- values change every tick: random page-aligned sizes, random event counters, sparse keys
  (shmem, dirty, writeback, thp, zswap, ...) zero in 80 % of cgroups.

Retention's rollups are not written here: slab_5min (235 caches x 288 five-minute rows a
day) adds 6.5 MB a day on SQLite and 8.2 MB on PostgreSQL, slab_hourly 0.5 / 0.8 MB
(measured after `retention.rollup` over a day of bench/pages.py's frames).

Target (issue 8): <= 250 MB per host per day in total. SQLite sizes are pages per b-tree
(dbstat, indexes counted with their table); PostgreSQL sizes pg_total_relation_size (heap,
indexes, TOAST), with a plain VACUUM every 5 simulated minutes standing in for autovacuum
(updated rows' old versions become reusable space, as on a server).

Usage: python bench/storage_size.py [--hours 2] [--cgroups 10000] [--db sqlite,postgres]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from array import array
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import store
from app.db.base import Base
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.domain import cgtable as ct
from app.domain.samples import CgroupSample, CgroupTable, RemovedCgroup, Snapshot
from tests.snapshots import host_snapshot

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "fixtures" / "host-6.18"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TICK = 15
SERIES_EVERY = 300 // TICK
HOST_FULL_EVERY = 3600 // TICK
FULL_PER_DAY = 86_400 / 21_600

# A cgroup2 memory.stat of a 6.x kernel, in the kernel's order.
V2_KEYS = (
    "anon", "file", "kernel", "kernel_stack", "pagetables", "sec_pagetables", "percpu",
    "sock", "vmalloc", "shmem", "zswap", "zswapped", "file_mapped", "file_dirty",
    "file_writeback", "swapcached", "anon_thp", "file_thp", "shmem_thp", "inactive_anon",
    "active_anon", "inactive_file", "active_file", "unevictable", "slab_reclaimable",
    "slab_unreclaimable", "slab", "workingset_refault_anon", "workingset_refault_file",
    "workingset_activate_anon", "workingset_activate_file", "workingset_restore_anon",
    "workingset_restore_file", "workingset_nodereclaim", "pgscan", "pgsteal",
    "pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged", "pgsteal_kswapd",
    "pgsteal_direct", "pgsteal_khugepaged", "pgfault", "pgmajfault", "pgrefill",
    "pgactivate", "pgdeactivate", "pglazyfree", "pglazyfreed", "zswpin", "zswpout",
    "zswpwb", "thp_fault_alloc", "thp_collapse_alloc", "thp_swpout", "thp_swpout_fallback",
    "numa_pages_migrated", "numa_pte_updates", "numa_hint_faults", "hugetlb")
# --values realistic (default): a node without swap, zswap, THP, NUMA or memory pressure, as
# on this VM and the fixtures: these keys are 0 in most cgroups ...
QUIET = {"zswap", "zswapped", "swapcached", "anon_thp", "file_thp", "shmem_thp", "unevictable",
         "sec_pagetables", "hugetlb", "pglazyfree", "pglazyfreed", "zswpin", "zswpout",
         "zswpwb", "thp_fault_alloc", "thp_collapse_alloc", "thp_swpout",
         "thp_swpout_fallback", "numa_pages_migrated", "numa_pte_updates", "numa_hint_faults",
         "pgrefill", "pgscan", "pgsteal", "pgscan_kswapd", "pgscan_direct",
         "pgscan_khugepaged", "pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged",
         "workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon",
         "workingset_activate_file", "workingset_restore_anon", "workingset_restore_file",
         "workingset_nodereclaim"}
# ... these in some (the fraction that is not 0) ...
SOME = {"shmem": 0.2, "file_dirty": 0.2, "file_writeback": 0.05, "sock": 0.5,
        "pgmajfault": 0.5}
# ... and the rest always, sizes and counters spread over orders of magnitude (log-uniform).
# --values random: every key a uniform random number every tick (the worst case).
SERIES_KEYS = tuple(k for k in ct.SERIES_STAT_KEYS if k in V2_KEYS)
SERIES_COLUMNS = ct.stat_columns(SERIES_KEYS, ct.SERIES_CGSTAT_KEYS)
FULL_COLUMNS = ct.stat_columns(V2_KEYS, ct.SERIES_CGSTAT_KEYS)


MODE = "realistic"


def value(rng: random.Random, column: str) -> int:
    """A plausible value of one column, new every tick."""
    key = column.split(":", 1)[-1]
    counter = key.startswith(("pg", "workingset", "thp", "numa", "zsw"))
    if column.startswith(ct.CGSTAT):
        return rng.randrange(0, 4)
    if MODE == "random":
        if key == "kernel_stack":
            return rng.randrange(1, 64) * 16384
        return rng.getrandbits(32) if counter else rng.getrandbits(18) * 4096
    if key in QUIET or rng.random() >= SOME.get(key, 1.0):
        return 0
    if key == "kernel_stack":
        return rng.randrange(1, 64) * 16384
    if key == "percpu":
        return 8 * int(2 ** rng.uniform(8, 17))
    if counter:
        return int(2 ** rng.uniform(0, 23))
    return 4096 * int(2 ** rng.uniform(4, 18))  # 64 KiB .. 1 GiB


def walk_table(rng: random.Random, columns: tuple[str, ...], paths: list[str]) -> CgroupTable:
    """Every live cgroup's figures, built column-wise as the collector does."""
    n = len(paths)
    values = tuple(array("Q", [value(rng, c) for _ in range(n)]) for c in columns)
    return CgroupTable(columns, ("unified",) * n, tuple(paths), values,
                       tuple(b"\x01" * n for _ in columns))


def whole_stat(rng: random.Random) -> dict[str, int]:
    """One cgroup's whole memory.stat."""
    return {k: value(rng, ct.STAT + k) for k in V2_KEYS}


def new_path(rng: random.Random) -> str:
    return f"/kubepods.slice/pod{rng.getrandbits(64):016x}/{rng.getrandbits(48):012x}"


class Host:
    """The synthetic host: its live cgroups and what one tick of it looks like."""

    def __init__(self, cgroups: int, churn_per_tick: int, seed: int, start: datetime) -> None:
        self.rng = random.Random(seed)
        self.base = host_snapshot(HOST, start)
        self.paths = [new_path(self.rng) for _ in range(cgroups)]
        self.churn = churn_per_tick
        self.start = start

    def tick(self, k: int, *, series: bool, full: bool) -> Snapshot:
        rng = self.rng
        at = self.start + timedelta(seconds=TICK * k)
        new: list[str] = []
        removed: list[RemovedCgroup] = []
        if k == 0:
            new = list(self.paths)
        else:
            for _ in range(self.churn):
                gone = self.paths.pop(rng.randrange(len(self.paths)))
                removed.append(RemovedCgroup("unified", gone, at - timedelta(seconds=TICK), at,
                                             whole_stat(rng), value(rng, ct.USAGE),
                                             stat_read_at=at - timedelta(seconds=60)))
                new.append(new_path(rng))
            self.paths.extend(new)
        caches = tuple(c._replace(active_objs=c.active_objs + rng.randrange(100),
                                  num_objs=c.num_objs + rng.randrange(100),
                                  num_slabs=c.num_slabs + k % 7,
                                  bytes=(c.num_slabs + k % 7) * c.pages_per_slab * 4096)
                       for c in self.base.caches)
        meminfo = {key: v + rng.randrange(4096) for key, v in self.base.meminfo.items()}
        return replace(
            self.base, taken_at=at, caches=caches, meminfo=meminfo,
            new_cgroups=tuple(CgroupSample("unified", p, whole_stat(rng)) for p in new),
            series=walk_table(rng, SERIES_COLUMNS, self.paths) if series else None,
            full=walk_table(rng, FULL_COLUMNS, self.paths) if full else None,
            removed=tuple(removed), host_full=k % HOST_FULL_EVERY == 0)


def sizes_sqlite(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as s:
        s.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        owner = dict(s.execute(text("SELECT name, tbl_name FROM sqlite_master")).all())
        out: dict[str, int] = {}
        for name, size in s.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")):
            table = owner.get(name, name)
            out[table] = out.get(table, 0) + int(size)
        return out


def sizes_postgres(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as s:
        # A partitioned parent holds no data itself: add its partitions (daily and DEFAULT,
        # with their indexes and TOAST; pg_partition_tree lists none for a plain table).
        return {t: int(s.scalar(text(
            f"SELECT pg_total_relation_size('{t}') + coalesce((SELECT"
            " sum(pg_total_relation_size(relid)) FROM pg_partition_tree(:t)"
            " WHERE relid <> CAST(:t AS regclass)), 0)"), {"t": t}) or 0)
            for t in Base.metadata.tables}


def measure(url: str, args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float]]:
    """Bytes per table per day and write latencies (ms) of one database."""
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    sizes: Callable[[sessionmaker[Session]], dict[str, int]] = (
        sizes_sqlite if url.startswith("sqlite") else sizes_postgres)
    host = Host(args.cgroups, args.churn // (60 // TICK), args.seed,
                datetime(2026, 11, 1, tzinfo=UTC))

    def write(snap: Snapshot) -> float:
        t = time.perf_counter()
        with sessions.begin() as s:
            store.write_snapshot(s, snap, snapshot_id=uuid.uuid4().hex)
        return (time.perf_counter() - t) * 1000

    write(host.tick(0, series=True, full=True))  # the first walk: every cgroup is new
    ticks = int(args.hours * 3600 / TICK)
    before = sizes(sessions)
    plain: list[float] = []
    walks: list[float] = []
    for k in range(1, ticks + 1):
        series = k % SERIES_EVERY == 0
        snap = host.tick(k, series=series, full=False)
        (walks if series else plain).append(write(snap))
        if series and url.startswith("postgresql"):
            _vacuum(engine)
    after = sizes(sessions)
    full_ms = write(host.tick(ticks + 1, series=False, full=True))
    with_full = sizes(sessions)
    engine.dispose()
    scale = 86_400 / (ticks * TICK)
    per_day = {t: (after.get(t, 0) - before.get(t, 0)) * scale for t in after}
    per_day["cgroup_frame"] = per_day.get("cgroup_frame", 0.0) + FULL_PER_DAY * (
        with_full.get("cgroup_frame", 0) - after.get("cgroup_frame", 0))
    lat = {"tick p50": statistics.median(plain), "tick p99": _p99(plain),
           "series tick p50": statistics.median(walks), "series tick max": max(walks),
           "full tick": full_ms}
    return per_day, lat


def _vacuum(engine: Engine) -> None:
    """What autovacuum does on a server: old row versions' space becomes reusable."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM"))


def _p99(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.99))]


def _postgres_url() -> tuple[str, Callable[[], None]]:
    import psycopg
    from sqlalchemy.engine import make_url
    u = make_url(PG_ADMIN)
    name = f"slabscope_size_{uuid.uuid4().hex[:8]}"
    kw = {"host": u.host, "port": u.port or 5432, "user": u.username, "dbname": u.database,
          "autocommit": True}
    with psycopg.connect(**kw) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(**kw) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return str(u.set(database=name).render_as_string(hide_password=False)), drop


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=2.0, help="simulated steady-state window")
    p.add_argument("--cgroups", type=int, default=10_000)
    p.add_argument("--churn", type=int, default=100, help="cgroups created/removed a minute")
    p.add_argument("--db", default="sqlite,postgres")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--values", choices=("realistic", "random"), default="realistic")
    args = p.parse_args()
    global MODE
    MODE = args.values
    results: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for db in args.db.split(","):
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as d:
                results[db] = measure(f"sqlite:///{d}/size.db", args)
        else:
            url, drop = _postgres_url()
            try:
                results[db] = measure(url, args)
            finally:
                drop()
    dbs = list(results)
    tables = sorted({t for r, _ in results.values() for t, v in r.items() if v > 0},
                    key=lambda t: -max(results[d][0].get(t, 0) for d in dbs))
    print(f"{args.cgroups} cgroups, {args.churn}/min churn, {args.hours} h window, "
          f"{args.values} values "
          "(MB per host per day)")
    print(f"{'table':<26}" + "".join(f"{d:>12}" for d in dbs))
    for t in tables:
        print(f"{t:<26}" + "".join(f"{results[d][0].get(t, 0) / 1e6:>12.1f}" for d in dbs))
    print(f"{'total':<26}" + "".join(f"{sum(results[d][0].values()) / 1e6:>12.1f}"
                                     for d in dbs) + "   (target <= 250)")
    for k in results[dbs[0]][1]:
        print(f"{k + ' (ms)':<26}" + "".join(f"{results[d][1][k]:>12.1f}" for d in dbs))


if __name__ == "__main__":
    main()
