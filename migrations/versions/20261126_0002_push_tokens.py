"""push tokens: one row per host token, only its SHA-256 kept

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 18:20:49.843204
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('host_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_name', sa.String(length=255), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_host_token')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_host_token_token_sha256'))
    )
    with op.batch_alter_table('host_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_host_token_host_name'), ['host_name'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('host_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_host_token_host_name'))

    op.drop_table('host_token')
