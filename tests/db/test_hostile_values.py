"""Values real kernels print and hostile pushes send: stored or refused clearly, never a crash.

From the cold review of issue 8: a removed cgroup whose usage was 2^64-1 crashed the daemon
at every start; a corrupt frame blob gave 500 on most of a host's pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import models as m
from app.db import store
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.domain import cgtable as ct
from app.domain.samples import CgroupSample, RemovedCgroup
from app.main import create_app
from tests.conftest import HOST
from tests.snapshots import host_snapshot, stat_row, table

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
U64 = (1 << 64) - 1
ODD = {"anon": U64, "file": 1 << 63, "shmem": 0, "slab": -5, "kernel_stack": 16384}


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_a_removed_cgroup_with_u64_and_negative_values_is_stored(
        sessions: sessionmaker[Session]) -> None:
    snap = host_snapshot(HOST, T0)
    first = replace(snap, new_cgroups=(CgroupSample("unified", "/job", dict(ODD), U64),))
    gone = RemovedCgroup("unified", "/job", T0, T0 + timedelta(seconds=15), dict(ODD), U64, T0)
    second = replace(host_snapshot(HOST, T0 + timedelta(seconds=15)), removed=(gone,))
    for snap_ in (first, second):
        with sessions.begin() as s:
            store.write_snapshot(s, snap_)
    r = m.RemovedCgroup
    with sessions() as s:
        row = s.execute(select(r.last_memory_stat, r.last_memory_usage_bytes, r.file_bytes,
                               r.shmem_bytes, r.slab_bytes, r.kernel_stack_bytes)).one()
        first_blob = s.scalar(select(m.Cgroup.first_memory_stat))
    assert ct.unpack_stat(row[0]) == ODD  # exact, in the blob
    assert first_blob is not None and ct.unpack_stat(first_blob) == ODD
    # BIGINT columns hold what fits; the rest is NULL, not a crash.
    assert tuple(row[1:]) == (None, None, 0, -5, 16384)


@pytest.fixture
def corrupted(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    snap = host_snapshot(HOST, T0)
    rows = {("unified", f"/job-{i}"): stat_row({"file": 4096 * i, "anon": 8192}, usage=12288)
            for i in range(5)}
    for k in range(3):
        s_ = replace(snap, taken_at=T0 + timedelta(seconds=15 * k), series=table(rows),
                     full=table(rows))
        with sessions.begin() as s:
            store.write_snapshot(s, s_)
    with sessions.begin() as s:
        s.execute(update(m.CgroupFrame).values(data=b"\x78\x9c garbage"))
        latest = s.scalar(select(m.SlabFrame.scrape_id).order_by(m.SlabFrame.scrape_id.desc())
                          .limit(1))
        s.execute(update(m.SlabFrame).where(m.SlabFrame.scrape_id == latest)
                  .values(data=bytes.fromhex("deadbeef00112233")))
        s.execute(update(m.Cgroup).values(first_memory_stat=b"\x02\xff\xfe"))
    return sessions


def test_corrupt_frames_leave_every_page_answering(corrupted: sessionmaker[Session],
                                                   db_url: str) -> None:
    with corrupted() as s:
        host = s.scalar(select(m.Host.name))
    paths = [f"/hosts/{host}", f"/hosts/{host}/cgroups", f"/hosts/{host}/cgroups?format=json",
             f"/api/v1/hosts/{host}/cgroups", f"/api/v1/hosts/{host}/caches",
             f"/hosts/{host}/caches/dentry", f"/api/v1/hosts/{host}/caches/dentry/series",
             f"/api/v1/hosts/{host}/refcounts", f"/hosts/{host}/refcounts"]
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        got = {p: c.get(p).status_code for p in paths}
        tree = c.get(f"/api/v1/hosts/{host}/cgroups").json()
        caches = c.get(f"/api/v1/hosts/{host}/caches").json()
    assert set(got.values()) == {200}, got
    # The corrupt parts are left out, not made up: the cgroups' figures come back empty and
    # the latest scrape's caches (its slab frame is the corrupt one) are absent.
    assert all(i["file_bytes"] is None for i in tree["items"])
    assert caches["items"] == []


def test_naive_times_in_queries_are_utc(corrupted: sessionmaker[Session], db_url: str) -> None:
    with corrupted() as s:
        host = s.scalar(select(m.Host.name))
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        naive = c.get(f"/api/v1/hosts/{host}/caches?at=2026-11-30T12:00:20")
        aware = c.get(f"/api/v1/hosts/{host}/caches?at=2026-11-30T12:00:20Z")
        assert naive.status_code == 200 and naive.json() == aware.json()
        assert c.get(f"/api/v1/hosts/{host}/cgroups?at=2026-11-30T12:00:20").status_code == 200
