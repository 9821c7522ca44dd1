"""Daily RANGE partitions of the sample tables on PostgreSQL (SQLite keeps plain tables).

Retention drops a whole day of raw samples as a few `DROP TABLE`s instead of deleting
millions of rows (scrape_error, kmem and memcg samples: rows per cache or cgroup), which leaves no
dead tuples, no vacuum debt and no index bloat behind.

How children carry the time. PostgreSQL wants the partition key in every primary key and
unique constraint of a partitioned table, so every per-scrape table needs its own copy of
the scrape's time:

- `scrape` (and `cgroup_frame` and `slab_frame`, which have a `taken_at` of their own) is
  partitioned by its `taken_at` timestamp.
- Every other per-scrape table gets `taken_day`: an INTEGER, the scrape's UTC day since
  1970-01-01 (`day_of`), written by the same writer that writes the row. A timestamp copy
  would cost ~26 bytes of text per row on SQLite (35 MB per host per day for slab_sample,
  the row-per-cache table slab_frame replaced in 0008,
  14 % of the 250 MB budget). The day number costs 3 bytes per row on SQLite (measured:
  +4.1 MB per 1.35 M slab_sample rows) and on PostgreSQL fits the alignment padding after
  `cache_id` in the row and in the primary key (index size unchanged, measured); the heap
  row still grows 8 bytes when it holds a NULL, as the null bitmap passes 8 columns
  (115 -> 123 bytes per slab_sample row with indexes, +10.7 MB per host per day). One
  column on both databases keeps one writer path and lets the models say NOT NULL
  everywhere (the schema check compares them), and lets queries prune partitions.

Unique keys. scrape's (host_id, snapshot_id) becomes (host_id, snapshot_id, taken_at) under
the same name on PostgreSQL: a snapshot id names one snapshot, hence one time, so a replayed
push still collides. SQLite keeps the two-column key.

Foreign keys. On PostgreSQL a foreign key to a partitioned table must name a unique key
that includes the partition key, and a partition of a referenced table cannot simply be
dropped: it must be detached first, which queries the referencing table for rows that
point into it. The per-scrape tables therefore keep no foreign key to `scrape` on
PostgreSQL (they keep those to `host`, `slab_cache` and `cgroup`): rows are written in their
scrape's transaction and dropped with it, a day at a time, children first. SQLite keeps the
cascading keys of the models.

Partitions are named `<table>_pYYYYMMDD`; `<table>_default` takes any row no daily partition
covers (very late or far-future snapshots), so an insert never fails. The writer path calls
`ensure` (one cached set lookup per snapshot; the catalog is read when a day is first seen)
and `slabscope retention` creates days ahead (AHEAD_DAYS), so writers rarely create any.
Creating or dropping a partition takes an ACCESS EXCLUSIVE lock on its parent until the
transaction ends: both happen last in short transactions, parents locked in TABLES order
(as writers insert), so they stall other writers for milliseconds and never deadlock them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

DAY_SECONDS = 86400
AHEAD_DAYS = 3  # days created ahead of today, by retention and by the writer
LATE_DAYS = 2  # a writer creates a missing past day only this recent (the spool holds ~41 h)


@dataclass(frozen=True, slots=True)
class Partitioned:
    """A table partitioned by day: its key column, an INTEGER day or a timestamp."""

    table: str
    key: str

    @property
    def by_day(self) -> bool:
        """True when the key is a day number (`taken_day`), False for a timestamp."""
        return self.key == "taken_day"


# Parents first: partitions are created in this order and dropped in the reverse one.
TABLES: tuple[Partitioned, ...] = (
    Partitioned("scrape", "taken_at"),
    Partitioned("scrape_error", "taken_day"),
    Partitioned("slab_frame", "taken_at"),
    Partitioned("cgroup_kmem_cache_sample", "taken_day"),
    Partitioned("memcg_cache_sample", "taken_day"),
    Partitioned("memcg_slabinfo_sample", "taken_day"),
    Partitioned("cgroup_frame", "taken_at"),
    Partitioned("cgroup_churn", "taken_at"),  # 0011
)
PARENTS = frozenset(t.table for t in TABLES)
SCRAPE_UNIQUE = "uq_scrape_host_id_snapshot_id"  # the push idempotency key
_NAME = re.compile(r"^(?P<table>[a-z_]+)_(?:p(?P<ymd>\d{8})|default)$")


def day_of(at: datetime) -> int:
    """The UTC day number (days since 1970-01-01) of a tz-aware time."""
    if at.tzinfo is None:
        raise ValueError("naive datetime given to day_of")
    return int(at.timestamp() // DAY_SECONDS)


def day_start(day: int) -> datetime:
    """Midnight UTC that starts a day number."""
    return datetime.fromtimestamp(day * DAY_SECONDS, UTC)


def partition_name(table: str, day: int | None) -> str:
    """`<table>_pYYYYMMDD` for a day, `<table>_default` for None."""
    return f"{table}_default" if day is None else f"{table}_p{day_start(day):%Y%m%d}"


def is_partition(name: str) -> bool:
    """True for the name of a partition of one of our partitioned tables."""
    found = _NAME.match(name)
    return found is not None and found.group("table") in PARENTS


def _bound(t: Partitioned, day: int) -> str:
    return str(day) if t.by_day else f"'{day_start(day).isoformat()}'"


def is_postgres(session: Session) -> bool:
    """Partitions exist only on PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"


def existing_days(session: Session) -> dict[str, set[int]]:
    """The daily partitions of each partitioned table, from the catalog."""
    rows = session.execute(text(
        "SELECT p.relname, c.relname FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE p.relname = ANY(:parents) AND pg_table_is_visible(p.oid)"),
        {"parents": sorted(PARENTS)}).all()
    out: dict[str, set[int]] = {t.table: set() for t in TABLES}
    for parent, child in rows:
        found = _NAME.match(child)
        if found is not None and found.group("ymd"):
            ymd = datetime.strptime(found.group("ymd"), "%Y%m%d").replace(tzinfo=UTC)
            out[parent].add(day_of(ymd))
    return out


def create_days(session: Session, days: Iterable[int]) -> list[str]:
    """Create the missing daily partitions of every table; return the names created.

    A day whose rows already sit in a DEFAULT partition cannot get its own partitions
    (PostgreSQL refuses): the whole day is skipped, in a savepoint, and stays in DEFAULT.
    """
    have = existing_days(session)
    made: list[str] = []
    for day in sorted(set(days)):
        missing = [t for t in TABLES if day not in have[t.table]]
        if not missing:
            continue
        try:
            with session.begin_nested():
                for t in missing:
                    session.execute(text(
                        f"CREATE TABLE IF NOT EXISTS {partition_name(t.table, day)}"
                        f" PARTITION OF {t.table}"
                        f" FOR VALUES FROM ({_bound(t, day)}) TO ({_bound(t, day + 1)})"))
        except DBAPIError as err:
            log.warning("no partitions for %s, its rows stay in DEFAULT: %s",
                        day_start(day).date(), str(err.orig).splitlines()[0])
            continue
        made += [partition_name(t.table, day) for t in missing]
    return made


# Days known to have partitions, per database URL, in this process: a writer reads the
# catalog once per new day instead of once per snapshot.
_known: dict[str, set[int]] = {}


def ensure(session: Session, at: datetime, now: datetime | None = None) -> None:
    """Make sure the partitions of `at`'s day exist (writer path; a no-op off PostgreSQL).

    Days older than LATE_DAYS or past AHEAD_DAYS are left to the DEFAULT partition: a
    stray clock must not create a table per day it invents.
    """
    if not is_postgres(session):
        return
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    day = day_of(at)
    known = _known.setdefault(key, set())
    if day in known:
        return
    # Only committed days are cached: what this transaction creates may yet roll back.
    full = set.intersection(*existing_days(session).values())
    known.update(full)
    if day in full:
        return
    today = day_of(now or datetime.now(UTC))
    if today - LATE_DAYS <= day <= today + AHEAD_DAYS:
        create_days(session, range(day, max(day, today) + AHEAD_DAYS + 1))


def expired(session: Session, before_day: int) -> list[str]:
    """Daily partitions of every table that end on or before `before_day`, children first."""
    have = existing_days(session)
    return [partition_name(t.table, d) for t in reversed(TABLES)
            for d in sorted(have[t.table]) if d < before_day]


def lock_parents(session: Session) -> None:
    """Block writers for the short drop step (parents in TABLES order, as writers lock)."""
    session.execute(text(f"LOCK TABLE {', '.join(t.table for t in TABLES)}"
                         " IN ACCESS EXCLUSIVE MODE"))


def drop(session: Session, names: Iterable[str]) -> None:
    """Drop partitions by name (children's first: `expired` orders them)."""
    for name in names:
        if not is_partition(name):
            raise ValueError(f"not a partition of a sample table: {name!r}")
        session.execute(text(f"DROP TABLE IF EXISTS {name}"))


def purge_default(session: Session, before_day: int) -> int:
    """Delete rows older than `before_day` from the DEFAULT partitions; return scrapes gone."""
    gone = 0
    for t in reversed(TABLES):
        bound = _bound(t, before_day)
        r = session.execute(text(f"DELETE FROM {partition_name(t.table, None)}"
                                 f" WHERE {t.key} < {bound}"))
        if t.table == "scrape":
            gone = int(getattr(r, "rowcount", 0) or 0)
    return gone


def include_object(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """An Alembic include_object filter that hides what partitioning changes on PostgreSQL.

    Partitions are not in the models, the per-scrape tables have no foreign key to `scrape`
    there, and scrape's unique key also holds taken_at (see the module docstring);
    everything else is still compared.
    """
    def include(obj: Any, name: str | None, type_: str, reflected: bool,
                compare_to: Any) -> bool:
        if dialect != "postgresql":
            return True
        if type_ == "table" and reflected and name is not None and is_partition(name):
            return False
        if type_ == "foreign_key_constraint" and not reflected:
            return not (obj.referred_table.name == "scrape" and obj.table.name in PARENTS)
        # Same name, plus the partition key: (host_id, snapshot_id, taken_at).
        return not (type_ == "unique_constraint" and name == SCRAPE_UNIQUE)

    return include
