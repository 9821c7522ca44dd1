"""Host views: what the API and the pages show of hosts, assembled from app/db's queries and
app/domain's derivations (shared by both; neither may import the other), and a host's history
and state for the model. A host that does not exist is NotFound (app/services/errors.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from app.db import cacheseries as cs
from app.db import cgroups as cg
from app.db import counts
from app.db import hoststate as hs
from app.db import modelinput as mi
from app.db import models as m
from app.db import queries as q
from app.db.frames import memory_figures
from app.domain import tree
from app.domain.cost import memcg_cost
from app.domain.growth import Growth, growth, memcg_id_limit
from app.domain.history import CacheState, CgroupState, HostHistory, HostState, MemcgCacheState
from app.domain.removedgroups import Removal
from app.domain.views import (
    CacheView,
    CgroupView,
    HostDetail,
    HostSummary,
    RemovedView,
    SeriesView,
    SourceStatus,
)
from app.services import churnview
from app.services.errors import NotFound

MIN_HISTORY = timedelta(hours=1)  # the default of Settings.growth_min_history_seconds


def get_host(session: Session, name: str, hint: str = "") -> m.Host:
    """The host named `name`, or NotFound that names it (`hint`: what to try, appended)."""
    host = q.host_by_name(session, name)
    if host is None:
        raise NotFound(f"no host named {name!r}: is its collector running?{hint}")
    return host


def _growth(row: q.HostRow, count: int | None, min_history: timedelta
            ) -> tuple[Growth, Growth]:
    """The 24 h and 7 d growth of the dying count: robust slopes over the windows they name,
    none before `min_history` (app/domain/growth.py)."""
    h, s = row.host, row.latest
    last = h.last_seen_at
    recent = list(row.points_24h)
    if s is not None and count is not None:
        recent.append((s.taken_at, float(count)))
    watched = last - h.first_seen_at
    g24 = growth(recent, last, timedelta(hours=24), min_history, watched)
    end = row.points_7d[-1][0] if row.points_7d else None
    week = row.points_7d + [p for p in recent if end is None or p[0] > end]
    g7 = growth(week, last, timedelta(days=7), min_history, watched) if row.points_7d else \
        Growth(None, timedelta(days=7), watched, 0, False,
               g24.note or f"over the {_span(watched)} there is, not 7 d")
    return g24, g7


def _span(d: timedelta) -> str:
    hours = d.total_seconds() / 3600
    return f"{hours / 24:.0f} d" if hours >= 48 else f"{hours:.0f} h" if hours >= 1 else \
        f"{d.total_seconds() / 60:.0f} min"


def _summary(row: q.HostRow, now: datetime, stale_after: timedelta,
             min_history: timedelta = MIN_HISTORY) -> HostSummary:
    h, s = row.host, row.latest
    cost = memcg_cost(h.kernel_release, h.possible_cpus_total, h.numa_nodes_total)
    dying = s.memcg_dying_total if s else None
    # Shown as stored; what is derived from it only from a count below 2^63 (not underflow).
    count = _valid(dying)
    total = _valid(s.memcg_total) if s else None
    g24, g7 = _growth(row, count, min_history)
    # Days to the ID limit from the longest window that has the evidence for it, where the
    # kernel's dying memcgs hold IDs (before 4.8; app/domain/growth.py).
    best = g7 if g7.covered else g24
    live = _valid(s.memcg_visible_total) if s else None
    ids = memcg_id_limit(h.kernel_release, live, total, best)
    return HostSummary(
        name=h.name, kernel_release=h.kernel_release, era=h.era, cgroup_layout=h.cgroup_layout,
        cpus=h.possible_cpus_total, last_scrape_at=h.last_seen_at,
        stale=now - h.last_seen_at > stale_after,
        memcg_live=s.memcg_visible_total if s else None, memcg_dying=dying,
        memcg_total=s.memcg_total if s else None,
        dying_growth_per_day_24h=g24.per_day,
        dying_growth_per_day_7d=g7.per_day if g7.covered else None,
        days_to_memcg_id_limit=ids.days,
        growth_note=g24.note,
        id_limit_note=ids.note, dying_hold_ids=ids.dying_hold_ids,
        slab_bytes=s.slab_bytes if s else None,
        sreclaimable_bytes=s.sreclaimable_bytes if s else None,
        sunreclaim_bytes=s.sunreclaim_bytes if s else None,
        percpu_bytes=s.percpu_bytes if s else None,
        dying_cost_bytes_each=cost.per_memcg_bytes,
        wasted_bytes=count * cost.per_memcg_bytes if count is not None else None,
        cost_model=cost.model, removed_total=row.removed_total,
        sparkline_dying_24h=row.sparkline,
        history_seconds=(h.last_seen_at - h.first_seen_at).total_seconds())


def fleet(session: Session, *, limit: int, offset: int, now: datetime,
          stale_after: timedelta, min_history: timedelta = MIN_HISTORY
          ) -> tuple[list[HostSummary], int]:
    """The fleet page: hosts by dying memcgs, most first."""
    rows, total = q.fleet(session, limit, offset)
    return [_summary(r, now, stale_after, min_history) for r in rows], total


def host_detail(session: Session, name: str, *, now: datetime, stale_after: timedelta,
                min_history: timedelta = MIN_HISTORY) -> HostDetail:
    """One host: its summary, identity, and which sources its latest scrape could read."""
    host = get_host(session, name)
    row = q.fleet_one(session, host.id)
    summary = _summary(row, now, stale_after, min_history)
    latest = row.latest
    errors = q.sources_seen(session, latest.id) if latest else []
    failed = {src for src, _, _ in errors}
    sources = [SourceStatus(src, False, f"{path}: {msg}") for src, path, msg in errors]
    for src in ("slabinfo", "slub-sysfs", "proc-cgroups", "cgroup", "meminfo", "vmstat"):
        if src not in failed and latest is not None:
            sources.append(SourceStatus(src, True, "read in the latest scrape"))
    count = counts.scrape_total(session, host.id)
    return HostDetail(summary, host.machine_id, host.boot_id, host.numa_nodes_total,
                      host.page_size_bytes, host.first_seen_at,
                      latest.memcg_method if latest else None, count, sources)


def series(session: Session, host_id: int, metric: str, since: datetime, until: datetime,
           step: int | None) -> SeriesView | None:
    """A metric of a host over a range, at most q.MAX_POINTS points (None: unknown cache)."""
    if metric.startswith("cache:"):
        _, name, what = metric.split(":", 2)
        got = cache_series(session, host_id, name, [what], since, until, step)
        return None if got is None else replace(got[what], metric=metric)
    return host_series(session, host_id, [metric], since, until, step)[metric]


def host_series(session: Session, host_id: int, metrics: list[str], since: datetime,
                until: datetime, step: int | None) -> dict[str, SeriesView]:
    """Several scrape metrics of a host over one range, from one query."""
    width = q.covering_step(session, host_id, since, q.choose_step(since, until, step))
    got = q.scrape_series(session, host_id, metrics, since, until, width)
    return {k: SeriesView(k, s.step_seconds, since, until, s.times, s.values)
            for k, s in got.items()}


def cache_series(session: Session, host_id: int, name: str, metrics: list[str],
                 since: datetime, until: datetime,
                 step: int | None) -> dict[str, SeriesView] | None:
    """Several metrics of one cache over one range, from one query (None: no such cache)."""
    cid = q.cache_id(session, host_id, name)
    if cid is None:
        return None
    width = q.covering_step(session, host_id, since, cs.cache_step(since, until, step))
    got = cs.cache_series(session, cid, metrics, since, until, width)
    return {k: SeriesView(f"cache:{name}:{k}", s.step_seconds, since, until, s.times,
                          s.values) for k, s in got.items()}


# A cache's growth is given per day only over a day or more (an average, not an
# extrapolation: 3 minutes of growth once read as "68 GiB/day"); shorter, only over the range.
PER_DAY_MIN_DAYS = 1.0


def caches(session: Session, host_id: int, at: datetime | None,
           window: timedelta) -> tuple[list[CacheView], datetime | None]:
    """The cache table of the scrape at `at` (latest if None), growth over `window`."""
    now = q.scrape_at(session, host_id, at)
    if now is None:
        return [], None
    before = q.scrape_at(session, host_id, now.taken_at - window)
    if before is None:
        before = q.first_scrape_since(session, host_id, now.taken_at - window)
    if before is not None and before.id == now.id:
        before = None
    days = (now.taken_at - before.taken_at).total_seconds() / 86_400 if before else 0
    out = []
    for r in q.cache_rows(session, now.id, before.id if before else None):
        out.append(CacheView(
            r.name, r.aliases, r.bytes, r.objects, r.active_objs,
            r.active_objs / r.objects if r.objects else None, r.slabs, r.object_size_bytes,
            r.slab_size_bytes, r.objs_per_slab, r.pages_per_slab, r.order, r.reclaim_account,
            r.growth_bytes, r.growth_bytes / days
            if r.growth_bytes is not None and days >= PER_DAY_MIN_DAYS else None))
    return out, now.taken_at


def cgroups(session: Session, host_id: int,
            at: datetime | None) -> tuple[list[CgroupView], datetime | None]:
    """The cgroup trees of the scrape at `at`, depth first, with subtree counts."""
    now = q.scrape_at(session, host_id, at)
    if now is None:
        return [], None
    out: list[CgroupView] = []
    rows = cg.cgroups_at(session, host_id, now.taken_at, whole=True)
    for hierarchy in sorted({c.hierarchy for c in rows}):
        pairs: list[tuple[str, dict[str, object]]] = [
            (c.path, {"row": c}) for c in rows if c.hierarchy == hierarchy]
        root = tree.build(pairs)
        for node in tree.flatten(root):
            c = node.data.get("row")
            f = c.figures if isinstance(c, cg.CgroupAt) else None
            dying = (f.cgroup_stat or {}).get("nr_dying_descendants") if f else None
            if dying is None and node.path == "/" and hierarchy == "memory":
                dying = now.memcg_dying_total  # v1: only the host total is known
            figs = memory_figures(f.memory_stat if f else {})
            out.append(CgroupView(
                hierarchy, node.path, node.name, node.depth, tree.parent_of(node.path),
                node.descendants, dying, f.usage_bytes if f else None,
                f.kmem_usage_bytes if f else None, figs["file_bytes"], figs["anon_bytes"],
                figs["shmem_bytes"], figs["slab_bytes"], figs["kernel_stack_bytes"],
                dict(c.memory_stat) if isinstance(c, cg.CgroupAt) else {}))
    return out, now.taken_at


def removed(session: Session, host: m.Host, since: datetime | None, until: datetime | None,
            limit: int, offset: int, ev: churnview.Evidence | None = None
            ) -> tuple[list[RemovedView], int]:
    """Removed cgroups, newest first, with what most likely pins each."""
    rows, total = q.removed(session, host.id, since, until, limit, offset)
    # Labels weigh the last sample against the residual and dying counts above it (a
    # stale sample must not say "freed" where the kernel's counts say otherwise).
    if ev is None and rows:
        ev = churnview.evidence(session, host, until=until)
    return [RemovedView(r.hierarchy, r.path, r.last_seen_at, r.removed_at,
                        r.last_memory_usage_bytes, r.file_bytes, r.shmem_bytes, r.slab_bytes,
                        r.kernel_stack_bytes,
                        ev.label(Removal(r.hierarchy, r.path, r.removed_at, r.file_bytes,
                                         r.shmem_bytes, r.slab_bytes, r.kernel_stack_bytes,
                                         r.stat_read_at)) if ev is not None else "")
            for r in rows], total


def utcnow() -> datetime:
    """Now, in UTC (one place, so tests can see what the views used)."""
    return datetime.now(UTC)


def history(session: Session, host: m.Host, days: float = 30.0) -> HostHistory | None:
    """A host's dying and live memcgs and its removals, in <= MAX_POINTS buckets, for the model.

    Bounded by the buckets, not by the history: rolled-up hours come from the hourly rollups,
    and removals come aggregated per bucket (counts and byte sums), never row by row.
    """
    end = host.last_seen_at
    # From the first raw scrape or rolled-up hour: after the raw retention the rollups
    # still hold the older part of the window.
    first = mi.first_since(session, host.id, end - timedelta(days=days))
    if first is None:
        return None
    return mi.host_history(session, host, first, end)


def _valid(v: int | None) -> int | None:
    """A kernel figure to derive from: None where unknown or >= 2^63 (counter underflow)."""
    return v if v is not None and 0 <= v < 1 << 63 else None


def _sane(v: int | None) -> int:
    """A kernel count for the model: 0 where unknown or >= 2^63 (counter underflow)."""
    return v if v is not None and 0 <= v < 1 << 63 else 0


def _order(v: int | None) -> int:
    """A slab order for the model (pages are 1 << order): 0 where unknown or absurd."""
    return v if v is not None and 0 <= v <= MAX_SLAB_ORDER else 0


MAX_SLAB_ORDER = 20  # the kernel's MAX_PAGE_ORDER is at most 15 (64 KiB pages: 13)


def state(session: Session, host: m.Host) -> HostState | None:
    """A host at its latest scrape: caches, cgroups' slab charge, per-memcg caches."""
    latest = q.scrape_at(session, host.id, None)
    if latest is None:
        return None
    caches = [CacheState(r.name, _sane(r.slabs) * _sane(r.pages_per_slab), _order(r.order),
                         max(1, _sane(r.objs_per_slab)), _sane(r.object_size_bytes),
                         _sane(r.objects), bool(r.reclaim_account))
              for r in q.cache_rows(session, latest.id, None)]
    cgroups = [CgroupState(c.path, memory_figures(c.figures.memory_stat)["slab_bytes"],
                           c.figures.kmem_usage_bytes)
               for c in cg.cgroups_at(session, host.id, latest.taken_at)
               if c.hierarchy == "memory" or c.figures.memory_stat]
    memcg_caches = [MemcgCacheState(x.root_cache, x.cgroup_name, _sane(x.slabs_total),
                                    _order(x.order))
                    for x in hs.memcg_caches(session, latest.id)]
    slabs = sorted(hs.removed_slab_bytes(session, host.id, 5000))
    return HostState(host.name, host.era, host.page_size_bytes,
                     _sane(latest.memcg_dying_total), caches, cgroups, memcg_caches,
                     slabs[len(slabs) // 2] if slabs else None)


def host_summary(session: Session, name: str, *, now: datetime, stale_after: timedelta,
                 min_history: timedelta = MIN_HISTORY) -> HostSummary | None:
    """One host's fleet row alone (what its alerts need; host_detail also counts scrapes)."""
    host = q.host_by_name(session, name)
    if host is None:
        return None
    return _summary(q.fleet_one(session, host.id), now, stale_after, min_history)
