"""hourly rollups of scrapes and slab samples (sums and counts), for long ranges

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 18:28:01.412178
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('scrape_hourly',
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('hour_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('scrapes_total', sa.Integer(), nullable=False),
    sa.Column('memcg_dying_sum_total', sa.Float(), nullable=True),
    sa.Column('memcg_dying_max_total', sa.Integer(), nullable=True),
    sa.Column('memcg_live_sum_total', sa.Float(), nullable=True),
    sa.Column('memcg_total_sum_total', sa.Float(), nullable=True),
    sa.Column('slab_bytes_sum', sa.Float(), nullable=True),
    sa.Column('sreclaimable_bytes_sum', sa.Float(), nullable=True),
    sa.Column('sunreclaim_bytes_sum', sa.Float(), nullable=True),
    sa.Column('percpu_bytes_sum', sa.Float(), nullable=True),
    sa.Column('kernel_stack_bytes_sum', sa.Float(), nullable=True),
    sa.Column('shmem_bytes_sum', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['host_id'], ['host.id'], name=op.f('fk_scrape_hourly_host_id_host'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('host_id', 'hour_at', name=op.f('pk_scrape_hourly'))
    )
    op.create_table('slab_hourly',
    sa.Column('cache_id', sa.Integer(), nullable=False),
    sa.Column('hour_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('samples_total', sa.Integer(), nullable=False),
    sa.Column('slab_bytes_sum', sa.Float(), nullable=False),
    sa.Column('num_objs_sum_total', sa.Float(), nullable=False),
    sa.Column('active_objs_sum_total', sa.Float(), nullable=False),
    sa.Column('num_slabs_sum_total', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['cache_id'], ['slab_cache.id'], name=op.f('fk_slab_hourly_cache_id_slab_cache'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('cache_id', 'hour_at', name=op.f('pk_slab_hourly'))
    )


def downgrade() -> None:
    op.drop_table('slab_hourly')
    op.drop_table('scrape_hourly')
