"""kernel figures as exact u64: INTEGER columns of kernel values become BIGINT (PostgreSQL),
removed_hourly byte sums become double precision, and stray negative figures become NULL

Kernel counters are u64 and real hosts print values near 2^64 (per-CPU drift). The columns
hold them in two's complement (app.db.base.U64: a value v >= 2^63 is stored as v - 2^64),
so a BIGINT is wide enough; the INTEGER ones (memcg counts, cache geometry, css ids, 32
bits on PostgreSQL) are made BIGINT. SQLite stores 64 bits in any INTEGER column: its
declared types stay. A negative value stored before (a v1 memory.stat's drift printed
signed, kept by older versions in removed_cgroup) would now read as a u64 near 2^64: it is
set to NULL, as values the columns could not hold were (the whole memory.stat blob keeps it).

removed_hourly's byte sums become double precision, as every other rollup sum: a sum of
u64 values does not fit a BIGINT.

Downgrade: values the old schema cannot hold (>= 2^63, or past INTEGER where a column goes
back to INTEGER) become NULL in nullable columns and the largest value it holds in NOT NULL
ones (the old schema could not store them at all).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 21:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

I32_MAX = (1 << 31) - 1
I64_MAX = (1 << 63) - 1

# (table, column, nullable): kernel values that were INTEGER.
WIDENED = (
    ('scrape', 'memcg_num_cgroups_total', True),
    ('scrape', 'memcg_total', True),
    ('scrape', 'memcg_visible_total', True),
    ('scrape', 'memcg_dying_total', True),
    ('slab_cache', 'object_size_bytes', False),
    ('slab_cache', 'slab_size_bytes', True),
    ('slab_cache', 'objs_per_slab_total', False),
    ('slab_cache', 'pages_per_slab_total', False),
    ('slab_cache', 'order', True),
    ('cgroup_kmem_cache_sample', 'object_size_bytes', False),
    ('cgroup_kmem_cache_sample', 'objs_per_slab_total', False),
    ('cgroup_kmem_cache_sample', 'pages_per_slab_total', False),
    ('memcg_cache_sample', 'order', True),
    ('memcg_cache_sample', 'object_size_bytes', True),
    ('memcg_cache_sample', 'objs_per_slab_total', True),
    ('memcg_slabinfo_sample', 'css_id', True),
)
# The rollup's maximum of memcg_dying_total (of values below 2^63: plain BIGINT).
DYING_MAX = ('scrape_hourly', 'memcg_dying_max_total', True)
# (table, column, nullable): kernel values that were BIGINT already.
BIGINT_U64 = (
    *(('scrape', c, True) for c in (
        'mem_total_bytes', 'slab_bytes', 'sreclaimable_bytes', 'sunreclaim_bytes',
        'percpu_bytes', 'kernel_stack_bytes', 'shmem_bytes')),
    *(('cgroup_kmem_cache_sample', c, False) for c in (
        'active_objs_total', 'num_objs_total', 'num_slabs_total')),
    ('memcg_cache_sample', 'memcg_serial', False),
    *(('memcg_cache_sample', c, True) for c in (
        'slabs_total', 'total_objects_total', 'objects_total')),
    *(('memcg_slabinfo_sample', c, False) for c in (
        'active_objs_total', 'num_objs_total', 'active_slabs_total', 'num_slabs_total')),
    *(('removed_cgroup', c, True) for c in (
        'last_memory_usage_bytes', 'file_bytes', 'shmem_bytes', 'slab_bytes',
        'kernel_stack_bytes')),
)
U64_COLUMNS = WIDENED + BIGINT_U64
SUMS = ('file_bytes_sum', 'shmem_bytes_sum', 'slab_bytes_sum', 'kernel_stack_bytes_sum')


def _q(name: str) -> str:
    return str(op.get_bind().dialect.identifier_preparer.quote(name))


def _fix(columns: Sequence[tuple[str, str, bool]], bad: str, not_null_value: int) -> None:
    """Per table, one UPDATE: where `bad` (a condition on {c}) holds, NULL or the given value."""
    tables: dict[str, list[tuple[str, bool]]] = {}
    for t, c, nullable in columns:
        tables.setdefault(t, []).append((c, nullable))
    for t, cols in tables.items():
        sets = ', '.join(
            f"{_q(c)} = CASE WHEN {bad.format(c=_q(c))} THEN "
            f"{'NULL' if nullable else not_null_value} ELSE {_q(c)} END" for c, nullable in cols)
        where = ' OR '.join(bad.format(c=_q(c)) for c, _ in cols)
        op.execute(sa.text(f"UPDATE {_q(t)} SET {sets} WHERE {where}"))


def _alter(columns: Sequence[tuple[str, str, bool]], to: str, using: str = '') -> None:
    """One ALTER TABLE per table (PostgreSQL): each rewrites the table and its partitions."""
    tables: dict[str, list[str]] = {}
    for t, c, _ in columns:
        tables.setdefault(t, []).append(c)
    for t, cols in tables.items():
        how = ', '.join(f"ALTER COLUMN {_q(c)} TYPE {to}"
                        + (f" USING {using.format(c=_q(c))}" if using else '') for c in cols)
        op.execute(sa.text(f"ALTER TABLE {_q(t)} {how}"))


def upgrade() -> None:
    # Negative values stored by older versions: not u64 figures (would read as ~2^64).
    _fix([x for x in U64_COLUMNS if x[2]], '{c} < 0', 0)
    if op.get_bind().dialect.name != 'postgresql':
        return
    _alter((*WIDENED, DYING_MAX), 'BIGINT')
    _alter([('removed_hourly', c, False) for c in SUMS], 'DOUBLE PRECISION')


def downgrade() -> None:
    # u64 values >= 2^63 (stored as negatives) the old schema did not hold.
    _fix(U64_COLUMNS, '{c} < 0', I64_MAX)
    postgres = op.get_bind().dialect.name == 'postgresql'
    # double 9.2e18 is below 2^63 (the next double is 2^63 itself).
    clamp = ("CASE WHEN {c} >= 9.2e18 THEN 9223372036854775807 "
             "ELSE CAST({c} AS BIGINT) END")
    if not postgres:
        for c in SUMS:
            op.execute(sa.text(f"UPDATE removed_hourly SET {c} = {clamp.format(c=c)} "
                               f"WHERE typeof({c}) = 'real'"))
        return
    _fix((*WIDENED, DYING_MAX), f'{{c}} > {I32_MAX}', I32_MAX)
    _alter((*WIDENED, DYING_MAX), 'INTEGER')
    _alter([('removed_hourly', c, False) for c in SUMS], 'BIGINT', clamp)
