"""daily RANGE partitions of scrape and the per-scrape tables on PostgreSQL; taken_day on
the per-scrape tables; scrape_hourly.raw_dropped

On PostgreSQL each table is converted with its data: the old table is renamed away, a
partitioned copy is created from its reflected definition (the partition key added to its
primary key and unique constraints under the same names, no foreign key to `scrape`), daily partitions and a
DEFAULT one are created, the rows are moved, the old table is dropped and its id sequence
handed over. The downgrade does the reverse. On SQLite only the columns change.
See app/db/partitions.py for the design.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-30 18:10:00
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose (app/db/partitions.py may grow): table, partition key, and the
# column after which taken_day goes (None: the key exists). After cache_id, taken_day fills
# slab_sample's alignment padding.
SPECS: tuple[tuple[str, str, str | None], ...] = (
    ('scrape', 'taken_at', None),
    ('scrape_error', 'taken_day', 'scrape_id'),
    ('slab_sample', 'taken_day', 'cache_id'),

    ('cgroup_kmem_cache_sample', 'taken_day', 'cgroup_id'),
    ('memcg_cache_sample', 'taken_day', 'scrape_id'),
    ('memcg_slabinfo_sample', 'taken_day', 'scrape_id'),
    ('cgroup_frame', 'taken_at', None),
)
AHEAD_DAYS = 3
OLD = '_pre0005'


def _day_sql(col: str, dialect: str) -> str:
    if dialect == 'postgresql':
        return f'floor(extract(epoch from {col}) / 86400)::integer'
    # UTCDateTime is naive UTC text on SQLite: the date part is exact (strftime rounds).
    return f"CAST(julianday(substr({col}, 1, 10)) - 2440587.5 AS INTEGER)"


def _mark_dropped_hours(bind: sa.Connection) -> None:
    # Hours below the oldest raw scrape lost their raw rows to the old row-deleting
    # retention (it cut at whole hours): their rollups are final.
    oldest = bind.execute(sa.text('SELECT min(taken_at) FROM scrape')).scalar()
    hourly = sa.table('scrape_hourly', sa.column('hour_at', sa.DateTime(timezone=True)),
                      sa.column('raw_dropped', sa.Boolean()))
    q = sa.update(hourly).values(raw_dropped=True)
    if oldest is not None:
        if isinstance(oldest, str):
            oldest = datetime.fromisoformat(oldest)
        oldest = oldest.replace(tzinfo=oldest.tzinfo or UTC).replace(minute=0, second=0,
                                                                     microsecond=0)
        if bind.dialect.name == 'sqlite':
            oldest = oldest.astimezone(UTC).replace(tzinfo=None)
        q = q.where(hourly.c.hour_at < oldest)
    bind.execute(q)


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column('scrape_hourly', sa.Column('raw_dropped', sa.Boolean(), nullable=False,
                                             server_default=sa.false()))
    _mark_dropped_hours(bind)
    if bind.dialect.name == 'postgresql':
        _pg_partition(bind)
        return
    for table, key, _after in SPECS:
        if key != 'taken_day':
            continue
        op.add_column(table, sa.Column('taken_day', sa.Integer(), nullable=True))
        op.execute(f'UPDATE {table} SET taken_day = (SELECT {_day_sql("s.taken_at", "sqlite")}'
                   f' FROM scrape s WHERE s.id = {table}.scrape_id)')
        # Rebuilds this table only: nothing references it. (Rebuilding `scrape` itself
        # would cascade-delete every child row: DROP TABLE deletes with foreign_keys=ON.)
        with op.batch_alter_table(table) as b:
            b.alter_column('taken_day', existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        _pg_unpartition(bind)
    else:
        for table, key, _after in SPECS:
            if key == 'taken_day':
                with op.batch_alter_table(table) as b:
                    b.drop_column('taken_day')
    op.drop_column('scrape_hourly', 'raw_dropped')


# --- PostgreSQL: convert tables with their data ------------------------------------------

def _definition(bind: sa.Connection, table: str) -> dict[str, object]:
    insp = sa.inspect(bind)
    return {
        'columns': insp.get_columns(table),
        'pk': insp.get_pk_constraint(table)['constrained_columns'],
        'uniques': [(u['name'], u['column_names']) for u in insp.get_unique_constraints(table)],
        'indexes': [(i['name'], i['column_names']) for i in insp.get_indexes(table)
                    if not i.get('unique') and 'duplicates_constraint' not in i],
        'fks': insp.get_foreign_keys(table),
    }


def _serials(bind: sa.Connection, table: str) -> list[tuple[str, str]]:
    """(column, sequence) of the columns that own a sequence (BIGSERIAL ids)."""
    out = []
    for (col,) in bind.execute(sa.text(
            'SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass)'
            ' AND attnum > 0 AND NOT attisdropped'), {'t': table}).all():
        seq = bind.execute(sa.text('SELECT pg_get_serial_sequence(:t, :c)'),
                           {'t': table, 'c': col}).scalar()
        if seq is not None:
            out.append((col, seq))
    return out


def _rename_away(bind: sa.Connection, table: str, suffix: str) -> None:
    """Rename a table and its table-level indexes (their names are schema-wide)."""
    for (idx,) in bind.execute(sa.text(
            'SELECT indexname FROM pg_indexes WHERE tablename = :t'), {'t': table}).all():
        op.execute(f'ALTER INDEX "{idx}" RENAME TO "{idx[:63 - len(suffix)]}{suffix}"')
    op.execute(f'ALTER TABLE {table} RENAME TO {table}{suffix}')


def _create(bind: sa.Connection, table: str, d: dict[str, object], *, key: str,
            after: str | None, partitioned: bool) -> None:
    """CREATE TABLE from a reflected definition, partitioned by `key` or plain without it."""
    cols = []
    for c in d['columns']:  # type: ignore[attr-defined]
        if not partitioned and after is not None and c['name'] == key:
            continue
        sql = f'"{c["name"]}" {c["type"].compile(dialect=bind.dialect)}'
        if c.get('default') is not None:
            sql += f' DEFAULT {c["default"]}'
        cols.append(sql + ('' if c['nullable'] else ' NOT NULL'))
        if partitioned and c['name'] == after:
            cols.append(f'"{key}" INTEGER NOT NULL')

    def with_key(names: list[str]) -> list[str]:
        names = [n for n in names if n != key]
        return [*names, key] if partitioned else names

    pk = with_key(list(d['pk']))  # type: ignore[call-overload]
    cols.append(f'CONSTRAINT pk_{table} PRIMARY KEY ({", ".join(pk)})')
    for name, u in d['uniques']:  # type: ignore[attr-defined]
        # The name stays: scrape's (host_id, snapshot_id) is one constraint to its users.
        cols.append(f'CONSTRAINT {name} UNIQUE ({", ".join(with_key(list(u)))})')
    for fk in d['fks']:  # type: ignore[attr-defined]
        if fk['referred_table'] == 'scrape':
            continue  # added back after the data on downgrade; none while partitioned
        cols.append(_fk_sql(fk))
    tail = f' PARTITION BY RANGE ({key})' if partitioned else ''
    op.execute(f'CREATE TABLE {table} ({", ".join(cols)}){tail}')
    for name, idx_cols in d['indexes']:  # type: ignore[attr-defined]
        op.execute(f'CREATE INDEX {name} ON {table} ({", ".join(idx_cols)})')


def _fk_sql(fk: dict[str, object]) -> str:
    on = (fk.get('options') or {}).get('ondelete')  # type: ignore[attr-defined]
    return (f'CONSTRAINT {fk["name"]} FOREIGN KEY ({", ".join(fk["constrained_columns"])})'  # type: ignore[arg-type]
            f' REFERENCES {fk["referred_table"]} ({", ".join(fk["referred_columns"])})'  # type: ignore[arg-type]
            + (f' ON DELETE {on}' if on else ''))


def _partitions(table: str, key: str, days: set[int]) -> None:
    def bound(day: int) -> str:
        if key == 'taken_day':
            return str(day)
        return f"'{datetime.fromtimestamp(day * 86400, UTC).isoformat()}'"

    for day in sorted(days):
        ymd = datetime.fromtimestamp(day * 86400, UTC).strftime('%Y%m%d')
        op.execute(f'CREATE TABLE {table}_p{ymd} PARTITION OF {table}'
                   f' FOR VALUES FROM ({bound(day)}) TO ({bound(day + 1)})')
    op.execute(f'CREATE TABLE {table}_default PARTITION OF {table} DEFAULT')


def _pg_partition(bind: sa.Connection) -> None:
    defs = {t: _definition(bind, t) for t, _k, _a in SPECS}
    serials = {t: _serials(bind, t) for t, _k, _a in SPECS}
    for t, d in defs.items():
        for fk in d['fks']:  # type: ignore[attr-defined]
            if fk['referred_table'] == 'scrape':
                op.drop_constraint(fk['name'], t, type_='foreignkey')
    for t, _k, _a in SPECS:
        for _col, seq in serials[t]:
            op.execute(f'ALTER SEQUENCE {seq} OWNED BY NONE')
        _rename_away(bind, t, OLD)
    today = int(datetime.now(UTC).timestamp() // 86400)
    days = {int(r[0]) for r in bind.execute(sa.text(
        f'SELECT DISTINCT {_day_sql("taken_at", "postgresql")} FROM scrape{OLD}')).all()}
    days |= set(range(today, today + AHEAD_DAYS + 1))
    for t, key, after in SPECS:
        _create(bind, t, defs[t], key=key, after=after, partitioned=True)
        _partitions(t, key, days)
        names = ', '.join(f'"{c["name"]}"' for c in defs[t]['columns'])  # type: ignore[attr-defined]
        if after is None:
            op.execute(f'INSERT INTO {t} ({names}) SELECT {names} FROM {t}{OLD}')
        else:
            picked = ', '.join(f'c."{c["name"]}"' for c in defs[t]['columns'])  # type: ignore[attr-defined]
            op.execute(f'INSERT INTO {t} ({names}, {key}) SELECT {picked},'
                       f' {_day_sql("s.taken_at", "postgresql")} FROM {t}{OLD} c'
                       f' JOIN scrape{OLD} s ON s.id = c.scrape_id')
    for t, _k, _a in reversed(SPECS):
        op.execute(f'DROP TABLE {t}{OLD}')
        for col, seq in serials[t]:
            op.execute(f'ALTER SEQUENCE {seq} OWNED BY {t}.{col}')


def _pg_unpartition(bind: sa.Connection) -> None:
    new = '_post0005'
    defs = {t: _definition(bind, t) for t, _k, _a in SPECS}
    serials = {t: _serials(bind, t) for t, _k, _a in SPECS}
    for t, _k, _a in SPECS:
        for _col, seq in serials[t]:
            op.execute(f'ALTER SEQUENCE {seq} OWNED BY NONE')
        _rename_away(bind, t, new)
    for t, key, after in SPECS:
        _create(bind, t, defs[t], key=key, after=after, partitioned=False)
        kept = [c['name'] for c in defs[t]['columns']  # type: ignore[attr-defined]
                if after is None or c['name'] != key]
        names = ', '.join(f'"{n}"' for n in kept)
        # A child row without its scrape cannot go back under the foreign key: leave it.
        orphan = ('' if after is None else
                  f' WHERE EXISTS (SELECT 1 FROM scrape s WHERE s.id = {t}{new}.scrape_id)')
        op.execute(f'INSERT INTO {t} ({names}) SELECT {names} FROM {t}{new}{orphan}')
    for t, _k, _a in reversed(SPECS):
        op.execute(f'DROP TABLE {t}{new}')  # its partitions go with it
        for col, seq in serials[t]:
            op.execute(f'ALTER SEQUENCE {seq} OWNED BY {t}.{col}')
    for t, _k, after in SPECS:
        if after is not None:  # the per-scrape tables point at their scrape again
            op.create_foreign_key(f'fk_{t}_scrape_id_scrape', t, 'scrape', ['scrape_id'],
                                  ['id'], ondelete='CASCADE')

