"""indexes on the columns retention deletes by: cgroup_frame.scrape_id,
removed_cgroup.cgroup_id and cgroup_kmem_cache_sample.cgroup_id

Deleting a removed cgroup's row sets removed_cgroup.cgroup_id to NULL and cascades into
cgroup_kmem_cache_sample; deleting scrapes cascades into cgroup_frame. Without these
indexes each deleted row scanned those tables (144,000 cgroups a day on a busy host).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 20:15:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ('ix_cgroup_frame_scrape_id', 'cgroup_frame', 'scrape_id'),
    ('ix_removed_cgroup_cgroup_id', 'removed_cgroup', 'cgroup_id'),
    ('ix_cgroup_kmem_cache_sample_cgroup_id', 'cgroup_kmem_cache_sample', 'cgroup_id'),
)


def upgrade() -> None:
    for name, table, column in INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
