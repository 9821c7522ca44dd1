"""Partitions: migration 0005 converts tables holding data and back, the writer path makes
days on demand, DEFAULT catches the rest, retention purges it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, Table, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from app.db import models as m
from app.db import partitions, retention
from app.db.migrate import alembic_config, downgrade, upgrade
from app.db.session import make_engine, make_session_factory
from tests.db.history import CACHES, host_row, scrape_row

DAY0 = datetime(2026, 11, 20, 22, tzinfo=UTC)  # scrapes every 30 min for 3 days from here
SCRAPES = 144


def _before_0005() -> str:
    down = ScriptDirectory.from_config(alembic_config()).get_revision("0005").down_revision
    assert isinstance(down, str)
    return down


def _seed_old_layout(conn: Connection) -> None:
    """Rows written by the layout before 0005 (no taken_day, no partitions)."""
    md = MetaData()
    md.reflect(conn, only=["host", "slab_cache", "scrape", "slab_sample", "scrape_error",
                           "scrape_hourly"])
    t = md.tables
    conn.execute(insert(t["host"]).values(**host_row("old-host", DAY0)))
    hid = conn.scalar(select(t["host"].c.id))
    conn.execute(insert(t["slab_cache"]), [
        {"host_id": hid, "name": n, "aliases_json": [], "object_size_bytes": 64,
         "objs_per_slab_total": 64, "pages_per_slab_total": 1, "first_seen_at": DAY0,
         "last_seen_at": DAY0} for n in CACHES])
    cids = list(conn.scalars(select(t["slab_cache"].c.id)))
    for k in range(SCRAPES):
        row = scrape_row(hid, DAY0 + k * timedelta(minutes=30), k)
        row["snapshot_id"] = f"snap-{k}"
        sid = conn.execute(insert(t["scrape"]).values(**row).returning(t["scrape"].c.id)
                           ).scalar_one()
        conn.execute(insert(t["slab_sample"]), [
            {"scrape_id": sid, "cache_id": c, "active_objs_total": k, "num_objs_total": k + j,
             "num_slabs_total": 1, "slab_bytes": 4096} for j, c in enumerate(cids)])
        if k % 10 == 0:
            conn.execute(insert(t["scrape_error"]).values(
                scrape_id=sid, source="test", path="/x", message="m"))
    conn.execute(insert(t["scrape_hourly"]), [  # one hour before the raw data, one in it
        {"host_id": hid, "hour_at": DAY0 - timedelta(hours=5), "scrapes_total": 2},
        {"host_id": hid, "hour_at": DAY0, "scrapes_total": 2}])


def _counts(conn: Connection, slabs: str = "slab_sample") -> dict[str, int]:
    return {t: int(conn.scalar(text(f"SELECT count(*) FROM {t}")) or 0)
            for t in ("scrape", slabs, "scrape_error")}


def _relkinds(conn: Connection) -> dict[str, str]:
    return dict(conn.execute(text(
        "SELECT relname, relkind FROM pg_class WHERE relname = ANY(:t)"),
        {"t": [t.table for t in partitions.TABLES]}).all())


def test_upgrade_with_data_and_downgrade(db_url: str) -> None:
    prev = _before_0005()
    upgrade(db_url, prev)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            _seed_old_layout(conn)
            old = _counts(conn)
        assert old == {"scrape": SCRAPES, "slab_sample": SCRAPES * 5, "scrape_error": 15}
        upgrade(db_url, "0005")
        with engine.begin() as conn:
            pg = conn.dialect.name == "postgresql"
            assert _counts(conn) == old
            # every child row carries its scrape's UTC day (slab_sample as of 0005-0007)
            slab = Table("slab_sample", MetaData(), autoload_with=conn)
            pairs = conn.execute(select(slab.c.taken_day, m.Scrape.taken_at).join(
                m.Scrape, m.Scrape.id == slab.c.scrape_id)).all()
            assert len(pairs) == SCRAPES * 5
            assert all(d == partitions.day_of(at) for d, at in pairs)
            assert set(conn.scalars(select(slab.c.taken_day).distinct())) == {
                partitions.day_of(DAY0) + d for d in range(4)}
            assert dict(conn.execute(select(m.ScrapeHourly.hour_at, m.ScrapeHourly.raw_dropped)
                                     ).all()) == {DAY0 - timedelta(hours=5): True,
                                                  DAY0: False}
            top = conn.scalar(select(func.max(m.Scrape.id)))
            row = scrape_row(1, DAY0 + timedelta(days=3), 999) | {"snapshot_id": "new"}
            new_id = conn.execute(insert(m.Scrape).values(**row).returning(m.Scrape.id)
                                  ).scalar_one()
            assert new_id == top + 1  # the id sequence carried over
            if pg:
                assert set(_relkinds(conn).values()) == {"p"}
                names = set(conn.scalars(text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c"
                    " ON c.oid = i.inhrelid WHERE c.relkind = 'r'")))
                for t in partitions.TABLES:
                    if t.table in ("slab_frame", "cgroup_churn"):  # made by 0008, 0011
                        continue
                    assert partitions.partition_name(t.table, None) in names
                    for d in range(4):
                        assert partitions.partition_name(
                            t.table, partitions.day_of(DAY0) + d) in names
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(m.Scrape).values(**row))  # (host, snapshot id, time) unique
        downgrade(db_url, prev)
        with engine.begin() as conn:
            assert _counts(conn) == {**old, "scrape": SCRAPES + 1}
            assert "taken_day" not in {c["name"] for c in inspect(conn).get_columns(
                "slab_sample")}
            if pg:
                assert set(_relkinds(conn).values()) == {"r"}
                assert conn.scalar(text("SELECT count(*) FROM pg_inherits")) == 0
            sid = conn.scalar(text("SELECT min(id) FROM scrape"))
            conn.execute(text("DELETE FROM scrape WHERE id = :i"), {"i": sid})
            # the foreign keys to scrape are back, cascading
            assert conn.scalar(text("SELECT count(*) FROM slab_sample WHERE scrape_id = :i"),
                               {"i": sid}) == 0
            nxt = conn.execute(text(
                "INSERT INTO scrape_error (scrape_id, source, path, message)"
                " VALUES (:i, 's', 'p', 'm') RETURNING id"), {"i": new_id}).scalar_one()
            assert nxt == 16
        upgrade(db_url)
        with engine.begin() as conn:
            # 0008: one slab frame per scrape that had slab samples
            assert _counts(conn, "slab_frame") == {"scrape": SCRAPES,
                                                   "slab_frame": SCRAPES - 1,
                                                   "scrape_error": 15}
    finally:
        engine.dispose()


def test_writer_makes_days_and_default_takes_the_rest(postgres_url: str,
                                                      monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    sessions = make_session_factory(engine)
    now = datetime(2027, 3, 1, 12, tzinfo=UTC)
    today = partitions.day_of(now)
    try:
        with sessions.begin() as s:
            partitions.ensure(s, now, now=now)
            have = partitions.existing_days(s)
        assert all(set(range(today, today + 4)) <= days for days in have.values())
        calls: list[int] = []
        real = partitions.existing_days

        def counted(s: Any) -> dict[str, set[int]]:
            calls.append(1)
            return real(s)

        monkeypatch.setattr(partitions, "existing_days", counted)
        with sessions.begin() as s:
            # Days created by a transaction are cached once committed and seen: one catalog
            # read, then none for the rest of the day.
            for hours in (3, 4, 5):
                partitions.ensure(s, now + timedelta(hours=hours), now=now)
            assert calls == [1]
            far = now + timedelta(days=40)  # a stray clock: no table for its day
            partitions.ensure(s, far, now=now)
            s.execute(insert(m.Host).values(**host_row("h", now)))
            hid = s.scalar(select(m.Host.id))
            s.execute(insert(m.Scrape).values(**scrape_row(hid, far, 0)))
            s.execute(insert(m.Scrape).values(**scrape_row(hid, now - timedelta(days=30), 1)))
        monkeypatch.undo()
        with sessions.begin() as s:
            assert s.scalar(text("SELECT count(*) FROM scrape_default")) == 2
            # its rows sit in DEFAULT: the day cannot get a partition, and nothing fails
            assert partitions.create_days(s, [partitions.day_of(far)]) == []
            s.execute(insert(m.Scrape).values(**scrape_row(hid, far, 2)))
            r = retention.run(s, now, raw_days=14)
            assert r.raw_scrapes_deleted == 1  # the old one, from DEFAULT; the far one stays
            assert s.scalar(text("SELECT count(*) FROM scrape_default")) == 2
            assert s.scalar(select(func.count()).select_from(m.ScrapeHourly)) == 1
    finally:
        engine.dispose()


def test_schema_filter_hides_only_what_partitioning_changes() -> None:
    pg, lite = partitions.include_object("postgresql"), partitions.include_object("sqlite")
    fk = next(f.constraint for f in m.SlabFrame.__table__.foreign_keys
              if f.column.table.name == "host")
    to_scrape = next(f.constraint for f in m.SlabFrame.__table__.foreign_keys
                     if f.column.table.name == "scrape")
    assert not pg(None, "slab_frame_p20261130", "table", True, None)
    assert not pg(None, "scrape_default", "table", True, None)
    assert pg(None, "slab_frame", "table", True, None)
    assert pg(None, "host_default_x", "table", True, None)
    assert not pg(to_scrape, to_scrape.name, "foreign_key_constraint", False, None)
    assert pg(fk, fk.name, "foreign_key_constraint", False, None) == (fk is not to_scrape)
    assert lite(None, "slab_frame_p20261130", "table", True, None)
    assert lite(to_scrape, to_scrape.name, "foreign_key_constraint", False, None)


def test_drop_refuses_names_that_are_not_partitions() -> None:
    with pytest.raises(ValueError, match="not a partition"):
        partitions.drop(None, ["slab_frame"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="naive"):
        partitions.day_of(datetime(2026, 1, 1))
    assert partitions.partition_name("scrape", 20787) == "scrape_p20261130"
    assert partitions.day_start(20787) == datetime(2026, 11, 30, tzinfo=UTC)
