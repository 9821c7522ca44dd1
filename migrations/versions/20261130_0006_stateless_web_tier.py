"""stateless web tier: ingest counters, spool drops and alert state in the database

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 18:00:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'

down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ingest_counter',
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('requests_total', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('outcome', name=op.f('pk_ingest_counter'))
    )
    op.create_table('host_spool_dropped',
    sa.Column('host_name', sa.String(length=255), nullable=False),
    sa.Column('dropped_total', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('host_name', name=op.f('pk_host_spool_dropped'))
    )
    op.create_table('alert_state',
    sa.Column('host_name', sa.String(length=255), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('fired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('host_name', 'rule', name=op.f('pk_alert_state'))
    )


def downgrade() -> None:
    op.drop_table('alert_state')
    op.drop_table('host_spool_dropped')
    op.drop_table('ingest_counter')
