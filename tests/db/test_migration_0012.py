"""Migration 0012 marks the removed_hourly hours whose records retention already deleted
(the hours wholly before a host's oldest record, and every hour of a host with none)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from app.db import models as m
from app.db.base import UTCDateTime
from app.db.migrate import upgrade
from app.db.session import make_engine
from tests.db.history import host_row

H = datetime(2026, 11, 10, 5, tzinfo=UTC)


def _hour(host: int, at: datetime) -> dict[str, object]:
    return {"host_id": host, "hour_at": at, "removed_total": 1, "with_file_total": 0,
            "with_shmem_total": 0, "pagecache_only_total": 0, "with_kernel_stack_total": 0,
            "slab_known_total": 0, "file_bytes_sum": 0.0, "shmem_bytes_sum": 0.0,
            "slab_bytes_sum": 0.0, "kernel_stack_bytes_sum": 0.0}


def test_existing_rollups_are_marked_dropped_before_the_oldest_record(db_url: str) -> None:
    upgrade(db_url, "0011")
    engine = make_engine(db_url)
    rh = sa.table("removed_hourly", *(sa.column(c, UTCDateTime if c == "hour_at" else None)
                                      for c in _hour(0, H)))
    try:
        with engine.begin() as c:
            a, b = (c.execute(sa.insert(m.Host).values(**host_row(n, H)).returning(m.Host.id))
                    .scalar_one() for n in ("kept", "gone"))
            c.execute(sa.insert(rh), [_hour(a, H), _hour(a, H + timedelta(hours=1)),
                                      _hour(a, H + timedelta(hours=2)), _hour(b, H)])
            c.execute(sa.insert(m.RemovedCgroup).values(
                host_id=a, hierarchy="memory", path="/x", last_seen_at=H,
                removed_at=H + timedelta(hours=1, minutes=20), last_memory_stat=b""))
        upgrade(db_url)
        with engine.connect() as c:
            got = {(r.host_id, r.hour_at): r.raw_dropped for r in c.execute(
                sa.select(m.RemovedHourly.host_id, m.RemovedHourly.hour_at,
                          m.RemovedHourly.raw_dropped))}
        assert got == {(a, H): True, (a, H + timedelta(hours=1)): False,
                       (a, H + timedelta(hours=2)): False, (b, H): True}
    finally:
        engine.dispose()
