"""Migration 0011: counted churn tables, partitioned like slab_frame on PostgreSQL, and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import inspect, select, text

from app.db import models as m
from app.db import partitions
from app.db.base import UTCDateTime
from app.db.migrate import downgrade, upgrade
from app.db.session import make_engine, make_session_factory

# Today: migration 0005 made daily partitions for today and the days ahead on PostgreSQL.
T0 = datetime.now(UTC).replace(microsecond=0)
md = sa.MetaData()
host = sa.Table("host", md, *(sa.Column(c) for c in (
    "id", "name", "kernel_release", "era", "cgroup_layout", "possible_cpus_total",
    "numa_nodes_total", "page_size_bytes")),
    sa.Column("first_seen_at", UTCDateTime), sa.Column("last_seen_at", UTCDateTime))
scrape = sa.Table("scrape", md, *(sa.Column(c) for c in (
    "id", "host_id", "duration_seconds", "kernel_release", "era", "memcg_method",
    "errors_total")), sa.Column("taken_at", UTCDateTime), sa.Column("proc_cgroups_json", sa.JSON))


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_0011_up_and_down(db_url: str) -> None:
    upgrade(db_url, "0010")
    pg = db_url.startswith("postgresql")
    engine = make_engine(db_url)
    with engine.begin() as c:
        c.execute(host.insert().values(
            id=1, name="h", kernel_release="6.18", era="objcg-kmem", cgroup_layout="hybrid",
            possible_cpus_total=2, numa_nodes_total=1, page_size_bytes=4096,
            first_seen_at=T0, last_seen_at=T0))
        c.execute(scrape.insert().values(
            id=7, host_id=1, duration_seconds=0.1, kernel_release="6.18", era="e",
            memcg_method="t", errors_total=0, taken_at=T0, proc_cgroups_json=[]))
    engine.dispose()
    upgrade(db_url)
    assert {"cgroup_churn", "churn_hourly"} <= _tables(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        s.add(m.CgroupChurn(scrape_id=7, hierarchy="memory", host_id=1, taken_at=T0,
                            since_at=T0 - timedelta(seconds=15), created_total=51,
                            removed_total=50, freed_total=None, exact=True))
        s.add(m.ChurnHourly(host_id=1, hierarchy="memory", hour_at=T0, intervals_total=1,
                            inexact_total=0, created_total=51, removed_total=50,
                            freed_total=0, freed_intervals_total=0))
    with sessions() as s:
        assert s.execute(select(m.CgroupChurn.created_total, m.CgroupChurn.removed_total,
                                m.CgroupChurn.freed_total, m.CgroupChurn.since_at)).one() == (
            51, 50, None, T0 - timedelta(seconds=15))
        if pg:  # 0011 made the day's partition, as `scrape` has it: the row is not in DEFAULT
            name = partitions.partition_name("cgroup_churn", partitions.day_of(T0))
            assert s.scalar(text(f"SELECT count(*) FROM {name}")) == 1
            assert s.scalar(text("SELECT count(*) FROM cgroup_churn_default")) == 0
    engine.dispose()
    downgrade(db_url, "0010")
    left = _tables(db_url)
    assert not {t for t in left if t.startswith(("cgroup_churn", "churn_hourly"))}
    engine = make_engine(db_url)
    with engine.connect() as c:  # the scrape stays
        assert c.scalar(select(sa.func.count()).select_from(scrape)) == 1
    engine.dispose()
    upgrade(db_url)
    engine = make_engine(db_url)
    with make_session_factory(engine)() as s:
        assert s.scalar(select(sa.func.count()).select_from(m.CgroupChurn)) == 0
    engine.dispose()
