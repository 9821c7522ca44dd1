"""Migration 0004 carries old-layout cgroup samples into frames and back, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from app.db.base import UTCDateTime
from app.db.migrate import alembic_config, upgrade
from app.db.session import make_engine
from app.domain import cgtable as ct

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
md = sa.MetaData()
host = sa.Table("host", md, *(sa.Column(c) for c in (
    "id", "name", "kernel_release", "era", "cgroup_layout", "possible_cpus_total",
    "numa_nodes_total", "page_size_bytes")),
    sa.Column("first_seen_at", UTCDateTime), sa.Column("last_seen_at", UTCDateTime))
scrape = sa.Table("scrape", md, *(sa.Column(c) for c in (
    "id", "host_id", "duration_seconds", "kernel_release", "era", "memcg_method",
    "errors_total")), sa.Column("taken_at", UTCDateTime),
    *(sa.Column(c, sa.JSON) for c in ("meminfo_json", "vmstat_json", "proc_cgroups_json")))
cgroup = sa.Table("cgroup", md, *(sa.Column(c) for c in ("id", "host_id", "hierarchy", "path")),
                  *(sa.Column(c, UTCDateTime) for c in ("first_seen_at", "last_seen_at",
                                                        "removed_at")),
                  sa.Column("first_memory_stat", sa.LargeBinary))
sample = sa.Table("cgroup_sample", md, *(sa.Column(c) for c in (
    "scrape_id", "cgroup_id", "memory_usage_bytes", "kmem_usage_bytes", "file_bytes",
    "anon_bytes", "shmem_bytes", "slab_bytes", "kernel_stack_bytes", "nr_descendants_total",
    "nr_dying_descendants_total")),
    sa.Column("memory_stat_json", sa.JSON), sa.Column("cgroup_stat_json", sa.JSON))
removed = sa.Table("removed_cgroup", md, *(sa.Column(c) for c in (
    "id", "host_id", "cgroup_id", "hierarchy", "path", "last_memory_usage_bytes", "file_bytes",
    "shmem_bytes", "slab_bytes", "kernel_stack_bytes")),
    *(sa.Column(c, UTCDateTime) for c in ("last_seen_at", "removed_at", "stat_read_at")),
    sa.Column("last_memory_stat_json", sa.JSON), sa.Column("last_memory_stat", sa.LargeBinary))
slab_cache = sa.Table("slab_cache", md, *(sa.Column(c) for c in (
    "id", "host_id", "name", "object_size_bytes", "objs_per_slab_total",
    "pages_per_slab_total")), sa.Column("aliases_json", sa.JSON),
    *(sa.Column(c, UTCDateTime) for c in ("first_seen_at", "last_seen_at")))
slab = sa.Table("slab_sample", md, *(sa.Column(c) for c in (
    "scrape_id", "cache_id", "active_objs_total", "num_objs_total", "num_slabs_total",
    "slab_bytes", "partial_slabs_total", "cpu_slabs_total")))
frame = sa.Table("cgroup_frame", md, *(sa.Column(c) for c in (
    "id", "host_id", "scrape_id", "kind", "rows_total")), sa.Column("taken_at", UTCDateTime),
    sa.Column("data", sa.LargeBinary))


def _v2(k: int, j: int) -> dict[str, int]:
    return {"anon": 4096 * (j + k), "file": 65536 * j + k, "shmem": 4096 * j, "slab": 8192 * k,
            "slab_reclaimable": 4096 * k, "slab_unreclaimable": 4096 * k,
            "kernel_stack": 16384, "pgfault": 1000 * k + j, "workingset_refault_file": k,
            "hugetlb_unknown_key": 7 + j}


def _v1(k: int, j: int) -> dict[str, int]:
    return {"cache": 65536 * (j + k), "rss": 4096 * k, "shmem": 0, "mapped_file": 4096 * j,
            "total_cache": 65536 * (j + k + 1), "hierarchical_memory_limit": (1 << 63) - 4096,
            "pgpgin": 10 * k}


def _figs(stat: dict[str, int]) -> dict[str, int | None]:
    from app.db.frames import memory_figures
    return memory_figures(stat)


def _old_rows() -> dict[str, list[dict[str, Any]]]:
    """Two hosts as the 0003 store wrote them: v2 (3 scrapes) and v1 (2 scrapes)."""
    hosts = [{"id": 1, "name": "v2host", "kernel_release": "6.1", "era": "objcg-kmem",
              "cgroup_layout": "v2", "possible_cpus_total": 2, "numa_nodes_total": 1,
              "page_size_bytes": 4096, "first_seen_at": T0, "last_seen_at": T0},
             {"id": 2, "name": "v1host", "kernel_release": "5.4", "era": "5.3",
              "cgroup_layout": "v1", "possible_cpus_total": 4, "numa_nodes_total": 1,
              "page_size_bytes": 4096, "first_seen_at": T0, "last_seen_at": T0}]
    scrapes, cgroups, samples = [], [], []
    paths = {1: ["/", "/a.service", "/b.service", "/late.service"], 2: ["/", "/x.slice"]}
    for hid in (1, 2):
        for j, p in enumerate(paths[hid]):
            cgroups.append({"id": 10 * hid + j, "host_id": hid,
                            "hierarchy": "unified" if hid == 1 else "memory", "path": p,
                            "first_seen_at": T0, "last_seen_at": T0, "removed_at": None})
    sid = 100
    for hid, n in ((1, 3), (2, 2)):
        for k in range(n):
            sid += 1
            at = T0 + timedelta(minutes=k)
            scrapes.append({"id": sid, "host_id": hid, "taken_at": at, "duration_seconds": 0.1,
                            "kernel_release": "x", "era": "objcg-kmem", "memcg_method": "t",
                            "errors_total": 0, "meminfo_json": {"Slab": 1},
                            "vmstat_json": {"pgfault": 2}, "proc_cgroups_json": []})
            for j, p in enumerate(paths[hid]):
                if p == "/late.service" and k == 0:
                    continue  # first seen in the second scrape
                stat = _v2(k, j) if hid == 1 else _v1(k, j)
                cgstat = ({"nr_descendants": 3, "nr_dying_descendants": k + j,
                           "nr_subsys_cpu": 1} if hid == 1 else None)
                samples.append({
                    "scrape_id": sid, "cgroup_id": 10 * hid + j,
                    "memory_usage_bytes": 1_000_000 * (j + 1) + k if j else None,
                    "kmem_usage_bytes": 5000 + k if hid == 2 else None, **_figs(stat),
                    "nr_descendants_total": cgstat["nr_descendants"] if cgstat else None,
                    "nr_dying_descendants_total": (cgstat["nr_dying_descendants"]
                                                   if cgstat else None),
                    "memory_stat_json": stat, "cgroup_stat_json": cgstat})
    gone = [{"id": 1, "host_id": 1, "cgroup_id": None, "hierarchy": "unified",
             "path": "/gone.service", "last_seen_at": T0, "removed_at": T0 + timedelta(minutes=1),
             "last_memory_usage_bytes": 70000, "file_bytes": 65536, "shmem_bytes": 0,
             "slab_bytes": None, "kernel_stack_bytes": None,
             "last_memory_stat_json": {"file": 65536, "shmem": 0, "pgfault": (1 << 64) - 1}}]
    caches = [{"id": 7, "host_id": 1, "name": "dentry", "object_size_bytes": 192,
               "objs_per_slab_total": 21, "pages_per_slab_total": 1, "aliases_json": [],
               "first_seen_at": T0, "last_seen_at": T0}]
    slabs = [{"scrape_id": s["id"], "cache_id": 7, "active_objs_total": 800 + s["id"],
              "num_objs_total": 840 + s["id"], "num_slabs_total": 40, "slab_bytes": 163840,
              "partial_slabs_total": None, "cpu_slabs_total": 2}
             for s in scrapes if s["host_id"] == 1]
    return {"host": hosts, "scrape": scrapes, "cgroup": cgroups, "cgroup_sample": samples,
            "removed_cgroup": gone, "slab_cache": caches, "slab_sample": slabs}


def _slabs(conn: sa.Connection) -> list[dict[str, Any]]:
    return [r._asdict() for r in conn.execute(sa.select(slab).order_by(slab.c.scrape_id))]


def _decode(blob: bytes) -> dict[int, dict[str, int]]:
    from app.db.frames import decode
    return decode(blob)


def _as_columns(s: dict[str, Any], series: bool) -> dict[str, int]:
    out = {ct.STAT + k: v for k, v in s["memory_stat_json"].items()
           if not series or k in ct.SERIES_STAT_KEYS}
    out.update({ct.CGSTAT + k: v for k, v in (s["cgroup_stat_json"] or {}).items()})
    if s["memory_usage_bytes"] is not None:
        out[ct.USAGE] = s["memory_usage_bytes"]
    if s["kmem_usage_bytes"] is not None:
        out[ct.KMEM_USAGE] = s["kmem_usage_bytes"]
    return out


def _migrate(url: str, step: Any, revision: str, rows_per_batch: int) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes.update(connection=conn, rows_per_batch=rows_per_batch)
            step(cfg, revision)
    finally:
        engine.dispose()


@pytest.mark.parametrize("rows_per_batch", [5000, 3])
def test_old_layout_upgrades_to_frames_and_back(db_url: str, rows_per_batch: int) -> None:
    upgrade(db_url, "0003")
    old = _old_rows()
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for name in ("host", "scrape", "cgroup", "cgroup_sample", "removed_cgroup",
                     "slab_cache", "slab_sample"):
            t = md.tables[name]
            keep = {c.name for c in t.columns} - ({"first_memory_stat"} if name == "cgroup"
                                                  else set())
            keep -= {"stat_read_at", "last_memory_stat"} if name == "removed_cgroup" else set()
            conn.execute(sa.insert(t), [{k: v for k, v in r.items() if k in keep}
                                        for r in old[name]])
    engine.dispose()
    _migrate(db_url, command.upgrade, "0004", rows_per_batch)

    engine = make_engine(db_url)
    with engine.connect() as conn:
        frames = conn.execute(sa.select(frame).order_by(frame.c.scrape_id, frame.c.kind)).all()
        by_scrape: dict[int, list[dict[str, Any]]] = {}
        for s in old["cgroup_sample"]:
            by_scrape.setdefault(s["scrape_id"], []).append(s)
        # one series frame per scrape, one full frame for each host's latest (104 and 106)
        assert [(f.scrape_id, f.kind) for f in frames] == [
            (101, "series"), (102, "series"), (103, "full"), (103, "series"),
            (104, "series"), (105, "full"), (105, "series")]
        for f in frames:
            rows = by_scrape[f.scrape_id]
            assert f.rows_total == len(rows)
            assert f.host_id == (1 if f.scrape_id <= 103 else 2)
            assert _decode(f.data) == {s["cgroup_id"]: _as_columns(s, f.kind == "series")
                                       for s in rows}
        firsts = dict(conn.execute(sa.select(cgroup.c.id, cgroup.c.first_memory_stat)).all())
        assert ct.unpack_stat(firsts[13]) == _v2(1, 3)  # /late.service: its first sample
        assert ct.unpack_stat(firsts[11]) == _v2(0, 1)
        assert ct.unpack_stat(firsts[21]) == _v1(0, 1)
        (blob,) = conn.execute(sa.select(removed.c.last_memory_stat)).one()
        assert ct.unpack_stat(blob) == old["removed_cgroup"][0]["last_memory_stat_json"]
        names = {c["name"] for c in sa.inspect(conn).get_columns("removed_cgroup")}
        assert "last_memory_stat_json" not in names and "stat_read_at" in names
        assert "cgroup_sample" not in sa.inspect(conn).get_table_names()
        assert _slabs(conn) == old["slab_sample"]
        assert sa.inspect(conn).get_indexes("slab_sample") == []
        if conn.dialect.name == "sqlite":  # the primary key is the table
            sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = "
                                       "'slab_sample'").scalar_one()
            assert sql.rstrip().endswith("WITHOUT ROWID")
    with engine.begin() as conn:  # whole meminfo/vmstat are optional now
        conn.execute(sa.insert(scrape), [{
            "id": 200, "host_id": 1, "taken_at": T0 + timedelta(hours=1),
            "duration_seconds": 0.1, "kernel_release": "x", "era": "e", "memcg_method": "t",
            "errors_total": 0, "meminfo_json": sa.null(), "vmstat_json": sa.null(),
            "proc_cgroups_json": []}])
    engine.dispose()

    _migrate(db_url, command.downgrade, "0003", rows_per_batch)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        back = {(r.scrape_id, r.cgroup_id): r._asdict()
                for r in conn.execute(sa.select(sample)).all()}
        assert set(back) == {(s["scrape_id"], s["cgroup_id"]) for s in old["cgroup_sample"]}
        latest = {103, 105}
        for s in old["cgroup_sample"]:
            got = back[(s["scrape_id"], s["cgroup_id"])]
            want = dict(s)
            if s["scrape_id"] not in latest:
                # series keys of this scrape over the rest of the nearest full frame's keys
                hid = 1 if s["scrape_id"] <= 103 else 2
                full = next(x for x in old["cgroup_sample"]
                            if x["scrape_id"] == (103 if hid == 1 else 105)
                            and x["cgroup_id"] == s["cgroup_id"])
                want["memory_stat_json"] = {
                    **full["memory_stat_json"],
                    **{k: v for k, v in s["memory_stat_json"].items()
                       if k in ct.SERIES_STAT_KEYS}}
            assert got == want
        (stat,) = conn.execute(sa.select(removed.c.last_memory_stat_json)).one()
        assert stat == old["removed_cgroup"][0]["last_memory_stat_json"]
        assert conn.execute(sa.select(scrape.c.meminfo_json)
                            .where(scrape.c.id == 200)).scalar_one() == {}
        assert "cgroup_frame" not in sa.inspect(conn).get_table_names()
        assert _slabs(conn) == old["slab_sample"]
        assert [i["name"] for i in sa.inspect(conn).get_indexes("slab_sample")] == [
            "ix_slab_sample_cache_id"]
    engine.dispose()
    upgrade(db_url, "0004")  # and up again over the downgraded data
