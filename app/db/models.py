"""Tables. Raw values as the kernel reported them; every column name carries its unit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import U64, Base, UTCDateTime

JSONDict = JSON().with_variant(JSON(), "postgresql")
BigInt = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY rowid
# u64 columns that were INTEGER before 0010 (still INTEGER on SQLite, BIGINT on PostgreSQL).
U64_INT = U64(sqlite_integer=True)
# Columns made wider by 0010 on PostgreSQL only: SQLite stores 64 bits in any INTEGER.
SmallBig = BigInteger().with_variant(Integer(), "sqlite")
SumFloat = Float().with_variant(BigInteger(), "sqlite")


class Host(Base):
    """One host (by name); identity as of its latest scrape."""

    __tablename__ = "host"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    machine_id: Mapped[str | None] = mapped_column(String(64))
    boot_id: Mapped[str | None] = mapped_column(String(64))
    kernel_release: Mapped[str] = mapped_column(String(255))
    era: Mapped[str] = mapped_column(String(32))
    cgroup_layout: Mapped[str] = mapped_column(String(16))
    possible_cpus_total: Mapped[int] = mapped_column(Integer)
    numa_nodes_total: Mapped[int] = mapped_column(Integer)
    page_size_bytes: Mapped[int] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"Host(id={self.id!r}, name={self.name!r})"


class Scrape(Base):
    """One collector tick of one host."""

    __tablename__ = "scrape"
    __table_args__ = (
        Index("ix_scrape_host_id_taken_at", "host_id", "taken_at"),
        # On PostgreSQL this constraint also holds taken_at, the partition key (0005).
        UniqueConstraint("host_id", "snapshot_id"),
    )
    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"))
    snapshot_id: Mapped[str | None] = mapped_column(String(64))  # idempotency key for pushes
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[float] = mapped_column(Float)
    boot_id: Mapped[str | None] = mapped_column(String(64))
    kernel_release: Mapped[str] = mapped_column(String(255))
    era: Mapped[str] = mapped_column(String(32))
    memcg_num_cgroups_total: Mapped[int | None] = mapped_column(U64_INT)  # /proc/cgroups
    memcg_total: Mapped[int | None] = mapped_column(U64_INT)
    memcg_visible_total: Mapped[int | None] = mapped_column(U64_INT)
    memcg_dying_total: Mapped[int | None] = mapped_column(U64_INT)
    memcg_method: Mapped[str] = mapped_column(Text)
    mem_total_bytes: Mapped[int | None] = mapped_column(U64())
    slab_bytes: Mapped[int | None] = mapped_column(U64())
    sreclaimable_bytes: Mapped[int | None] = mapped_column(U64())
    sunreclaim_bytes: Mapped[int | None] = mapped_column(U64())
    percpu_bytes: Mapped[int | None] = mapped_column(U64())
    kernel_stack_bytes: Mapped[int | None] = mapped_column(U64())
    shmem_bytes: Mapped[int | None] = mapped_column(U64())
    errors_total: Mapped[int] = mapped_column(Integer, default=0)
    # Whole files as JSON, loaded only when read (pages never need them: ~230 keys a row).
    # meminfo/vmstat whole only on host_full scrapes (settings host_full_interval_seconds).
    meminfo_json: Mapped[dict[str, Any] | None] = mapped_column(JSONDict, deferred=True)
    vmstat_json: Mapped[dict[str, Any] | None] = mapped_column(JSONDict, deferred=True)
    proc_cgroups_json: Mapped[list[Any]] = mapped_column(JSONDict, deferred=True)


class ScrapeError(Base):
    """A source that could not be read or parsed in a scrape."""

    __tablename__ = "scrape_error"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    scrape_id: Mapped[int] = mapped_column(ForeignKey("scrape.id", ondelete="CASCADE"),
                                           index=True)
    # The scrape's UTC day number, the partition key on PostgreSQL (app/db/partitions.py).
    taken_day: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)


class SlabCache(Base):
    """A slab cache of a host: name and per-boot geometry."""

    __tablename__ = "slab_cache"
    __table_args__ = (UniqueConstraint("host_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    aliases_json: Mapped[list[str]] = mapped_column(JSONDict)
    object_size_bytes: Mapped[int] = mapped_column(U64_INT)
    slab_size_bytes: Mapped[int | None] = mapped_column(U64_INT)
    objs_per_slab_total: Mapped[int] = mapped_column(U64_INT)
    pages_per_slab_total: Mapped[int] = mapped_column(U64_INT)
    order: Mapped[int | None] = mapped_column(U64_INT)
    reclaim_account: Mapped[bool | None] = mapped_column(Boolean)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SlabFrame(Base):
    """Every cache of a host at one scrape, one blob (app/db/slabframes.py, row ids
    slab_cache.id): one row a scrape where slab_sample had one per cache (235 a tick)."""

    __tablename__ = "slab_frame"
    # A cache's series reads the host's frames in its range, in time order.
    __table_args__ = (Index("ix_slab_frame_host_id_taken_at", "host_id", "taken_at"),)
    # SQLite: the scrape id is the rowid, no second key index. PostgreSQL: the key also holds
    # taken_at, the partition key (app/db/partitions.py).
    scrape_id: Mapped[int] = mapped_column(BigInt, ForeignKey("scrape.id", ondelete="CASCADE"),
                                           primary_key=True, autoincrement=False)
    host_id: Mapped[int] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Cgroup(Base):
    """A cgroup directory of a host, from first seen to removed."""

    __tablename__ = "cgroup"
    __table_args__ = (UniqueConstraint("host_id", "hierarchy", "path"),
                      Index("ix_cgroup_host_id_removed_at", "host_id", "removed_at"),
                      # the cgroups first seen since a frame, without scanning history
                      Index("ix_cgroup_host_id_first_seen_at", "host_id", "first_seen_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"))
    hierarchy: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when removed (the last tick that listed it); a live cgroup (removed_at NULL) is seen
    # by every scrape, so its rows are not rewritten each hour (10,000 updates an hour).
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The whole memory.stat when first seen (cgtable.pack_stat), for cgroups younger than the
    # latest full frame.
    first_memory_stat: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)


class CgroupFrame(Base):
    """Many cgroups' figures at one instant, one blob (cgtable.pack_table, row ids cgroup.id).

    'series' frames hold the few charted figures of every live cgroup at the series cadence;
    'full' frames every memory.stat key, at the full-stat cadence.
    """

    __tablename__ = "cgroup_frame"
    __table_args__ = (Index("ix_cgroup_frame_host_id_kind_taken_at", "host_id", "kind",
                            "taken_at"),)
    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"))
    scrape_id: Mapped[int] = mapped_column(ForeignKey("scrape.id", ondelete="CASCADE"),
                                           index=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(8))
    rows_total: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)


class CgroupKmemCacheSample(Base):
    """A row of a v1 cgroup's memory.kmem.slabinfo in one scrape (kernels <= 5.8)."""

    __tablename__ = "cgroup_kmem_cache_sample"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    scrape_id: Mapped[int] = mapped_column(ForeignKey("scrape.id", ondelete="CASCADE"),
                                           index=True)
    # The scrape's UTC day number, the partition key on PostgreSQL (app/db/partitions.py).
    taken_day: Mapped[int] = mapped_column(Integer)
    cgroup_id: Mapped[int] = mapped_column(ForeignKey("cgroup.id", ondelete="CASCADE"),
                                           index=True)
    name: Mapped[str] = mapped_column(String(255))
    active_objs_total: Mapped[int] = mapped_column(U64())
    num_objs_total: Mapped[int] = mapped_column(U64())
    object_size_bytes: Mapped[int] = mapped_column(U64_INT)
    objs_per_slab_total: Mapped[int] = mapped_column(U64_INT)
    pages_per_slab_total: Mapped[int] = mapped_column(U64_INT)
    num_slabs_total: Mapped[int] = mapped_column(U64())


class MemcgCacheSample(Base):
    """A per-memcg child cache in one scrape (SLUB sysfs `cgroup/`, kernels <= 5.8)."""

    __tablename__ = "memcg_cache_sample"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    scrape_id: Mapped[int] = mapped_column(ForeignKey("scrape.id", ondelete="CASCADE"),
                                           index=True)
    # The scrape's UTC day number, the partition key on PostgreSQL (app/db/partitions.py).
    taken_day: Mapped[int] = mapped_column(Integer)
    root_cache: Mapped[str] = mapped_column(String(255))
    memcg_serial: Mapped[int] = mapped_column(U64())
    cgroup_name: Mapped[str] = mapped_column(Text)
    slabs_total: Mapped[int | None] = mapped_column(U64())
    total_objects_total: Mapped[int | None] = mapped_column(U64())
    objects_total: Mapped[int | None] = mapped_column(U64())
    order: Mapped[int | None] = mapped_column(U64_INT)
    object_size_bytes: Mapped[int | None] = mapped_column(U64_INT)
    objs_per_slab_total: Mapped[int | None] = mapped_column(U64_INT)


class MemcgSlabinfoSample(Base):
    """A row of debugfs memcg_slabinfo in one scrape (5.4-5.8)."""

    __tablename__ = "memcg_slabinfo_sample"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    scrape_id: Mapped[int] = mapped_column(ForeignKey("scrape.id", ondelete="CASCADE"),
                                           index=True)
    # The scrape's UTC day number, the partition key on PostgreSQL (app/db/partitions.py).
    taken_day: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    css_id: Mapped[int | None] = mapped_column(U64_INT)
    dead: Mapped[bool] = mapped_column(Boolean)
    deact: Mapped[bool] = mapped_column(Boolean)
    active_objs_total: Mapped[int] = mapped_column(U64())
    num_objs_total: Mapped[int] = mapped_column(U64())
    active_slabs_total: Mapped[int] = mapped_column(U64())
    num_slabs_total: Mapped[int] = mapped_column(U64())


class RemovedCgroup(Base):
    """A cgroup that disappeared between two scrapes, with what it last had charged."""

    __tablename__ = "removed_cgroup"
    __table_args__ = (Index("ix_removed_cgroup_host_id_removed_at", "host_id", "removed_at"),)
    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"))
    cgroup_id: Mapped[int | None] = mapped_column(ForeignKey("cgroup.id", ondelete="SET NULL"),
                                                  index=True)
    hierarchy: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_memory_usage_bytes: Mapped[int | None] = mapped_column(U64())
    file_bytes: Mapped[int | None] = mapped_column(U64())
    shmem_bytes: Mapped[int | None] = mapped_column(U64())
    slab_bytes: Mapped[int | None] = mapped_column(U64())
    kernel_stack_bytes: Mapped[int | None] = mapped_column(U64())
    last_memory_stat: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # pack_stat
    stat_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class HostToken(Base):
    """A push token of a host: only its SHA-256 is stored; revoked tokens stay for audit."""

    __tablename__ = "host_token"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_name: Mapped[str] = mapped_column(String(255), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ScrapeHourly(Base):
    """Hourly rollup of a host's scrapes: sums and counts, so buckets combine exactly."""

    __tablename__ = "scrape_hourly"
    host_id: Mapped[int] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"),
                                         primary_key=True)
    hour_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    scrapes_total: Mapped[int] = mapped_column(Integer)
    # The hour's raw scrapes are gone (retention): late rows add to it, never replace it.
    raw_dropped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    memcg_dying_sum_total: Mapped[float | None] = mapped_column(Float)
    memcg_dying_max_total: Mapped[int | None] = mapped_column(SmallBig)
    memcg_live_sum_total: Mapped[float | None] = mapped_column(Float)
    memcg_total_sum_total: Mapped[float | None] = mapped_column(Float)
    slab_bytes_sum: Mapped[float | None] = mapped_column(Float)
    sreclaimable_bytes_sum: Mapped[float | None] = mapped_column(Float)
    sunreclaim_bytes_sum: Mapped[float | None] = mapped_column(Float)
    percpu_bytes_sum: Mapped[float | None] = mapped_column(Float)
    kernel_stack_bytes_sum: Mapped[float | None] = mapped_column(Float)
    shmem_bytes_sum: Mapped[float | None] = mapped_column(Float)


class SlabHourly(Base):
    """Hourly rollup of one cache: sums and the number of samples."""

    __tablename__ = "slab_hourly"
    cache_id: Mapped[int] = mapped_column(ForeignKey("slab_cache.id", ondelete="CASCADE"),
                                          primary_key=True)
    hour_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    samples_total: Mapped[int] = mapped_column(Integer)
    slab_bytes_sum: Mapped[float] = mapped_column(Float)
    num_objs_sum_total: Mapped[float] = mapped_column(Float)
    active_objs_sum_total: Mapped[float] = mapped_column(Float)
    num_slabs_sum_total: Mapped[float] = mapped_column(Float)


class SlabFiveMinutes(Base):
    """5-minute rollup of one cache (as slab_hourly): the cache charts of ranges past a day
    read these, not thousands of raw frames; kept as long as the raw frames."""

    __tablename__ = "slab_5min"
    cache_id: Mapped[int] = mapped_column(ForeignKey("slab_cache.id", ondelete="CASCADE"),
                                          primary_key=True)
    bucket_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    samples_total: Mapped[int] = mapped_column(Integer)
    slab_bytes_sum: Mapped[float] = mapped_column(Float)
    num_objs_sum_total: Mapped[float] = mapped_column(Float)
    active_objs_sum_total: Mapped[float] = mapped_column(Float)
    num_slabs_sum_total: Mapped[float] = mapped_column(Float)


class IngestCounter(Base):
    """Ingest requests by outcome, for every server process (/metrics reads it)."""

    __tablename__ = "ingest_counter"
    outcome: Mapped[str] = mapped_column(String(32), primary_key=True)
    requests_total: Mapped[int] = mapped_column(BigInteger)


class HostSpoolDropped(Base):
    """The most snapshots a host's collector said it dropped from its full spool, in all."""

    __tablename__ = "host_spool_dropped"
    # The name, not host.id: the figure comes with the push, before the host row may exist.
    host_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    dropped_total: Mapped[int] = mapped_column(BigInteger)


class AlertState(Base):
    """An alert that fires for a host; the row's insert decides which server posts it."""

    __tablename__ = "alert_state"
    host_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime)  # first seen firing
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)  # a server took the posting
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the webhook took it


class RemovedHourly(Base):
    """Hourly rollup of a host's removed cgroups: counts and byte sums of what they left.

    The model reads removals per bucket from here (one row per hour, however many cgroups a
    host removes), so a projection's cost does not grow with the removals it is fitted on.
    """

    __tablename__ = "removed_hourly"
    host_id: Mapped[int] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"),
                                         primary_key=True)
    hour_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    removed_total: Mapped[int] = mapped_column(Integer)
    with_file_total: Mapped[int] = mapped_column(Integer)
    with_shmem_total: Mapped[int] = mapped_column(Integer)
    pagecache_only_total: Mapped[int] = mapped_column(Integer)
    with_kernel_stack_total: Mapped[int] = mapped_column(Integer)
    slab_known_total: Mapped[int] = mapped_column(Integer)
    file_bytes_sum: Mapped[float] = mapped_column(SumFloat)
    shmem_bytes_sum: Mapped[float] = mapped_column(SumFloat)
    slab_bytes_sum: Mapped[float] = mapped_column(SumFloat)
    kernel_stack_bytes_sum: Mapped[float] = mapped_column(SumFloat)
    # The hour's removal records were deleted by retention: the rollup is final, and records
    # that arrive for it later (a collector's spool) are added to it, then deleted.
    raw_dropped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class CgroupChurn(Base):
    """Counted churn of one hierarchy at one scrape: cgroups made, removed and freed since
    `since_at` (the previous counted listing), from kernfs ids and /proc/cgroups
    (app/domain/churn.py), cgroups that lived less than a tick included."""

    __tablename__ = "cgroup_churn"
    __table_args__ = (Index("ix_cgroup_churn_host_id_taken_at", "host_id", "taken_at"),)
    # SQLite: (scrape, hierarchy). PostgreSQL: the key also holds taken_at, the partition
    # key (app/db/partitions.py), and there is no foreign key to scrape.
    scrape_id: Mapped[int] = mapped_column(BigInt, ForeignKey("scrape.id", ondelete="CASCADE"),
                                           primary_key=True, autoincrement=False)
    hierarchy: Mapped[str] = mapped_column(String(16), primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    since_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_total: Mapped[int] = mapped_column(Integer)
    removed_total: Mapped[int] = mapped_column(Integer)
    freed_total: Mapped[int | None] = mapped_column(Integer)
    exact: Mapped[bool] = mapped_column(Boolean)


class ChurnHourly(Base):
    """Hourly rollup of counted churn per hierarchy (intervals by the hour they end in):
    sums and counts, so buckets combine exactly after the raw rows are dropped."""

    __tablename__ = "churn_hourly"
    host_id: Mapped[int] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"),
                                         primary_key=True)
    hierarchy: Mapped[str] = mapped_column(String(16), primary_key=True)
    hour_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    intervals_total: Mapped[int] = mapped_column(Integer)
    inexact_total: Mapped[int] = mapped_column(Integer)  # intervals not counted whole
    created_total: Mapped[int] = mapped_column(SmallBig)
    removed_total: Mapped[int] = mapped_column(SmallBig)
    freed_total: Mapped[int] = mapped_column(SmallBig)  # over the intervals that knew it
    freed_intervals_total: Mapped[int] = mapped_column(Integer)
