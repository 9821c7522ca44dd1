"""cgroup frames: per-cgroup figures as one blob per series/full tick, memory.stat blobs

Replaces `cgroup_sample` (one JSON row per cgroup per tick) with `cgroup_frame` (one
cgtable.pack_table blob per host per series or full tick); `cgroup.first_memory_stat` and
`removed_cgroup.last_memory_stat` hold whole memory.stat files as cgtable.pack_stat blobs;
`scrape.meminfo_json`/`vmstat_json` become nullable (stored on host_full ticks only).

The upgrade migrates old data: every scrape's cgroup_sample rows become one 'series' frame
and, per host, the latest scrape's rows also one 'full' frame; the downgrade converts back.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 18:00:00
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.domain import cgtable as ct

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigInt = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
ROWS_PER_BATCH = 5000  # per-cgroup rows in memory at once (a whole scrape at the least)

_at = sa.DateTime(timezone=True)
_scrape = sa.table('scrape', sa.column('id'), sa.column('host_id'), sa.column('taken_at', _at))
_sample = sa.table(
    'cgroup_sample', sa.column('scrape_id'), sa.column('cgroup_id'),
    sa.column('memory_usage_bytes'), sa.column('kmem_usage_bytes'), sa.column('file_bytes'),
    sa.column('anon_bytes'), sa.column('shmem_bytes'), sa.column('slab_bytes'),
    sa.column('kernel_stack_bytes'), sa.column('nr_descendants_total'),
    sa.column('nr_dying_descendants_total'), sa.column('memory_stat_json', sa.JSON),
    sa.column('cgroup_stat_json', sa.JSON))
_frame = sa.table('cgroup_frame', sa.column('id'), sa.column('host_id'),
                  sa.column('scrape_id'), sa.column('taken_at', _at), sa.column('kind'),
                  sa.column('rows_total'), sa.column('data', sa.LargeBinary))
_cgroup = sa.table('cgroup', sa.column('id'), sa.column('first_memory_stat', sa.LargeBinary))
_removed = sa.table('removed_cgroup', sa.column('id'),
                    sa.column('last_memory_stat_json', sa.JSON),
                    sa.column('last_memory_stat', sa.LargeBinary))

# memory.stat keys of the old figure columns (a frozen copy of store.memory_figures as 0003
# wrote them: migrations must not change when the app does).
_FIGURES: dict[str, tuple[str, ...]] = {
    'file_bytes': ('file', 'cache'), 'anon_bytes': ('anon', 'rss'),
    'shmem_bytes': ('shmem',), 'slab_bytes': ('slab',), 'kernel_stack_bytes': ('kernel_stack',),
}


def _figures(stat: Mapping[str, int]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for col, keys in _FIGURES.items():
        out[col] = next((stat[k] for k in keys if k in stat), None)
    if out['slab_bytes'] is None and 'slab_reclaimable' in stat:
        out['slab_bytes'] = stat['slab_reclaimable'] + stat.get('slab_unreclaimable', 0)
    return out


def _u64s(d: Mapping[str, Any] | None) -> dict[str, int]:
    # Only what a u64 column can hold: JSON from a foreign writer is dropped, not a crash.
    return {str(k): v for k, v in (d or {}).items()
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= ct.U64_MAX}


def _ordered(keys: Iterable[str], first: Sequence[str]) -> list[str]:
    seen = set(keys)
    return [k for k in first if k in seen] + sorted(seen - set(first))


# -- upgrade ---------------------------------------------------------------------------------

def upgrade() -> None:
    op.create_table(
        'cgroup_frame',
        sa.Column('id', BigInt, nullable=False),
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('scrape_id', BigInt, nullable=False),
        sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('rows_total', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['host_id'], ['host.id'],
                                name=op.f('fk_cgroup_frame_host_id_host'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'],
                                name=op.f('fk_cgroup_frame_scrape_id_scrape'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cgroup_frame')))
    op.create_index('ix_cgroup_frame_host_id_kind_taken_at', 'cgroup_frame',
                    ['host_id', 'kind', 'taken_at'])
    op.add_column('cgroup', sa.Column('first_memory_stat', sa.LargeBinary(), nullable=True))
    op.create_index('ix_cgroup_host_id_removed_at', 'cgroup', ['host_id', 'removed_at'])
    op.create_index('ix_cgroup_host_id_first_seen_at', 'cgroup', ['host_id', 'first_seen_at'])
    _set_nullable('scrape', ('meminfo_json', 'vmstat_json'), True)

    op.add_column('removed_cgroup', sa.Column('last_memory_stat', sa.LargeBinary(),
                                              nullable=True))
    op.add_column('removed_cgroup', sa.Column('stat_read_at', sa.DateTime(timezone=True),
                                              nullable=True))
    _removed_to_blobs()
    # removed_cgroup has no child table: recreating it on SQLite cascades nothing.
    with op.batch_alter_table('removed_cgroup') as b:
        b.alter_column('last_memory_stat', existing_type=sa.LargeBinary(), nullable=False)
        b.drop_column('last_memory_stat_json')

    _samples_to_frames()
    op.drop_index('ix_cgroup_sample_cgroup_id', table_name='cgroup_sample')
    op.drop_table('cgroup_sample')
    op.drop_index('ix_slab_sample_cache_id', table_name='slab_sample')
    _slab_rowid(False)


def _removed_to_blobs() -> None:
    conn = op.get_bind()
    last = -1
    while True:
        rows = conn.execute(sa.select(_removed.c.id, _removed.c.last_memory_stat_json)
                            .where(_removed.c.id > last).order_by(_removed.c.id)
                            .limit(_limit())).all()
        if not rows:
            return
        conn.execute(_removed.update().where(_removed.c.id == sa.bindparam('rid'))
                     .values(last_memory_stat=sa.bindparam('blob')),
                     [{'rid': r[0], 'blob': ct.pack_stat(_u64s(r[1]))} for r in rows])
        last = rows[-1][0]


def _samples_to_frames() -> None:
    conn = op.get_bind()
    scrapes = conn.execute(
        sa.select(_scrape.c.id, _scrape.c.host_id, _scrape.c.taken_at)
        .where(sa.exists().where(_sample.c.scrape_id == _scrape.c.id))
        .order_by(_scrape.c.taken_at, _scrape.c.id)).all()
    latest = {hid: sid for sid, hid, _ in scrapes}  # the last scrape of each host wins
    first_seen: set[int] = set()
    for batch in _batches(scrapes, lambda sc: sa.select(sa.func.count()).where(
            _sample.c.scrape_id == sc[0])):
        rows: dict[int, list[Any]] = {sid: [] for sid, _, _ in batch}
        for r in conn.execute(
                sa.select(_sample.c.scrape_id, _sample.c.cgroup_id,
                          _sample.c.memory_usage_bytes, _sample.c.kmem_usage_bytes,
                          _sample.c.memory_stat_json, _sample.c.cgroup_stat_json)
                .where(_sample.c.scrape_id.in_(list(rows)))
                .order_by(_sample.c.scrape_id, _sample.c.cgroup_id)).all():
            rows[r[0]].append(r[1:])
        frames: list[dict[str, Any]] = []
        firsts: list[dict[str, Any]] = []
        for sid, hid, taken_at in batch:
            got = rows[sid]
            frames.append(_frame_row(hid, sid, taken_at, 'series', got))
            if latest[hid] == sid:
                frames.append(_frame_row(hid, sid, taken_at, 'full', got))
            for cgid, _, _, stat, _ in got:
                if cgid not in first_seen:
                    first_seen.add(cgid)
                    firsts.append({'cid': cgid, 'blob': ct.pack_stat(_u64s(stat))})
        conn.execute(_frame.insert(), frames)
        if firsts:
            conn.execute(_cgroup.update().where(_cgroup.c.id == sa.bindparam('cid'))
                         .values(first_memory_stat=sa.bindparam('blob')), firsts)


def _limit() -> int:
    # Tests set a small batch through the Alembic config to run the multi-batch path.
    config = op.get_context().config
    return int((config.attributes if config else {}).get('rows_per_batch', ROWS_PER_BATCH))


def _batches(items: Sequence[Any], rows_of: Any) -> Iterable[Sequence[Any]]:
    """Consecutive slices of `items` of about ROWS_PER_BATCH rows, sized by the first item."""
    if not items:
        return
    rows = op.get_bind().execute(rows_of(items[0])).scalar() or 1
    step = max(1, _limit() // int(rows))
    for i in range(0, len(items), step):
        yield items[i:i + step]


def _frame_row(host_id: int, scrape_id: int, taken_at: Any, kind: str,
               samples: Sequence[Any]) -> dict[str, Any]:
    ids = [s[0] for s in samples]
    dicts: list[dict[str, int]] = []
    stat_keys: dict[str, None] = {}
    cg_keys: dict[str, None] = {}
    for _, usage, kmem, stat, cgstat in samples:
        d = {ct.STAT + k: v for k, v in _u64s(stat).items()}
        d.update({ct.CGSTAT + k: v for k, v in _u64s(cgstat).items()})
        if usage is not None:
            d[ct.USAGE] = usage
        if kmem is not None:
            d[ct.KMEM_USAGE] = kmem
        stat_keys.update(dict.fromkeys(_u64s(stat)))
        cg_keys.update(dict.fromkeys(_u64s(cgstat)))
        dicts.append(d)
    if kind == 'series':
        keys = [k for k in ct.SERIES_STAT_KEYS if k in stat_keys]
    else:
        keys = list(stat_keys)
    columns = ct.stat_columns(keys, _ordered(cg_keys, ct.SERIES_CGSTAT_KEYS),
                              usage=any(ct.USAGE in d for d in dicts),
                              kmem=any(ct.KMEM_USAGE in d for d in dicts))
    t = ct.table_from_rows(columns, [('', '')] * len(ids), dicts)
    return {'host_id': host_id, 'scrape_id': scrape_id, 'taken_at': taken_at, 'kind': kind,
            'rows_total': len(ids), 'data': ct.pack_table(columns, ids, t.values, t.present)}


def _set_nullable(table: str, columns: Sequence[str], nullable: bool) -> None:
    """Change NOT NULL of JSON columns in place.

    SQLite cannot ALTER a column, and recreating `scrape` (alembic's batch mode) would run an
    implicit DELETE whose ON DELETE CASCADE empties every sample table, as foreign keys are on
    and cannot be turned off inside the migration's transaction. Adding or removing NOT NULL
    does not change how rows are stored, so the documented writable_schema procedure
    (sqlite.org/lang_altertable.html, section 7) rewrites only the table's declaration.
    """
    conn = op.get_bind()
    if conn.dialect.name != 'sqlite':
        for c in columns:
            op.alter_column(table, c, existing_type=sa.JSON(), nullable=nullable)
        return
    sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type='table' AND name=?",
                               (table,)).scalar_one()
    for c in columns:
        strict, loose = f'\t{c} JSON NOT NULL,', f'\t{c} JSON,'
        old, new = (strict, loose) if nullable else (loose, strict)
        if old not in sql:
            raise RuntimeError(f'{table}.{c}: declaration {old.strip()!r} not found in {sql!r}')
        sql = sql.replace(old, new)
    version = conn.exec_driver_sql('PRAGMA schema_version').scalar_one()
    conn.exec_driver_sql('PRAGMA writable_schema=ON')
    conn.exec_driver_sql("UPDATE sqlite_master SET sql=? WHERE type='table' AND name=?",
                         (sql, table))
    conn.exec_driver_sql(f'PRAGMA schema_version={int(version) + 1}')
    conn.exec_driver_sql('PRAGMA writable_schema=OFF')


# -- downgrade -------------------------------------------------------------------------------

def _slab_rowid(with_rowid: bool) -> None:
    """SQLite: slab_sample as a WITHOUT ROWID table keyed (scrape_id, cache_id), or back.

    A third of the bytes a row costs (the rowid, and the primary key's second b-tree).
    Nothing references slab_sample, so rebuilding it cascades nothing.
    """
    if op.get_bind().dialect.name != 'sqlite':
        return
    op.create_table(
        '_slab_sample_new',
        sa.Column('scrape_id', BigInt, nullable=False),
        sa.Column('cache_id', sa.Integer(), nullable=False),
        sa.Column('active_objs_total', sa.BigInteger(), nullable=False),
        sa.Column('num_objs_total', sa.BigInteger(), nullable=False),
        sa.Column('num_slabs_total', sa.BigInteger(), nullable=False),
        sa.Column('slab_bytes', sa.BigInteger(), nullable=False),
        sa.Column('partial_slabs_total', sa.BigInteger(), nullable=True),
        sa.Column('cpu_slabs_total', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['cache_id'], ['slab_cache.id'],
                                name=op.f('fk_slab_sample_cache_id_slab_cache'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'],
                                name=op.f('fk_slab_sample_scrape_id_scrape'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('scrape_id', 'cache_id', name=op.f('pk_slab_sample')),
        sqlite_with_rowid=with_rowid)
    op.execute('INSERT INTO _slab_sample_new SELECT scrape_id, cache_id, active_objs_total,'
               ' num_objs_total, num_slabs_total, slab_bytes, partial_slabs_total,'
               ' cpu_slabs_total FROM slab_sample ORDER BY scrape_id, cache_id')
    op.drop_table('slab_sample')
    op.rename_table('_slab_sample_new', 'slab_sample')


def downgrade() -> None:
    _slab_rowid(True)
    op.create_index('ix_slab_sample_cache_id', 'slab_sample', ['cache_id'])
    op.create_table(
        'cgroup_sample',
        sa.Column('scrape_id', BigInt, nullable=False),
        sa.Column('cgroup_id', sa.Integer(), nullable=False),
        sa.Column('memory_usage_bytes', sa.BigInteger(), nullable=True),
        sa.Column('kmem_usage_bytes', sa.BigInteger(), nullable=True),
        sa.Column('file_bytes', sa.BigInteger(), nullable=True),
        sa.Column('anon_bytes', sa.BigInteger(), nullable=True),
        sa.Column('shmem_bytes', sa.BigInteger(), nullable=True),
        sa.Column('slab_bytes', sa.BigInteger(), nullable=True),
        sa.Column('kernel_stack_bytes', sa.BigInteger(), nullable=True),
        sa.Column('nr_descendants_total', sa.Integer(), nullable=True),
        sa.Column('nr_dying_descendants_total', sa.Integer(), nullable=True),
        sa.Column('memory_stat_json', sa.JSON().with_variant(sa.JSON(), 'postgresql'),
                  nullable=False),
        sa.Column('cgroup_stat_json', sa.JSON().with_variant(sa.JSON(), 'postgresql'),
                  nullable=True),
        sa.ForeignKeyConstraint(['cgroup_id'], ['cgroup.id'],
                                name=op.f('fk_cgroup_sample_cgroup_id_cgroup'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'],
                                name=op.f('fk_cgroup_sample_scrape_id_scrape'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('scrape_id', 'cgroup_id', name=op.f('pk_cgroup_sample')))
    op.create_index('ix_cgroup_sample_cgroup_id', 'cgroup_sample', ['cgroup_id'])
    _frames_to_samples()

    op.add_column('removed_cgroup', sa.Column(
        'last_memory_stat_json', sa.JSON().with_variant(sa.JSON(), 'postgresql'),
        nullable=True))
    _removed_to_json()
    with op.batch_alter_table('removed_cgroup') as b:
        b.alter_column('last_memory_stat_json', existing_type=sa.JSON(), nullable=False)
        b.drop_column('last_memory_stat')
        b.drop_column('stat_read_at')

    conn = op.get_bind()
    for c in ('meminfo_json', 'vmstat_json'):
        conn.execute(sa.text(f"UPDATE scrape SET {c} = '{{}}' WHERE {c} IS NULL"))
    _set_nullable('scrape', ('meminfo_json', 'vmstat_json'), False)
    op.drop_index('ix_cgroup_host_id_removed_at', table_name='cgroup')
    op.drop_index('ix_cgroup_host_id_first_seen_at', table_name='cgroup')
    # A native DROP COLUMN (SQLite 3.35+): recreating `cgroup` would cascade into its samples.
    op.execute('ALTER TABLE cgroup DROP COLUMN first_memory_stat')
    op.drop_index('ix_cgroup_frame_host_id_kind_taken_at', table_name='cgroup_frame')
    op.drop_table('cgroup_frame')


def _removed_to_json() -> None:
    conn = op.get_bind()
    last = -1
    while True:
        rows = conn.execute(sa.select(_removed.c.id, _removed.c.last_memory_stat)
                            .where(_removed.c.id > last).order_by(_removed.c.id)
                            .limit(_limit())).all()
        if not rows:
            return
        conn.execute(_removed.update().where(_removed.c.id == sa.bindparam('rid'))
                     .values(last_memory_stat_json=sa.bindparam('stat')),
                     [{'rid': r[0], 'stat': ct.unpack_stat(r[1])} for r in rows])
        last = rows[-1][0]


def _decode(blob: bytes) -> dict[int, dict[str, int]]:
    columns, ids, values, present = ct.unpack_table(blob)
    out: dict[int, dict[str, int]] = {i: {} for i in ids}
    for c, v, p in zip(columns, values, present, strict=True):
        for k, cgid in enumerate(ids):
            if p[k]:
                out[cgid][c] = v[k]
    return out


class _Fulls:
    """The full frames of every host, decoded on demand (one at a time)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.by_host: dict[int, tuple[list[Any], list[int]]] = {}
        for fid, hid, taken_at in conn.execute(
                sa.select(_frame.c.id, _frame.c.host_id, _frame.c.taken_at)
                .where(_frame.c.kind == 'full').order_by(_frame.c.taken_at)).all():
            times, ids = self.by_host.setdefault(hid, ([], []))
            times.append(taken_at)
            ids.append(fid)
        self.cached: tuple[int, dict[int, dict[str, int]]] | None = None

    def nearest(self, host_id: int, taken_at: Any) -> dict[int, dict[str, int]]:
        times, ids = self.by_host.get(host_id, ([], []))
        if not ids:
            return {}
        k = bisect.bisect_left(times, taken_at)
        near = [j for j in (k - 1, k) if 0 <= j < len(ids)]
        fid = ids[min(near, key=lambda j: abs((times[j] - taken_at).total_seconds()))]
        if self.cached is None or self.cached[0] != fid:
            blob = self.conn.execute(sa.select(_frame.c.data)
                                     .where(_frame.c.id == fid)).scalar_one()
            self.cached = (fid, _decode(blob))
        return self.cached[1]


def _frames_to_samples() -> None:
    conn = op.get_bind()
    fulls = _Fulls(conn)
    scrapes = [r[0] for r in conn.execute(
        sa.select(_frame.c.scrape_id).group_by(_frame.c.scrape_id)
        .order_by(_frame.c.scrape_id)).all()]
    for batch in _batches(scrapes, lambda sid: sa.select(sa.func.sum(_frame.c.rows_total))
                          .where(_frame.c.scrape_id == sid)):
        frames: dict[int, dict[str, Any]] = {}
        for sid, hid, taken_at, kind, data in conn.execute(
                sa.select(_frame.c.scrape_id, _frame.c.host_id, _frame.c.taken_at,
                          _frame.c.kind, _frame.c.data)
                .where(_frame.c.scrape_id.in_(batch))).all():
            f = frames.setdefault(sid, {'host_id': hid, 'taken_at': taken_at})
            f[kind] = _decode(data)
        out: list[dict[str, Any]] = []
        for sid in batch:
            out.extend(_sample_rows(sid, frames[sid], fulls))
        if out:
            conn.execute(_sample.insert(), out)


def _sample_rows(scrape_id: int, f: dict[str, Any], fulls: _Fulls) -> list[dict[str, Any]]:
    series: dict[int, dict[str, int]] = f.get('series', {})
    full: dict[int, dict[str, int]] | None = f.get('full')
    near = full if full is not None else fulls.nearest(f['host_id'], f['taken_at'])
    rows = []
    for cgid in sorted(set(series) | set(full or {})):
        figs = series.get(cgid) or (full or {}).get(cgid, {})
        # memory.stat: the whole file from a full frame of this scrape; otherwise the nearest
        # full frame's keys with this scrape's series figures over them.
        whole = {k: v for k, v in near.get(cgid, {}).items() if k.startswith(ct.STAT)}
        if full is None or cgid not in full:
            whole.update((k, v) for k, v in figs.items() if k.startswith(ct.STAT))
        stat = {k[len(ct.STAT):]: v for k, v in whole.items()}
        cgstat = {k[len(ct.CGSTAT):]: v for k, v in figs.items() if k.startswith(ct.CGSTAT)}
        rows.append({
            'scrape_id': scrape_id, 'cgroup_id': cgid,
            'memory_usage_bytes': figs.get(ct.USAGE),
            'kmem_usage_bytes': figs.get(ct.KMEM_USAGE), **_figures(stat),
            'nr_descendants_total': cgstat.get('nr_descendants'),
            'nr_dying_descendants_total': cgstat.get('nr_dying_descendants'),
            'memory_stat_json': stat, 'cgroup_stat_json': cgstat or None})
    return rows
