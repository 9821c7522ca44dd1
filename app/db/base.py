"""Declarative base with a constraint naming convention, and a UTC datetime type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer, MetaData, case
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, also on SQLite (which stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc(value: Any) -> datetime:
    """A tz-aware UTC datetime from what a driver returned for a timestamp.

    A UNION (and an aggregate such as max()) drops the column type on SQLite: the timestamp
    comes back as naive text.
    """
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def insert_on_conflict(session: Session, target: Any) -> Any:
    """An INSERT that takes ON CONFLICT (DO NOTHING / DO UPDATE) in the session's dialect:
    PostgreSQL's, else SQLite's (the two databases slabscope runs on)."""
    from sqlalchemy.dialects import postgresql, sqlite
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(target)
    return sqlite.insert(target)


U64_MAX = (1 << 64) - 1
_TWO64 = 1 << 64
_I64_MIN = -(1 << 63)


def encode_u64(value: int) -> int:
    """What a BIGINT column stores of a u64: itself below 2^63, else value - 2^64 (the same
    64 bits as a signed integer). A value outside 0..2^64-1 is refused (ValueError)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise ValueError(f"{value!r} is not a u64 (0..{U64_MAX})")
    return value - _TWO64 if value >> 63 else value


def decode_u64(value: Any) -> Any:
    """The u64 a stored BIGINT holds (inverse of encode_u64); anything else as it is.

    Idempotent on decoded values (they are never negative), so it may be applied to rows a
    SQLite UNION or an aggregate returned without the column type.
    """
    if isinstance(value, int) and not isinstance(value, bool) and _I64_MIN <= value < 0:
        return value + _TWO64
    return value


class U64(TypeDecorator[int]):
    """An exact u64 (0..2^64-1, what the kernel prints for its counters) in a BIGINT column.

    Values of 2^63 and more are stored as value - 2^64 (two's complement): no column type
    change and the same on SQLite (which has no wider integer) and PostgreSQL. Reads through
    the column type decode them. In SQL the column holds the signed form: a value >= 2^63 is
    negative there, so `col >= 0` (`valid_u64`) is what keeps aggregates to sane values
    (such values are per-CPU counter underflow: a small negative number printed unsigned).

    `sqlite_integer`: the column was created INTEGER on SQLite (same storage as BIGINT there).
    """

    impl = BigInteger
    cache_ok = True

    def __init__(self, sqlite_integer: bool = False) -> None:
        super().__init__()
        self.sqlite_integer = sqlite_integer

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if self.sqlite_integer and dialect.name == "sqlite":
            return dialect.type_descriptor(Integer())
        return dialect.type_descriptor(BigInteger())

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        return None if value is None else encode_u64(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        # An aggregate of the column (max(), sum()) has its type too: a PostgreSQL sum is a
        # Decimal, left as it is.
        return decode_u64(value)

    def __repr__(self) -> str:
        return f"U64(sqlite_integer={self.sqlite_integer!r})"


def valid_u64(column: Any) -> Any:
    """A U64 column in SQL where it is below 2^63, else NULL: what sums, maxima, averages
    and counts of kernel figures use (a value >= 2^63 is counter underflow, not a size)."""
    return case((column >= 0, column), else_=None)
