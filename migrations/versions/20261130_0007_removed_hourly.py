"""hourly rollup of removed cgroups (counts and byte sums), so projections read buckets

Revision ID: 0007
Revises: 0003 (on the wt-model branch; re-parent onto the head, '0006', when merging)
Create Date: 2026-11-30 18:20:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ('removed_total', 'with_file_total', 'with_shmem_total', 'pagecache_only_total',
          'with_kernel_stack_total', 'slab_known_total')
SUMS = ('file_bytes_sum', 'shmem_bytes_sum', 'slab_bytes_sum', 'kernel_stack_bytes_sum')


def upgrade() -> None:
    op.create_table(
        'removed_hourly',
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('hour_at', sa.DateTime(timezone=True), nullable=False),
        *[sa.Column(c, sa.Integer(), nullable=False) for c in COUNTS],
        *[sa.Column(c, sa.BigInteger(), nullable=False) for c in SUMS],
        sa.ForeignKeyConstraint(['host_id'], ['host.id'],
                                name=op.f('fk_removed_hourly_host_id_host'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('host_id', 'hour_at', name=op.f('pk_removed_hourly')))


def downgrade() -> None:
    op.drop_table('removed_hourly')
