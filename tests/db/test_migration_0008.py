"""Migration 0008 carries slab_sample rows into slab frames and back, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from app.db import slabframes
from app.db.base import UTCDateTime
from app.db.migrate import alembic_config, upgrade
from app.db.session import make_engine

T0 = datetime(2026, 11, 29, 23, 58, tzinfo=UTC)  # the scrapes cross midnight
BIG = (1 << 63) - 1  # the most a BIGINT column holds
md = sa.MetaData()
host = sa.Table("host", md, *(sa.Column(c) for c in (
    "id", "name", "kernel_release", "era", "cgroup_layout", "possible_cpus_total",
    "numa_nodes_total", "page_size_bytes")),
    sa.Column("first_seen_at", UTCDateTime), sa.Column("last_seen_at", UTCDateTime))
scrape = sa.Table("scrape", md, *(sa.Column(c) for c in (
    "id", "host_id", "duration_seconds", "kernel_release", "era", "memcg_method",
    "errors_total")), sa.Column("taken_at", UTCDateTime),
    sa.Column("proc_cgroups_json", sa.JSON))
slab_cache = sa.Table("slab_cache", md, *(sa.Column(c) for c in (
    "id", "host_id", "name", "object_size_bytes", "objs_per_slab_total",
    "pages_per_slab_total")), sa.Column("aliases_json", sa.JSON),
    *(sa.Column(c, UTCDateTime) for c in ("first_seen_at", "last_seen_at")))
SAMPLE_COLS = ("scrape_id", "cache_id", "taken_day", "active_objs_total", "num_objs_total",
               "num_slabs_total", "slab_bytes", "partial_slabs_total", "cpu_slabs_total")
slab = sa.Table("slab_sample", md, *(sa.Column(c) for c in SAMPLE_COLS))
hourly = sa.Table("scrape_hourly", md, sa.Column("host_id"), sa.Column("hour_at", UTCDateTime),
                  sa.Column("scrapes_total"), sa.Column("raw_dropped"))
fives = sa.Table("slab_5min", md, sa.Column("cache_id"), sa.Column("bucket_at", UTCDateTime),
                 *(sa.Column(c) for c in ("samples_total", "slab_bytes_sum", "num_objs_sum_total",
                                          "active_objs_sum_total", "num_slabs_sum_total")))
frame = sa.Table("slab_frame", md, sa.Column("scrape_id"), sa.Column("host_id"),
                 sa.Column("taken_at", UTCDateTime), sa.Column("data", sa.LargeBinary))


def _old_rows() -> dict[str, list[dict[str, Any]]]:
    """Two hosts, 4 and 2 scrapes; the second host has one cache less in a scrape."""
    hosts = [{"id": i, "name": f"h{i}", "kernel_release": "6.1", "era": "objcg-kmem",
              "cgroup_layout": "v2", "possible_cpus_total": 2, "numa_nodes_total": 1,
              "page_size_bytes": 4096, "first_seen_at": T0, "last_seen_at": T0}
             for i in (1, 2)]
    caches = [{"id": 10 * h + j, "host_id": h, "name": f"c{j}", "object_size_bytes": 64,
               "objs_per_slab_total": 64, "pages_per_slab_total": 1, "aliases_json": [],
               "first_seen_at": T0, "last_seen_at": T0} for h in (1, 2) for j in range(3)]
    scrapes, samples = [], []
    sid = 100
    for h, n in ((1, 4), (2, 2)):
        for k in range(n):
            sid += 1
            at = T0 + timedelta(minutes=k)
            scrapes.append({"id": sid, "host_id": h, "taken_at": at, "duration_seconds": 0.1,
                            "kernel_release": "x", "era": "e", "memcg_method": "t",
                            "errors_total": 0, "proc_cgroups_json": []})
            for j in range(3):
                if h == 2 and k == 1 and j == 2:
                    continue
                samples.append({
                    "scrape_id": sid, "cache_id": 10 * h + j,
                    "taken_day": int(at.timestamp() // 86400),
                    "active_objs_total": BIG if j == 0 else 90 * j + k,
                    "num_objs_total": 100 * j + k, "num_slabs_total": j + k,
                    "slab_bytes": 4096 * (j + k),
                    "partial_slabs_total": None if j == 1 else k,
                    "cpu_slabs_total": None if h == 2 else 2 * j})
    scrapes.append({"id": 200, "host_id": 1, "taken_at": T0 + timedelta(hours=1),
                    "duration_seconds": 0.1, "kernel_release": "x", "era": "e",
                    "memcg_method": "t", "errors_total": 0, "proc_cgroups_json": []})
    # host 1's hour 23:00 is rolled up with its raw rows kept, 00:00 is final (raw dropped)
    rolled = [{"host_id": 1, "hour_at": T0.replace(minute=0), "scrapes_total": 2,
               "raw_dropped": False},
              {"host_id": 1, "hour_at": T0.replace(minute=0) + timedelta(hours=1),
               "scrapes_total": 2, "raw_dropped": True}]
    return {"host": hosts, "slab_cache": caches, "scrape": scrapes, "slab_sample": samples,
            "scrape_hourly": rolled}


def _migrate(url: str, step: Any, revision: str, rows_per_batch: int) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes.update(connection=conn, rows_per_batch=rows_per_batch)
            step(cfg, revision)
    finally:
        engine.dispose()


def _samples(conn: sa.Connection) -> list[dict[str, Any]]:
    return [r._asdict() for r in conn.execute(
        sa.select(slab).order_by(slab.c.scrape_id, slab.c.cache_id))]


@pytest.mark.parametrize("rows_per_batch", [50_000, 3])
def test_slab_samples_become_frames_and_back(db_url: str, rows_per_batch: int) -> None:
    upgrade(db_url, "0007")
    old = _old_rows()
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for name in ("host", "slab_cache", "scrape", "slab_sample", "scrape_hourly"):
            conn.execute(sa.insert(md.tables[name]), old[name])
    engine.dispose()
    _migrate(db_url, command.upgrade, "0008", rows_per_batch)

    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert "slab_sample" not in sa.inspect(conn).get_table_names()
        got = conn.execute(sa.select(frame).order_by(frame.c.scrape_id)).all()
        with_samples = sorted({s["scrape_id"] for s in old["slab_sample"]})
        assert [f.scrape_id for f in got] == with_samples  # scrape 200 had none
        when = {s["id"]: (s["host_id"], s["taken_at"]) for s in old["scrape"]}
        for f in got:
            assert (f.host_id, f.taken_at) == when[f.scrape_id]
            assert slabframes.decode(f.data) == {
                s["cache_id"]: {"active_objs": s["active_objs_total"],
                                "num_objs": s["num_objs_total"],
                                "num_slabs": s["num_slabs_total"],
                                "slab_bytes": s["slab_bytes"],
                                "partial_slabs": s["partial_slabs_total"],
                                "cpu_slabs": s["cpu_slabs_total"]}
                for s in old["slab_sample"] if s["scrape_id"] == f.scrape_id}
        # the 5-minute rollups of the rolled-up hour whose raw rows are kept: 23:55, k = 0, 1
        got5 = {r.cache_id: r._asdict() for r in conn.execute(sa.select(fives))}
        assert set(got5) == {10, 11, 12}
        for j in range(3):
            ks = [s for s in old["slab_sample"]
                  if s["cache_id"] == 10 + j and s["scrape_id"] in (101, 102)]
            assert got5[10 + j] == {
                "cache_id": 10 + j, "bucket_at": T0 - timedelta(minutes=3),
                "samples_total": 2, "slab_bytes_sum": sum(s["slab_bytes"] for s in ks),
                "num_objs_sum_total": sum(s["num_objs_total"] for s in ks),
                "active_objs_sum_total": float(sum(s["active_objs_total"] for s in ks)),
                "num_slabs_sum_total": sum(s["num_slabs_total"] for s in ks)}
    engine.dispose()

    _migrate(db_url, command.downgrade, "0007", rows_per_batch)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert "slab_frame" not in sa.inspect(conn).get_table_names()
        assert _samples(conn) == old["slab_sample"]
    engine.dispose()
    upgrade(db_url)  # and up again over the downgraded data
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(frame)) == len(with_samples)
    engine.dispose()


def test_downgrade_refuses_counts_a_bigint_cannot_hold(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        old = _old_rows()
        for name in ("host", "slab_cache", "scrape"):
            conn.execute(sa.insert(md.tables[name]), old[name])
        conn.execute(sa.insert(frame).values(
            scrape_id=101, host_id=1, taken_at=T0,
            data=slabframes.pack({11: {"num_objs": BIG + 1, "active_objs": 1,
                                       "num_slabs": 1, "slab_bytes": 4096}})))
    engine.dispose()
    with pytest.raises(ValueError, match="num_objs=9223372036854775808 of cache 11"):
        _migrate(db_url, command.downgrade, "0007", 50_000)
