"""removed_hourly.raw_dropped: the hours whose removal records retention deleted

Late removal records (a collector's spool replayed days late) are rolled up by comparing
each hour's records with its rollup; an hour whose records are gone is final, and late
records add to it. Existing rollup hours before a host's oldest record are marked dropped
(retention deletes records by whole hours, oldest first).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 00:50:00
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('removed_hourly', sa.Column('raw_dropped', sa.Boolean(), nullable=False,
                                              server_default=sa.false()))
    bind = op.get_bind()
    hourly = sa.table('removed_hourly', sa.column('host_id', sa.Integer()),
                      sa.column('hour_at', sa.DateTime(timezone=True)),
                      sa.column('raw_dropped', sa.Boolean()))
    removed = sa.table('removed_cgroup', sa.column('host_id', sa.Integer()),
                       sa.column('removed_at', sa.DateTime(timezone=True)))
    oldest = dict(bind.execute(sa.select(removed.c.host_id, sa.func.min(removed.c.removed_at))
                               .group_by(removed.c.host_id)).all())
    for (hid,) in bind.execute(sa.select(hourly.c.host_id).distinct()).all():
        q = sa.update(hourly).where(hourly.c.host_id == hid).values(raw_dropped=True)
        first = oldest.get(hid)  # SQLite: naive UTC, compared as the stored text
        if first is not None:  # the hours wholly before the oldest record kept
            q = q.where(hourly.c.hour_at <= first - timedelta(hours=1))
        bind.execute(q)


def downgrade() -> None:
    with op.batch_alter_table('removed_hourly') as b:
        b.drop_column('raw_dropped')
