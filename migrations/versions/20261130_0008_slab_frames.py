"""slab frames: one slab_frame row (a cgtable.pack_table blob, row ids slab_cache.id) per
scrape replaces slab_sample's row per cache; slab_5min, 5-minute rollups of the caches

slab_5min is filled here for every hour already rolled up whose raw rows are still kept
(scrape_hourly, raw_dropped false), in SQL from slab_sample, so that retention's invariant
holds from the start: every rolled-up hour with raw frames has its 5-minute rows.

On PostgreSQL slab_frame is partitioned by taken_at like cgroup_frame (daily partitions for
the days `scrape` has, and DEFAULT), with no foreign key to scrape (app/db/partitions.py).
Rows are carried over in batches of scrapes, both ways; a count above 2^63-1 (which a frame
holds and a BIGINT column does not) stops the downgrade with a clear error.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 18:40:00
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.domain import cgtable as ct

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROWS_PER_BATCH = 50_000
# Frozen here (app/db/slabframes.py may grow): frame column -> slab_sample column.
COLUMNS: tuple[tuple[str, str], ...] = (
    ('active_objs', 'active_objs_total'), ('num_objs', 'num_objs_total'),
    ('num_slabs', 'num_slabs_total'), ('slab_bytes', 'slab_bytes'),
    ('partial_slabs', 'partial_slabs_total'), ('cpu_slabs', 'cpu_slabs_total'))
BIGINT_MAX = (1 << 63) - 1

_scrape = sa.table('scrape', sa.column('id'), sa.column('host_id'), sa.column('taken_at'))
_sample = sa.table('slab_sample', sa.column('scrape_id'), sa.column('cache_id'),
                   sa.column('taken_day'), *(sa.column(c) for _, c in COLUMNS))
_frame = sa.table('slab_frame', sa.column('scrape_id'), sa.column('host_id'),
                  sa.column('taken_at'), sa.column('data', sa.LargeBinary()))


def _limit() -> int:
    # Tests set a small batch through the Alembic config to run the multi-batch path.
    config = op.get_context().config
    return int((config.attributes if config else {}).get('rows_per_batch', ROWS_PER_BATCH))


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i:i + max(1, size)]


def _pg_days(bind: sa.Connection) -> list[int]:
    """The days `scrape` has daily partitions for (per-scrape tables get the same)."""
    out = []
    for (name,) in bind.execute(sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'scrape'"
            " AND pg_table_is_visible(p.oid)")).all():
        if name.startswith('scrape_p'):
            ymd = datetime.strptime(name[len('scrape_p'):], '%Y%m%d').replace(tzinfo=UTC)
            out.append(int(ymd.timestamp()) // 86400)
    return sorted(out)


def _pg_partitions(bind: sa.Connection, table: str, by_day: bool) -> None:
    for day in _pg_days(bind):
        lo, hi = ((str(day), str(day + 1)) if by_day else
                  (f"'{datetime.fromtimestamp(d * 86400, UTC).isoformat()}'"
                   for d in (day, day + 1)))
        ymd = datetime.fromtimestamp(day * 86400, UTC).strftime('%Y%m%d')
        op.execute(f'CREATE TABLE {table}_p{ymd} PARTITION OF {table}'
                   f' FOR VALUES FROM ({lo}) TO ({hi})')
    op.execute(f'CREATE TABLE {table}_default PARTITION OF {table} DEFAULT')


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute(
            'CREATE TABLE slab_frame (scrape_id BIGINT NOT NULL, host_id INTEGER NOT NULL,'
            ' taken_at TIMESTAMP WITH TIME ZONE NOT NULL, data BYTEA NOT NULL,'
            ' CONSTRAINT pk_slab_frame PRIMARY KEY (scrape_id, taken_at),'
            ' CONSTRAINT fk_slab_frame_host_id_host FOREIGN KEY (host_id) REFERENCES host (id)'
            ' ON DELETE CASCADE) PARTITION BY RANGE (taken_at)')
        _pg_partitions(bind, 'slab_frame', by_day=False)
    else:
        op.create_table(
            'slab_frame',
            sa.Column('scrape_id', sa.Integer(), autoincrement=False, nullable=False),
            sa.Column('host_id', sa.Integer(), nullable=False),
            sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
            sa.Column('data', sa.LargeBinary(), nullable=False),
            sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'], ondelete='CASCADE',
                                    name=op.f('fk_slab_frame_scrape_id_scrape')),
            sa.ForeignKeyConstraint(['host_id'], ['host.id'], ondelete='CASCADE',
                                    name=op.f('fk_slab_frame_host_id_host')),
            sa.PrimaryKeyConstraint('scrape_id', name=op.f('pk_slab_frame')))
    op.create_index('ix_slab_frame_host_id_taken_at', 'slab_frame', ['host_id', 'taken_at'])
    op.create_table(
        'slab_5min',
        sa.Column('cache_id', sa.Integer(), nullable=False),
        sa.Column('bucket_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('samples_total', sa.Integer(), nullable=False),
        *(sa.Column(c, sa.Float(), nullable=False) for c in (
            'slab_bytes_sum', 'num_objs_sum_total', 'active_objs_sum_total',
            'num_slabs_sum_total')),
        sa.ForeignKeyConstraint(['cache_id'], ['slab_cache.id'], ondelete='CASCADE',
                                name=op.f('fk_slab_5min_cache_id_slab_cache')),
        sa.PrimaryKeyConstraint('cache_id', 'bucket_at', name=op.f('pk_slab_5min')))
    _five_minutes(bind)
    _samples_to_frames(bind)
    op.drop_table('slab_sample')  # PostgreSQL: its partitions go with it


def _five_minutes(bind: sa.Connection) -> None:
    if bind.dialect.name == 'postgresql':
        bucket = 'to_timestamp(floor(extract(epoch FROM s.taken_at) / 300) * 300)'
        hour = 'to_timestamp(floor(extract(epoch FROM s.taken_at) / 3600) * 3600)'
        kept = 'NOT h.raw_dropped'
        add = 'sum'  # of BIGINTs: numeric, exact
    else:  # UTCDateTime is naive UTC text with microseconds on SQLite
        bucket = ("strftime('%Y-%m-%d %H:%M:%S.000000',"
                  " (CAST(strftime('%s', s.taken_at) AS INTEGER) / 300) * 300, 'unixepoch')")
        hour = "strftime('%Y-%m-%d %H:00:00.000000', s.taken_at)"
        kept = 'h.raw_dropped = 0'
        add = 'total'  # a float: sum() of big INTEGERs overflows
    op.execute(
        'INSERT INTO slab_5min (cache_id, bucket_at, samples_total, slab_bytes_sum,'
        ' num_objs_sum_total, active_objs_sum_total, num_slabs_sum_total)'
        f' SELECT ss.cache_id, {bucket}, count(*), {add}(ss.slab_bytes),'
        f' {add}(ss.num_objs_total), {add}(ss.active_objs_total), {add}(ss.num_slabs_total)'
        ' FROM slab_sample ss JOIN scrape s ON s.id = ss.scrape_id'
        ' WHERE EXISTS (SELECT 1 FROM scrape_hourly h WHERE h.host_id = s.host_id'
        f' AND h.hour_at = {hour} AND {kept})'
        f' GROUP BY ss.cache_id, {bucket}')


def _samples_to_frames(bind: sa.Connection) -> None:
    scrapes = bind.execute(
        sa.select(_scrape.c.id, _scrape.c.host_id, _scrape.c.taken_at)
        .where(sa.exists().where(_sample.c.scrape_id == _scrape.c.id))
        .order_by(_scrape.c.id)).all()
    # ~235 caches a scrape on real hosts; the batch is sized in scrapes from that.
    for batch in _chunks(scrapes, _limit() // 235):
        rows: dict[int, dict[int, Any]] = {sid: {} for sid, _, _ in batch}
        for r in bind.execute(sa.select(_sample.c.scrape_id, _sample.c.cache_id,
                                        *(_sample.c[c] for _, c in COLUMNS))
                              .where(_sample.c.scrape_id.in_(list(rows)))
                              .order_by(_sample.c.scrape_id, _sample.c.cache_id)).all():
            rows[r[0]][r[1]] = r[2:]
        bind.execute(_frame.insert(), [
            {'scrape_id': sid, 'host_id': hid, 'taken_at': at, 'data': _pack(rows[sid])}
            for sid, hid, at in batch])


def _pack(rows: dict[int, Any]) -> bytes:
    ids = list(rows)
    values, present = [], []
    for j in range(len(COLUMNS)):
        values.append(array('Q', [0 if rows[i][j] is None else int(rows[i][j]) for i in ids]))
        present.append(bytes(0 if rows[i][j] is None else 1 for i in ids))
    return ct.pack_table([f for f, _ in COLUMNS], ids, values, present)


def downgrade() -> None:
    bind = op.get_bind()
    cols = [sa.Column(c, sa.BigInteger(), nullable=c not in (
        'active_objs_total', 'num_objs_total', 'num_slabs_total', 'slab_bytes'))
        for _, c in COLUMNS]
    if bind.dialect.name == 'postgresql':
        body = ', '.join(f'{c.name} BIGINT{"" if c.nullable else " NOT NULL"}' for c in cols)
        op.execute(
            'CREATE TABLE slab_sample (scrape_id BIGINT NOT NULL, cache_id INTEGER NOT NULL,'
            f' taken_day INTEGER NOT NULL, {body},'
            ' CONSTRAINT pk_slab_sample PRIMARY KEY (scrape_id, cache_id, taken_day),'
            ' CONSTRAINT fk_slab_sample_cache_id_slab_cache FOREIGN KEY (cache_id)'
            ' REFERENCES slab_cache (id) ON DELETE CASCADE) PARTITION BY RANGE (taken_day)')
        _pg_partitions(bind, 'slab_sample', by_day=True)
    else:
        op.create_table(
            'slab_sample',
            sa.Column('scrape_id', sa.Integer(), nullable=False),
            sa.Column('cache_id', sa.Integer(), nullable=False),
            sa.Column('taken_day', sa.Integer(), nullable=False), *cols,
            sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'], ondelete='CASCADE',
                                    name=op.f('fk_slab_sample_scrape_id_scrape')),
            sa.ForeignKeyConstraint(['cache_id'], ['slab_cache.id'], ondelete='CASCADE',
                                    name=op.f('fk_slab_sample_cache_id_slab_cache')),
            sa.PrimaryKeyConstraint('scrape_id', 'cache_id', name=op.f('pk_slab_sample')),
            sqlite_with_rowid=False)
    _frames_to_samples(bind)
    op.drop_table('slab_5min')
    op.drop_index('ix_slab_frame_host_id_taken_at', table_name='slab_frame')
    op.drop_table('slab_frame')


def _day(at: Any) -> int:
    t = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t
    return int(t.timestamp() // 86400)


def _frames_to_samples(bind: sa.Connection) -> None:
    after = -1
    size = max(1, _limit() // 235)
    while True:
        frames = bind.execute(sa.select(_frame.c.scrape_id, _frame.c.taken_at, _frame.c.data)
                              .where(_frame.c.scrape_id > after)
                              .order_by(_frame.c.scrape_id).limit(size)).all()
        if not frames:
            return
        out: list[dict[str, Any]] = []
        for sid, at, blob in frames:
            columns, ids, values, present = ct.unpack_table(blob)
            day = _day(at)
            by = {c: (v, p) for c, v, p in zip(columns, values, present, strict=True)}
            for k, cid in enumerate(ids):
                row: dict[str, Any] = {'scrape_id': sid, 'cache_id': cid, 'taken_day': day}
                for f, c in COLUMNS:
                    v, p = by.get(f, (None, None))
                    x = v[k] if v is not None and p is not None and p[k] else None
                    if x is not None and x > BIGINT_MAX:
                        raise ValueError(f'slab_frame of scrape {sid}: {f}={x} of cache {cid}'
                                         ' does not fit slab_sample\'s BIGINT column')
                    row[c] = x
                out.append(row)
        if out:
            bind.execute(_sample.insert(), out)
        after = frames[-1][0]
