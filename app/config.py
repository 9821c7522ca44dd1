"""The only reader of the environment: one typed Settings, prefix SLABSCOPE_."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """slabscope's settings; every field can be set as SLABSCOPE_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="SLABSCOPE_", extra="ignore")

    database_url: str = "sqlite:///slabscope.db"
    proc_root: str = "/proc"
    sys_root: str = "/sys"
    collect_interval_seconds: float = Field(default=15.0, gt=0, le=86_400)
    # Per-cgroup cadences (docs in README "Storage and cadences", costs in docs/scaling.md).
    # A walk reads every cgroup's memory.stat into the collector's compact in-memory copy,
    # which is what a removed cgroup's record holds; directories are listed every tick and
    # new cgroups are read (and stored whole) the tick they appear.
    cgroup_walk_interval_seconds: float = Field(default=60.0, gt=0, le=86_400)
    # Per-cgroup series rows (usage, file, anon, shmem, slab, kernel stack, dying, ...).
    cgroup_series_interval_seconds: float = Field(default=300.0, gt=0, le=86_400)
    # Every live cgroup's whole memory.stat.
    cgroup_full_stat_interval_seconds: float = Field(default=21_600.0, gt=0, le=7 * 86_400)
    # Whole /proc/meminfo and /proc/vmstat (their headline figures are stored every tick).
    host_full_interval_seconds: float = Field(default=3_600.0, gt=0, le=7 * 86_400)
    # Override the era detected from the kernel release (vendor kernels, backports).
    era: str | None = None
    # Override the host name (containers see their own unless /proc/sys/kernel is the host's).
    hostname: str | None = None
    # Page size of the observed host; default: this process's (the same kernel when live).
    page_size_bytes: int | None = Field(default=None, gt=0)
    # Per-tick SLUB sysfs counts (partial, cpu_slabs): ~8 us per file in Python, 2 per cache.
    slub_stats: bool = False
    # SLUB `objects`/`objects_partial`: walk partial lists under list_lock with IRQs off.
    slub_objects: bool = False
    log_level: str = "INFO"
    # Alert thresholds, and where to post alerts (JSON), if anywhere.
    alert_dying_max: int = Field(default=1000, ge=0)
    alert_growth_per_day_max: float = Field(default=500.0, ge=0)
    # No growth figure, days-to-limit or growth alert before a host has this much history.
    growth_min_history_seconds: float = Field(default=3600.0, ge=0, le=30 * 86_400)
    alert_days_to_limit_min: float = Field(default=30.0, ge=0)
    alert_wasted_bytes_max: int = Field(default=1 << 30, ge=0)
    alert_webhook_url: str | None = None
    # An alert the webhook has not taken (it failed, or its server died) is posted again at
    # an ingest of its host this many seconds after the last try, by one server.
    alert_webhook_retry_seconds: float = Field(default=300.0, gt=0)
    # Raw samples are kept this many days; hourly rollups (slabscope retention) for longer.
    raw_retention_days: float = Field(default=14.0, gt=0)
    # The server rolls up and applies the retention itself this often (0: only `slabscope
    # retention`, e.g. from cron). Pages and projections over long ranges read the rollups.
    maintenance_interval_seconds: float = Field(default=600.0, ge=0, le=86_400)
    # Push mode (fleets): send snapshots to a central server instead of a database.
    push_url: str | None = None
    token_file: str | None = None
    spool_dir: str = "spool"
    spool_max_files: int = Field(default=10_000, ge=1)
    # A host whose last scrape is older than this is shown as stopped reporting.
    stale_after_seconds: int = Field(default=180, ge=10)
    # Where `slabscope serve` listens.
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, ge=1, le=65535)
    # Server processes of `slabscope serve`; they share nothing but the database.
    web_workers: int = Field(default=1, ge=1, le=64)
    # A request's headers must arrive within this long of the connection being ready for it,
    # and its body within the second of the headers; else the connection is closed (408).
    web_header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    web_body_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    # POST /api/v1/simulations: a body whose estimated work (units of about 1 ns of CPU here,
    # app/simulation/engine.py work()) is over this is a 422 before anything runs.
    simulation_max_work: float = Field(default=3e9, gt=0)
    # Each accepted simulation runs in a child process with these limits (over one: 422,
    # or 503 for the wall clock), at most this many at once per server process (503 beyond).
    simulation_memory_bytes: int = Field(default=2 << 30, ge=1 << 20)
    simulation_cpu_seconds: int = Field(default=30, ge=1)
    simulation_timeout_seconds: float = Field(default=60.0, gt=0)
    simulation_concurrency: int = Field(default=1, ge=1, le=64)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
