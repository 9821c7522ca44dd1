"""Migrations: upgrade -> downgrade -> upgrade, and the models match the migrated schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.db.base import Base
from app.db.migrate import downgrade, upgrade
from app.db.partitions import include_object, is_partition
from app.db.session import make_engine

TABLES = {"host", "scrape", "scrape_error", "slab_cache", "slab_frame", "cgroup",
          "cgroup_frame", "cgroup_kmem_cache_sample", "memcg_cache_sample",
          "memcg_slabinfo_sample", "removed_cgroup", "host_token", "scrape_hourly",
          "slab_hourly", "ingest_counter", "host_spool_dropped", "alert_state",
          "removed_hourly", "slab_5min", "cgroup_churn", "churn_hourly"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        # Daily partitions are tables to the inspector (PostgreSQL); the parents are compared.
        return {t for t in inspect(engine).get_table_names()
                if t != "alembic_version" and not is_partition(t)}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    upgrade(db_url)
    assert _tables(db_url) == TABLES
    downgrade(db_url, "base")
    assert _tables(db_url) == set()
    upgrade(db_url)
    assert _tables(db_url) == TABLES
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "compare_type": True, "include_object": include_object(conn.dialect.name)})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []
