"""initial schema: hosts, scrapes, slab caches, cgroups and their samples

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 17:18:03.265272
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('host',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('machine_id', sa.String(length=64), nullable=True),
    sa.Column('boot_id', sa.String(length=64), nullable=True),
    sa.Column('kernel_release', sa.String(length=255), nullable=False),
    sa.Column('era', sa.String(length=32), nullable=False),
    sa.Column('cgroup_layout', sa.String(length=16), nullable=False),
    sa.Column('possible_cpus_total', sa.Integer(), nullable=False),
    sa.Column('numa_nodes_total', sa.Integer(), nullable=False),
    sa.Column('page_size_bytes', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_host')),
    sa.UniqueConstraint('name', name=op.f('uq_host_name'))
    )
    op.create_table('cgroup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('hierarchy', sa.String(length=16), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['host_id'], ['host.id'], name=op.f('fk_cgroup_host_id_host'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cgroup')),
    sa.UniqueConstraint('host_id', 'hierarchy', 'path', name=op.f('uq_cgroup_host_id_hierarchy_path'))
    )
    op.create_table('scrape',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('snapshot_id', sa.String(length=64), nullable=True),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_seconds', sa.Float(), nullable=False),
    sa.Column('boot_id', sa.String(length=64), nullable=True),
    sa.Column('kernel_release', sa.String(length=255), nullable=False),
    sa.Column('era', sa.String(length=32), nullable=False),
    sa.Column('memcg_num_cgroups_total', sa.Integer(), nullable=True),
    sa.Column('memcg_total', sa.Integer(), nullable=True),
    sa.Column('memcg_visible_total', sa.Integer(), nullable=True),
    sa.Column('memcg_dying_total', sa.Integer(), nullable=True),
    sa.Column('memcg_method', sa.Text(), nullable=False),
    sa.Column('mem_total_bytes', sa.BigInteger(), nullable=True),
    sa.Column('slab_bytes', sa.BigInteger(), nullable=True),
    sa.Column('sreclaimable_bytes', sa.BigInteger(), nullable=True),
    sa.Column('sunreclaim_bytes', sa.BigInteger(), nullable=True),
    sa.Column('percpu_bytes', sa.BigInteger(), nullable=True),
    sa.Column('kernel_stack_bytes', sa.BigInteger(), nullable=True),
    sa.Column('shmem_bytes', sa.BigInteger(), nullable=True),
    sa.Column('errors_total', sa.Integer(), nullable=False),
    sa.Column('meminfo_json', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('vmstat_json', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('proc_cgroups_json', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['host_id'], ['host.id'], name=op.f('fk_scrape_host_id_host'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scrape')),
    sa.UniqueConstraint('host_id', 'snapshot_id', name=op.f('uq_scrape_host_id_snapshot_id'))
    )
    with op.batch_alter_table('scrape', schema=None) as batch_op:
        batch_op.create_index('ix_scrape_host_id_taken_at', ['host_id', 'taken_at'], unique=False)

    op.create_table('slab_cache',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('aliases_json', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('object_size_bytes', sa.Integer(), nullable=False),
    sa.Column('slab_size_bytes', sa.Integer(), nullable=True),
    sa.Column('objs_per_slab_total', sa.Integer(), nullable=False),
    sa.Column('pages_per_slab_total', sa.Integer(), nullable=False),
    sa.Column('order', sa.Integer(), nullable=True),
    sa.Column('reclaim_account', sa.Boolean(), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['host_id'], ['host.id'], name=op.f('fk_slab_cache_host_id_host'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slab_cache')),
    sa.UniqueConstraint('host_id', 'name', name=op.f('uq_slab_cache_host_id_name'))
    )
    op.create_table('cgroup_kmem_cache_sample',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scrape_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cgroup_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('active_objs_total', sa.BigInteger(), nullable=False),
    sa.Column('num_objs_total', sa.BigInteger(), nullable=False),
    sa.Column('object_size_bytes', sa.Integer(), nullable=False),
    sa.Column('objs_per_slab_total', sa.Integer(), nullable=False),
    sa.Column('pages_per_slab_total', sa.Integer(), nullable=False),
    sa.Column('num_slabs_total', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['cgroup_id'], ['cgroup.id'], name=op.f('fk_cgroup_kmem_cache_sample_cgroup_id_cgroup'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'], name=op.f('fk_cgroup_kmem_cache_sample_scrape_id_scrape'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cgroup_kmem_cache_sample'))
    )
    with op.batch_alter_table('cgroup_kmem_cache_sample', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cgroup_kmem_cache_sample_scrape_id'), ['scrape_id'], unique=False)

    op.create_table('cgroup_sample',
    sa.Column('scrape_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
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
    sa.Column('memory_stat_json', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('cgroup_stat_json', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['cgroup_id'], ['cgroup.id'], name=op.f('fk_cgroup_sample_cgroup_id_cgroup'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'], name=op.f('fk_cgroup_sample_scrape_id_scrape'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('scrape_id', 'cgroup_id', name=op.f('pk_cgroup_sample'))
    )
    with op.batch_alter_table('cgroup_sample', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cgroup_sample_cgroup_id'), ['cgroup_id'], unique=False)

    op.create_table('memcg_cache_sample',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scrape_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('root_cache', sa.String(length=255), nullable=False),
    sa.Column('memcg_serial', sa.BigInteger(), nullable=False),
    sa.Column('cgroup_name', sa.Text(), nullable=False),
    sa.Column('slabs_total', sa.BigInteger(), nullable=True),
    sa.Column('total_objects_total', sa.BigInteger(), nullable=True),
    sa.Column('objects_total', sa.BigInteger(), nullable=True),
    sa.Column('order', sa.Integer(), nullable=True),
    sa.Column('object_size_bytes', sa.Integer(), nullable=True),
    sa.Column('objs_per_slab_total', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'], name=op.f('fk_memcg_cache_sample_scrape_id_scrape'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memcg_cache_sample'))
    )
    with op.batch_alter_table('memcg_cache_sample', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_memcg_cache_sample_scrape_id'), ['scrape_id'], unique=False)

    op.create_table('memcg_slabinfo_sample',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scrape_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('css_id', sa.Integer(), nullable=True),
    sa.Column('dead', sa.Boolean(), nullable=False),
    sa.Column('deact', sa.Boolean(), nullable=False),
    sa.Column('active_objs_total', sa.BigInteger(), nullable=False),
    sa.Column('num_objs_total', sa.BigInteger(), nullable=False),
    sa.Column('active_slabs_total', sa.BigInteger(), nullable=False),
    sa.Column('num_slabs_total', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'], name=op.f('fk_memcg_slabinfo_sample_scrape_id_scrape'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memcg_slabinfo_sample'))
    )
    with op.batch_alter_table('memcg_slabinfo_sample', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_memcg_slabinfo_sample_scrape_id'), ['scrape_id'], unique=False)

    op.create_table('removed_cgroup',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('cgroup_id', sa.Integer(), nullable=True),
    sa.Column('hierarchy', sa.String(length=16), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_memory_usage_bytes', sa.BigInteger(), nullable=True),
    sa.Column('file_bytes', sa.BigInteger(), nullable=True),
    sa.Column('shmem_bytes', sa.BigInteger(), nullable=True),
    sa.Column('slab_bytes', sa.BigInteger(), nullable=True),
    sa.Column('kernel_stack_bytes', sa.BigInteger(), nullable=True),
    sa.Column('last_memory_stat_json', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['cgroup_id'], ['cgroup.id'], name=op.f('fk_removed_cgroup_cgroup_id_cgroup'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['host_id'], ['host.id'], name=op.f('fk_removed_cgroup_host_id_host'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_removed_cgroup'))
    )
    with op.batch_alter_table('removed_cgroup', schema=None) as batch_op:
        batch_op.create_index('ix_removed_cgroup_host_id_removed_at', ['host_id', 'removed_at'], unique=False)

    op.create_table('scrape_error',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scrape_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'], name=op.f('fk_scrape_error_scrape_id_scrape'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scrape_error'))
    )
    with op.batch_alter_table('scrape_error', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scrape_error_scrape_id'), ['scrape_id'], unique=False)

    op.create_table('slab_sample',
    sa.Column('scrape_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cache_id', sa.Integer(), nullable=False),
    sa.Column('active_objs_total', sa.BigInteger(), nullable=False),
    sa.Column('num_objs_total', sa.BigInteger(), nullable=False),
    sa.Column('num_slabs_total', sa.BigInteger(), nullable=False),
    sa.Column('slab_bytes', sa.BigInteger(), nullable=False),
    sa.Column('partial_slabs_total', sa.BigInteger(), nullable=True),
    sa.Column('cpu_slabs_total', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['cache_id'], ['slab_cache.id'], name=op.f('fk_slab_sample_cache_id_slab_cache'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['scrape_id'], ['scrape.id'], name=op.f('fk_slab_sample_scrape_id_scrape'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('scrape_id', 'cache_id', name=op.f('pk_slab_sample'))
    )
    with op.batch_alter_table('slab_sample', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slab_sample_cache_id'), ['cache_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('slab_sample', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slab_sample_cache_id'))

    op.drop_table('slab_sample')
    with op.batch_alter_table('scrape_error', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scrape_error_scrape_id'))

    op.drop_table('scrape_error')
    with op.batch_alter_table('removed_cgroup', schema=None) as batch_op:
        batch_op.drop_index('ix_removed_cgroup_host_id_removed_at')

    op.drop_table('removed_cgroup')
    with op.batch_alter_table('memcg_slabinfo_sample', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_memcg_slabinfo_sample_scrape_id'))

    op.drop_table('memcg_slabinfo_sample')
    with op.batch_alter_table('memcg_cache_sample', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_memcg_cache_sample_scrape_id'))

    op.drop_table('memcg_cache_sample')
    with op.batch_alter_table('cgroup_sample', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cgroup_sample_cgroup_id'))

    op.drop_table('cgroup_sample')
    with op.batch_alter_table('cgroup_kmem_cache_sample', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cgroup_kmem_cache_sample_scrape_id'))

    op.drop_table('cgroup_kmem_cache_sample')
    op.drop_table('slab_cache')
    with op.batch_alter_table('scrape', schema=None) as batch_op:
        batch_op.drop_index('ix_scrape_host_id_taken_at')

    op.drop_table('scrape')
    op.drop_table('cgroup')
    op.drop_table('host')
