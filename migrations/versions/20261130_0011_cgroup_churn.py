"""counted churn: cgroup_churn (per scrape and hierarchy: cgroups made, removed and freed,
counted from kernfs ids and /proc/cgroups) and churn_hourly, its hourly rollup

On PostgreSQL cgroup_churn is partitioned by taken_at like slab_frame (daily partitions for
the days `scrape` has, and DEFAULT), with no foreign key to scrape (app/db/partitions.py).
There is nothing to carry over: older versions did not count churn. Downgrade drops both
tables (the older schema has no place for the counts).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 23:50:00
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute(
            'CREATE TABLE cgroup_churn (scrape_id BIGINT NOT NULL,'
            ' hierarchy VARCHAR(16) NOT NULL, host_id INTEGER NOT NULL,'
            ' taken_at TIMESTAMP WITH TIME ZONE NOT NULL,'
            ' since_at TIMESTAMP WITH TIME ZONE NOT NULL, created_total INTEGER NOT NULL,'
            ' removed_total INTEGER NOT NULL, freed_total INTEGER, exact BOOLEAN NOT NULL,'
            ' CONSTRAINT pk_cgroup_churn PRIMARY KEY (scrape_id, hierarchy, taken_at),'
            ' CONSTRAINT fk_cgroup_churn_host_id_host FOREIGN KEY (host_id)'
            ' REFERENCES host (id) ON DELETE CASCADE) PARTITION BY RANGE (taken_at)')
        for day in _pg_days(bind):
            lo, hi = (f"'{datetime.fromtimestamp(d * 86400, UTC).isoformat()}'"
                      for d in (day, day + 1))
            ymd = datetime.fromtimestamp(day * 86400, UTC).strftime('%Y%m%d')
            op.execute(f'CREATE TABLE cgroup_churn_p{ymd} PARTITION OF cgroup_churn'
                       f' FOR VALUES FROM ({lo}) TO ({hi})')
        op.execute('CREATE TABLE cgroup_churn_default PARTITION OF cgroup_churn DEFAULT')
    else:
        op.create_table(
            'cgroup_churn',
            sa.Column('scrape_id', sa.Integer(), autoincrement=False, nullable=False),
            sa.Column('hierarchy', sa.String(16), nullable=False),
            sa.Column('host_id', sa.Integer(), nullable=False),
            sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
            sa.Column('since_at', sa.DateTime(timezone=True), nullable=False),
            sa.Column('created_total', sa.Integer(), nullable=False),
            sa.Column('removed_total', sa.Integer(), nullable=False),
            sa.Column('freed_total', sa.Integer(), nullable=True),
            sa.Column('exact', sa.Boolean(), nullable=False),
            sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'], ondelete='CASCADE',
                                    name=op.f('fk_cgroup_churn_scrape_id_scrape')),
            sa.ForeignKeyConstraint(['host_id'], ['host.id'], ondelete='CASCADE',
                                    name=op.f('fk_cgroup_churn_host_id_host')),
            sa.PrimaryKeyConstraint('scrape_id', 'hierarchy', name=op.f('pk_cgroup_churn')))
    op.create_index('ix_cgroup_churn_host_id_taken_at', 'cgroup_churn',
                    ['host_id', 'taken_at'])
    big = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    op.create_table(
        'churn_hourly',
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('hierarchy', sa.String(16), nullable=False),
        sa.Column('hour_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('intervals_total', sa.Integer(), nullable=False),
        sa.Column('inexact_total', sa.Integer(), nullable=False),
        sa.Column('created_total', big, nullable=False),
        sa.Column('removed_total', big, nullable=False),
        sa.Column('freed_total', big, nullable=False),
        sa.Column('freed_intervals_total', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['host_id'], ['host.id'], ondelete='CASCADE',
                                name=op.f('fk_churn_hourly_host_id_host')),
        sa.PrimaryKeyConstraint('host_id', 'hierarchy', 'hour_at',
                                name=op.f('pk_churn_hourly')))


def downgrade() -> None:
    op.drop_table('churn_hourly')
    op.drop_index('ix_cgroup_churn_host_id_taken_at', table_name='cgroup_churn')
    op.drop_table('cgroup_churn')  # PostgreSQL: its partitions go with it
