"""Migration 0010: kernel figures as exact u64 on both databases, and back."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import select, update

from app.db import models as m
from app.db.base import UTCDateTime
from app.db.migrate import downgrade, upgrade
from app.db.session import make_engine, make_session_factory

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
U64 = (1 << 64) - 1
md = sa.MetaData()
host = sa.Table("host", md, *(sa.Column(c) for c in (
    "id", "name", "kernel_release", "era", "cgroup_layout", "possible_cpus_total",
    "numa_nodes_total", "page_size_bytes")),
    sa.Column("first_seen_at", UTCDateTime), sa.Column("last_seen_at", UTCDateTime))
scrape = sa.Table("scrape", md, *(sa.Column(c) for c in (
    "id", "host_id", "duration_seconds", "kernel_release", "era", "memcg_method",
    "errors_total", "memcg_dying_total", "slab_bytes")), sa.Column("taken_at", UTCDateTime),
    sa.Column("proc_cgroups_json", sa.JSON))
removed = sa.Table("removed_cgroup", md, *(sa.Column(c) for c in (
    "id", "host_id", "hierarchy", "path", "last_memory_usage_bytes", "file_bytes")),
    *(sa.Column(c, UTCDateTime) for c in ("last_seen_at", "removed_at")),
    sa.Column("last_memory_stat", sa.LargeBinary))


def _raw(url: str) -> tuple[tuple[int | None, int | None], tuple[int | None, int | None]]:
    engine = make_engine(url)
    with engine.connect() as c:
        got = (tuple(c.execute(select(scrape.c.memcg_dying_total, scrape.c.slab_bytes)).one()),
               tuple(c.execute(select(removed.c.last_memory_usage_bytes,
                                      removed.c.file_bytes)).one()))
    engine.dispose()
    return got  # type: ignore[return-value]


def test_0010_up_and_down(db_url: str) -> None:
    upgrade(db_url, "0009")
    engine = make_engine(db_url)
    with engine.begin() as c:
        c.execute(host.insert().values(
            id=1, name="h", kernel_release="6.1", era="objcg-kmem", cgroup_layout="v2",
            possible_cpus_total=2, numa_nodes_total=1, page_size_bytes=4096,
            first_seen_at=T0, last_seen_at=T0))
        c.execute(scrape.insert().values(
            id=1, host_id=1, duration_seconds=0.1, kernel_release="6.1", era="e",
            memcg_method="t", errors_total=0, memcg_dying_total=5, slab_bytes=4096,
            taken_at=T0, proc_cgroups_json=[]))
        # what versions before 0010 kept of a v1 memory.stat's negative drift
        c.execute(removed.insert().values(
            id=1, host_id=1, hierarchy="memory", path="/a", last_memory_usage_bytes=7,
            file_bytes=-5, last_seen_at=T0, removed_at=T0, last_memory_stat=b"\x01"))
    engine.dispose()
    upgrade(db_url)
    assert _raw(db_url) == ((5, 4096), (7, None))  # -5 would read as 2^64-5: NULL
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:  # 2^40 dying memcgs: past PostgreSQL's INTEGER before 0010
        s.execute(update(m.Scrape).values(memcg_dying_total=1 << 40, slab_bytes=U64))
        s.execute(update(m.RemovedCgroup).values(file_bytes=1 << 63))
    with sessions() as s:
        assert s.execute(select(m.Scrape.memcg_dying_total, m.Scrape.slab_bytes)).one() == (
            1 << 40, U64)
        assert s.scalar(select(m.RemovedCgroup.file_bytes)) == 1 << 63
    engine.dispose()
    downgrade(db_url, "0009")
    # What the old schema cannot hold: NULL (INTEGER on PostgreSQL; SQLite's holds 64 bits).
    dying = None if db_url.startswith("postgresql") else 1 << 40
    assert _raw(db_url) == ((dying, None), (7, None))
    upgrade(db_url)
    assert _raw(db_url) == ((dying, None), (7, None))
