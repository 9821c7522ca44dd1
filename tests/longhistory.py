"""A host with a long history, seeded by bulk SQL (not write_snapshot): months of 15 s
scrapes and a removed cgroup every 0.6 s take seconds to write, not hours.

Used by tests/simulation/test_history_bounded.py and bench/projection.py. Removals follow a
fixed pattern (see `removal`), so tests know exactly what was written. The insert writes
only the columns it knows and fills any other NOT NULL column with an empty value of its
type, so the seeder keeps working while the storage layout changes around it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import JSON, Boolean, Engine, LargeBinary, String, Table, Text, insert, select
from sqlalchemy.types import TypeDecorator

from app.collector.sources.slabinfo import read_slabinfo
from app.db import models as m
from app.db import slabframes
from app.simulation.calibrate import thinned
from app.simulation.engine import simulate
from app.simulation.workload import JobClass, Kind, Leftover, Pressure, Workload
from tests.conftest import HOST

BATCH = 50_000


@dataclass(frozen=True, slots=True)
class Seeded:
    """What was written: the host, its time range, and the removal totals."""

    host_id: int
    name: str
    start: datetime
    end: datetime
    scrapes: int
    removed: int
    with_shmem: int
    file_bytes: int
    slab_bytes: int


def removal(i: int) -> tuple[int, int, int, int]:
    """The i-th removed cgroup's file, shmem, slab and kernel_stack bytes.

    One in 50 leaves 32 KiB of page cache, one in 2,000 also 16 KiB of tmpfs, one in 500 a
    kernel stack; every one leaves 100-106 dentries of slab.
    """
    return (32768 if i % 50 == 0 else 0, 16384 if i % 2000 == 0 else 0,
            19200 + 192 * (i % 7), 16384 if i % 500 == 0 else 0)


TRUTH_RECLAIM_PER_DAY = 2.0
DYING_AT_START = 500


def dying_curve(days: float, removals_per_minute: float) -> Callable[[float], int]:
    """The dying memcgs the model itself predicts for these removals (objcg-kmem, page cache
    reclaimed at TRUTH_RECLAIM_PER_DAY), as a function of seconds since the start."""
    per_day = removals_per_minute * 1440
    pc, shm = per_day / 50 - per_day / 2000, per_day / 2000
    classes = [JobClass("already dying", 0, 0.0, (Leftover(Kind.PAGECACHE, 1),),
                        period_seconds=1e-6, count=DYING_AT_START)]
    classes += [JobClass(n, r, 0.0, left, period_seconds=86_400 / r) for n, r, left in (
        ("pc", pc, (Leftover(Kind.PAGECACHE, 8),)),
        ("shm", shm, (Leftover(Kind.PAGECACHE, 8), Leftover(Kind.SHMEM, 4)))) if r > 0]
    w = Workload("truth", tuple(classes), Pressure(pagecache_per_day=TRUTH_RECLAIM_PER_DAY),
                 duration_seconds=days * 86_400, step_seconds=max(60.0, days * 86_400 / 2000))
    e = simulate(thinned(w), ["objcg-kmem"]).eras["objcg-kmem"]
    t, d = np.asarray(e.times_seconds), np.asarray(e.dying, dtype=np.float64)
    return lambda x: int(np.interp(x, t, d))


def _empty(col: Any) -> Any:
    t = col.type.impl if isinstance(col.type, TypeDecorator) else col.type
    if isinstance(t, JSON):
        return {}
    if isinstance(t, LargeBinary):
        return b""
    if isinstance(t, String | Text):
        return ""
    if isinstance(t, Boolean):
        return False
    return 0


def _columns(table: Table, given: list[str]) -> list[str]:
    """The given columns and every other NOT NULL one without a default (filled empty)."""
    extra = [c.name for c in table.columns
             if c.name not in given and not c.nullable and not c.primary_key
             and c.default is None and c.server_default is None]
    return given + extra


def _bulk(engine: Engine, table: Table, given: list[str],
          rows: Iterable[tuple[Any, ...]]) -> None:
    """Insert tuples of `given` columns: COPY on PostgreSQL, executemany on SQLite."""
    cols = _columns(table, given)
    fill = tuple(_empty(table.c[c]) for c in cols[len(given):])
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "postgresql":
            fill = tuple(json.dumps(v) if isinstance(v, dict) else v for v in fill)
            sql = f"COPY {table.name} ({', '.join(cols)}) FROM STDIN"
            with raw.driver_connection.cursor() as pg, pg.copy(sql) as cp:  # type: ignore[union-attr]
                for r in rows:
                    cp.write_row(r + fill)
        else:
            fill = tuple("{}" if isinstance(v, dict) else v for v in fill)
            sql = (f"INSERT INTO {table.name} ({', '.join(cols)}) "
                   f"VALUES ({', '.join('?' for _ in cols)})")
            cur = raw.cursor()
            batch: list[tuple[Any, ...]] = []
            for r in rows:
                batch.append(tuple(_sqlite(v) for v in r) + fill)
                if len(batch) >= BATCH:
                    cur.executemany(sql, batch)
                    batch.clear()
            if batch:
                cur.executemany(sql, batch)
        raw.commit()
    finally:
        raw.close()


def _sqlite(v: Any) -> Any:
    # UTCDateTime stores naive UTC text on SQLite, as SQLAlchemy's DateTime formats it.
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return v


def seed_long(engine: Engine, *, days: float, end: datetime, name: str = "long-0",
              interval_seconds: float = 15.0, removals_per_minute: float = 100.0) -> Seeded:
    """A host with `days` of scrapes every `interval_seconds` up to `end`, and removals."""
    n = int(days * 86_400 / interval_seconds) + 1
    start = end - timedelta(seconds=interval_seconds * (n - 1))
    with engine.begin() as conn:
        hid = conn.execute(insert(m.Host).values(
            name=name, machine_id="m", boot_id="b", kernel_release="6.18.44",
            era="objcg-kmem", cgroup_layout="v2", possible_cpus_total=2, numa_nodes_total=1,
            page_size_bytes=4096, first_seen_at=start, last_seen_at=end)
            .returning(m.Host.id)).scalar_one()
    _bulk(engine, m.Scrape.__table__, [  # type: ignore[arg-type]
        "host_id", "taken_at", "duration_seconds", "kernel_release", "era", "memcg_total",
        "memcg_visible_total", "memcg_dying_total", "memcg_method", "errors_total"],
        _scrapes(hid, start, n, interval_seconds, dying_curve(days, removals_per_minute)))
    _caches(engine, hid, end)
    gap = 60.0 / removals_per_minute
    count = int((end - start).total_seconds() / gap) + 1 if removals_per_minute > 0 else 0
    _bulk(engine, m.RemovedCgroup.__table__, [  # type: ignore[arg-type]
        "host_id", "hierarchy", "path", "last_seen_at", "removed_at",
        "last_memory_usage_bytes", "file_bytes", "shmem_bytes", "slab_bytes",
        "kernel_stack_bytes"], _removed(hid, start, count, gap))
    shm = sum(1 for i in range(count) if removal(i)[1] > 0)
    return Seeded(hid, name, start, end, n, count, shm, sum(removal(i)[0] for i in range(count)),
                  sum(removal(i)[2] for i in range(count)))


def _scrapes(hid: int, start: datetime, n: int, step: float,
             dying: Callable[[float], int]) -> Iterator[tuple[Any, ...]]:
    for k in range(n):
        d = dying(k * step) + (k * 7919 % 13)  # and a little noise
        live = 10_000 + k % 7
        yield (hid, start + timedelta(seconds=step * k), 0.002, "6.18.44", "objcg-kmem",
               d + live, live, d, "cgroup.stat", 0)


def _removed(hid: int, start: datetime, count: int, gap: float) -> Iterator[tuple[Any, ...]]:
    for i in range(count):
        at = start + timedelta(seconds=gap * i)
        f, s, sl, k = removal(i)
        yield (hid, "unified", f"/system.slice/job-{i}.service", at - timedelta(seconds=60),
               at, f + s + sl + k, f, s, sl, k)


def _caches(engine: Engine, hid: int, end: datetime) -> None:
    """This VM's 235 real caches, sampled at the latest scrape (the refcount view's input)."""
    rows = read_slabinfo(str(HOST / "proc"))
    with engine.begin() as conn:
        latest, at = conn.execute(select(m.Scrape.id, m.Scrape.taken_at)
                                  .where(m.Scrape.host_id == hid)
                                  .order_by(m.Scrape.taken_at.desc()).limit(1)).one()
        frame: dict[int, dict[str, int | None]] = {}
        for r in rows:
            cid = conn.execute(insert(m.SlabCache).values(
                host_id=hid, name=r.name, aliases_json=[], object_size_bytes=r.objsize_bytes,
                slab_size_bytes=None, objs_per_slab_total=r.objperslab,
                pages_per_slab_total=r.pagesperslab, order=None, reclaim_account=None,
                first_seen_at=end, last_seen_at=end).returning(m.SlabCache.id)).scalar_one()
            frame[cid] = {"active_objs": r.active_objs, "num_objs": r.num_objs,
                          "num_slabs": r.num_slabs,
                          "slab_bytes": r.num_slabs * r.pagesperslab * 4096}
        conn.execute(insert(m.SlabFrame).values(scrape_id=latest, host_id=hid, taken_at=at,
                                                data=slabframes.pack(frame)))
