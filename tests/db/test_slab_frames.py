"""Slab frames: exact u64 round trips, and cache series and tables as the row layout gave."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import cacheseries as cs
from app.db import models as m
from app.db import queries as q
from app.db import retention, slabframes
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.domain import cgtable as ct
from tests.db.history import CACHES, cache_ids, seed_history

START = datetime(2026, 11, 20, tzinfo=UTC)
EVERY = timedelta(minutes=5)
SCRAPES = 30  # 2.5 hours
TOP = (1 << 64) - 1


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_frames_round_trip_u64_values_and_absent_columns() -> None:
    rows: dict[int, dict[str, int | None]] = {
        7: {"active_objs": TOP, "num_objs": TOP, "num_slabs": 1 << 63, "slab_bytes": TOP - 1,
            "partial_slabs": None, "cpu_slabs": 0},
        3: {"active_objs": 0, "num_objs": 1, "num_slabs": 2, "slab_bytes": 4096,
            "partial_slabs": 5, "cpu_slabs": None},
    }
    blob = slabframes.pack(rows)
    assert slabframes.decode(blob) == rows
    reader = ct.CellReader(["num_objs", "partial_slabs", "cpu_slabs", "no_such_column"])
    assert reader.cells(blob, 7) == (TOP, None, 0, None)
    assert reader.cells(blob, 3) == (1, 5, None, None)
    assert reader.cells(blob, 99) is None  # not in this frame
    with pytest.raises(ValueError, match="not a u64"):
        slabframes.pack({1: {"num_objs": 1 << 64}})
    with pytest.raises(ct.CodecError):
        reader.cells(b"not a frame", 7)
    with pytest.raises(ct.CodecError):  # a new shape is checked whole
        ct.CellReader(["num_objs"]).cells(blob[:-3], 7)
    with pytest.raises(ct.CodecError):  # a known shape cut short of the wanted columns
        reader.cells(blob[:len(blob) // 2], 7)


def _expected(j: int, metric: str, ks: list[int]) -> float:
    """The bucket's average, from tests/db/history.py's formula of scrape k, cache j."""
    formula = {"objects": lambda k: 100 * j + 3 * k, "active_objs": lambda k: 90 * j + k,
               "slabs": lambda k: 10 * j + k, "bytes": lambda k: 4096 * (10 * j + k)}[metric]
    return sum(formula(k) for k in ks) / len(ks)


@pytest.mark.parametrize("step", [300, 900, 3600])
def test_cache_series_from_frames_is_the_row_layouts(sessions: sessionmaker[Session],
                                                      step: int) -> None:
    hosts = seed_history(sessions, hosts=2, start=START, scrapes=SCRAPES, interval=EVERY)
    until = START + EVERY * (SCRAPES - 1)
    with sessions() as s:
        ids = cache_ids(s, hosts["host-1"])
        # history.py numbers caches in this order (j in its formulas)
        assert sorted(ids) == sorted(CACHES)
        for j, name in enumerate(ids):
            got = cs.cache_series(s, ids[name], ["objects", "active_objs", "slabs", "bytes"],
                                 START, until, step)
            buckets: dict[int, list[int]] = {}
            for k in range(SCRAPES):
                at = START + EVERY * k
                buckets.setdefault(int(at.timestamp()) // step, []).append(k)
            for metric, series in got.items():
                assert series.step_seconds == step
                assert series.times == [datetime.fromtimestamp(b * step, UTC)
                                        for b in sorted(buckets)]
                assert series.values == [_expected(j, metric, buckets[b])
                                         for b in sorted(buckets)], (name, metric)
        with pytest.raises(ValueError, match="unknown cache metric"):
            cs.cache_series(s, ids["dentry"], ["nope"], START, until, step)


def test_cache_rows_decode_two_frames(sessions: sessionmaker[Session]) -> None:
    hosts = seed_history(sessions, hosts=1, start=START, scrapes=3, interval=EVERY)
    hid = hosts["host-0"]
    with sessions.begin() as s:
        ids = cache_ids(s, hid)
        at = START + timedelta(hours=1)
        sid = int(s.execute(insert(m.Scrape).values(
            host_id=hid, taken_at=at, duration_seconds=0.1, kernel_release="6.18.0",
            era="objcg-kmem", memcg_method="t", errors_total=0, proc_cgroups_json=[])
            .returning(m.Scrape.id)).scalar_one())
        # a count no BIGINT column could hold, and a cache absent from this frame
        s.execute(insert(m.SlabFrame).values(scrape_id=sid, host_id=hid, taken_at=at,
                                             data=slabframes.pack({
            ids["dentry"]: {"active_objs": TOP, "num_objs": TOP, "num_slabs": 3,
                            "slab_bytes": 12288},
            ids["filp"]: {"active_objs": 1, "num_objs": 2, "num_slabs": 1,
                          "slab_bytes": 4096}})))
    with sessions() as s:
        first = q.first_scrape_since(s, hid, START)
        assert first is not None
        rows = {r.name: r for r in q.cache_rows(s, sid, first.id)}
        assert set(rows) == {"dentry", "filp"}
        d = rows["dentry"]
        assert (d.objects, d.active_objs, d.slabs, d.bytes) == (TOP, TOP, 3, 12288)
        order = list(ids)  # history.py's cache j had 4096 * (10 j + k) bytes at scrape k
        assert d.growth_bytes == 12288 - 4096 * 10 * order.index("dentry")
        f = rows["filp"]
        assert f.growth_bytes == 4096 - 4096 * 10 * order.index("filp")
        assert (f.object_size_bytes, f.objs_per_slab) == (64, 64)
        assert [r.growth_bytes for r in q.cache_rows(s, sid, None)] == [None, None]
        assert q.cache_rows(s, 10**9, None) == []  # no frame: no caches


def _want(ids: dict[str, int], name: str, metric: str, step: int, scrapes: range
          ) -> tuple[list[datetime], list[float]]:
    j = list(ids).index(name)
    buckets: dict[int, list[int]] = {}
    for k in scrapes:
        buckets.setdefault(int((START + EVERY * k).timestamp()) // step, []).append(k)
    return ([datetime.fromtimestamp(b * step, UTC) for b in sorted(buckets)],
            [_expected(j, metric, buckets[b]) for b in sorted(buckets)])


@pytest.mark.parametrize("step", [300, 900])
def test_five_minute_rollups_serve_steps_of_whole_five_minutes(
        sessions: sessionmaker[Session], step: int) -> None:
    hosts = seed_history(sessions, hosts=1, start=START, scrapes=SCRAPES, interval=EVERY)
    until = START + EVERY * (SCRAPES - 1)
    with sessions.begin() as s:  # hours 01:00 and 02:00 stay raw (01:00 is not rolled up)
        retention.rollup(s, START + timedelta(hours=3), before=START + timedelta(hours=1))
    with sessions() as s:
        ids = cache_ids(s, hosts["host-0"])
        fives = s.scalar(select(func.count()).select_from(m.SlabFiveMinutes))
        assert fives == 12 * len(CACHES)  # the first hour, 5 caches
        for name, cid in ids.items():
            got = cs.cache_series(s, cid, ["objects", "bytes"], START, until, step)
            for metric in ("objects", "bytes"):
                assert (got[metric].times, got[metric].values) == _want(
                    ids, name, metric, step, range(SCRAPES)), (name, metric)
    with sessions.begin() as s:  # the rolled-up hour is read from rollups, not frames
        s.execute(delete(m.SlabFrame).where(m.SlabFrame.taken_at < START + timedelta(hours=1)))
    with sessions() as s:
        got = cs.cache_series(s, ids["dentry"], ["objects"], START, until, step)["objects"]
        assert (got.times, got.values) == _want(ids, "dentry", "objects", step, range(SCRAPES))
        # a range that starts inside a rolled-up bucket: its frames, not the whole bucket
        mid = START + timedelta(minutes=7)
        got = cs.cache_series(s, ids["dentry"], ["objects"], mid, until, step)["objects"]
        assert got.values[1:] == _want(ids, "dentry", "objects", step, range(2, SCRAPES))[1][1:]


def test_cache_chart_steps_are_whole_five_minutes_past_a_minute() -> None:
    day = timedelta(days=1)
    assert cs.cache_step(START, START + day, None) == 44  # 24 h: raw frames
    assert cs.cache_step(START, START + 3 * day, None) == 300  # 130 s -> 5 minutes
    assert cs.cache_step(START, START + 7 * day, None) == 600  # 303 s -> 10 minutes
    assert cs.cache_step(START, START + 100 * day, None) == 4320  # hourly rollups
    assert cs.cache_step(START, START + timedelta(hours=1), 90) == 300
    assert cs.cache_step(START, START + timedelta(hours=1), 60) == 60
