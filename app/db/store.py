"""All SQL for writing and reading samples. Callers own the transaction; nothing here commits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, func, insert, select, update
from sqlalchemy.orm import Session

from app.db import models as m
from app.db.base import Base
from app.domain.samples import CgroupSample, Snapshot

# memory.stat keys per figure: cgroup2 names first, then v1 (memory.stat of v1 says "cache",
# "rss"; shmem is in both; slab and kernel_stack are cgroup2 only, since 4.6).
_FIGURES: dict[str, tuple[str, ...]] = {
    "file_bytes": ("file", "cache"),
    "anon_bytes": ("anon", "rss"),
    "shmem_bytes": ("shmem",),
    "slab_bytes": ("slab",),
    "kernel_stack_bytes": ("kernel_stack",),
}


def memory_figures(stat: Mapping[str, int]) -> dict[str, int | None]:
    """The memory.stat figures we keep as columns, from v1 or v2 key names."""
    out: dict[str, int | None] = {}
    for col, keys in _FIGURES.items():
        out[col] = next((stat[k] for k in keys if k in stat), None)
    if out["slab_bytes"] is None and "slab_reclaimable" in stat:  # 4.6+ both, "slab" 5.9+
        out["slab_bytes"] = stat["slab_reclaimable"] + stat.get("slab_unreclaimable", 0)
    return out


LAST_SEEN_RESOLUTION = timedelta(hours=1)  # slab_cache / cgroup last_seen_at granularity


def _insert_rows(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """Bulk-insert rows: COPY on PostgreSQL, executemany elsewhere.

    psycopg's pipelined executemany sends one INSERT per row (~290 per snapshot, half of an
    ingest's time in bench/fleet.py); COPY is one round trip, inside the same transaction.
    """
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        session.execute(insert(model), rows)
        return
    table = Base.metadata.tables[model.__tablename__]
    cols = list(rows[0])
    json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(
            f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as cp:
        for r in rows:
            cp.write_row([json.dumps(r[c]) if c in json_cols and r[c] is not None else r[c]
                          for c in cols])


class SnapshotConflict(Exception):
    """A snapshot with this id was already stored for this host (an idempotent retry)."""


def upsert_host(session: Session, snap: Snapshot) -> m.Host:
    """Create or update the host row of a snapshot."""
    h = snap.host
    host = session.scalars(select(m.Host).where(m.Host.name == h.hostname)).one_or_none()
    if host is None:
        host = m.Host(name=h.hostname, first_seen_at=snap.taken_at)
        session.add(host)
    host.machine_id = h.machine_id
    host.boot_id = h.boot_id
    host.kernel_release = h.kernel_release
    host.era = h.era
    host.cgroup_layout = h.cgroup_layout
    host.possible_cpus_total = h.possible_cpus
    host.numa_nodes_total = h.numa_nodes
    host.page_size_bytes = h.page_size_bytes
    last: datetime | None = getattr(host, "last_seen_at", None)
    if snap.taken_at < host.first_seen_at:
        host.first_seen_at = snap.taken_at
    if last is None or snap.taken_at > last:
        host.last_seen_at = snap.taken_at
    session.flush()
    return host


def _cache_ids(session: Session, host_id: int, snap: Snapshot) -> dict[str, int]:
    rows = session.execute(
        select(m.SlabCache.name, m.SlabCache.id, m.SlabCache.aliases_json,
               m.SlabCache.order, m.SlabCache.slab_size_bytes)
        .where(m.SlabCache.host_id == host_id)).all()
    ids = {r.name: r.id for r in rows}
    known = {r.name: (list(r.aliases_json or []), r.order, r.slab_size_bytes) for r in rows}
    new: list[dict[str, Any]] = []
    for c in snap.caches:
        if c.name in ids or any(n["name"] == c.name for n in new):
            continue
        new.append({
            "host_id": host_id, "name": c.name, "aliases_json": list(c.aliases),
            "object_size_bytes": c.object_size_bytes, "slab_size_bytes": c.slab_size_bytes,
            "objs_per_slab_total": c.objs_per_slab, "pages_per_slab_total": c.pages_per_slab,
            "order": c.order, "reclaim_account": c.reclaim_account,
            "first_seen_at": snap.taken_at, "last_seen_at": snap.taken_at,
        })
    if new:
        session.execute(insert(m.SlabCache), new)
        ids.update((r.name, r.id) for r in session.execute(
            select(m.SlabCache.name, m.SlabCache.id).where(
                m.SlabCache.host_id == host_id,
                m.SlabCache.name.in_([n["name"] for n in new]))).all())
    changed = [c for c in snap.caches if c.name in known
               and known[c.name] != (list(c.aliases), c.order, c.slab_size_bytes)]
    for c in changed:
        session.execute(update(m.SlabCache).where(m.SlabCache.id == ids[c.name]).values(
            aliases_json=list(c.aliases), order=c.order, slab_size_bytes=c.slab_size_bytes,
            object_size_bytes=c.object_size_bytes, objs_per_slab_total=c.objs_per_slab,
            pages_per_slab_total=c.pages_per_slab, reclaim_account=c.reclaim_account))
    # Coarse on purpose: an hour's resolution spares 235 row updates on every scrape.
    session.execute(update(m.SlabCache).where(m.SlabCache.host_id == host_id)
                    .where(m.SlabCache.last_seen_at < snap.taken_at - LAST_SEEN_RESOLUTION)
                    .values(last_seen_at=snap.taken_at))
    return ids


def _cgroup_ids(session: Session, host_id: int, snap: Snapshot) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(m.Cgroup.hierarchy, m.Cgroup.path, m.Cgroup.id, m.Cgroup.removed_at)
        .where(m.Cgroup.host_id == host_id)).all()
    ids = {(r.hierarchy, r.path): r.id for r in rows}
    was_removed = {r.id for r in rows if r.removed_at is not None}
    revived = [ids[(c.hierarchy, c.path)] for c in snap.cgroups
               if ids.get((c.hierarchy, c.path)) in was_removed]
    if revived:  # a new cgroup with the name of a removed one
        session.execute(update(m.Cgroup).where(m.Cgroup.id.in_(revived))
                        .values(removed_at=None, first_seen_at=snap.taken_at))
    seen: set[tuple[str, str]] = set()
    new: list[dict[str, Any]] = []
    for c in snap.cgroups:
        key = (c.hierarchy, c.path)
        if key in ids or key in seen:
            continue
        seen.add(key)
        new.append({"host_id": host_id, "hierarchy": c.hierarchy, "path": c.path,
                    "first_seen_at": snap.taken_at, "last_seen_at": snap.taken_at})
    if new:
        session.execute(insert(m.Cgroup), new)
        for r in session.execute(select(m.Cgroup.hierarchy, m.Cgroup.path, m.Cgroup.id)
                                 .where(m.Cgroup.host_id == host_id,
                                        m.Cgroup.first_seen_at == snap.taken_at)).all():
            ids[(r.hierarchy, r.path)] = r.id
    present = [ids[(c.hierarchy, c.path)] for c in snap.cgroups]
    for i in range(0, len(present), 500):
        session.execute(update(m.Cgroup).where(m.Cgroup.id.in_(present[i:i + 500]))
                        .where(m.Cgroup.last_seen_at < snap.taken_at - LAST_SEEN_RESOLUTION)
                        .values(last_seen_at=snap.taken_at))
    return ids


def write_snapshot(session: Session, snap: Snapshot, *, snapshot_id: str | None = None) -> int:
    """Store one snapshot; return the scrape id. Raises SnapshotConflict on a repeated id."""
    host = upsert_host(session, snap)
    if snapshot_id is not None and session.scalar(
            select(m.Scrape.id).where(m.Scrape.host_id == host.id,
                                      m.Scrape.snapshot_id == snapshot_id)) is not None:
        raise SnapshotConflict(snapshot_id)
    mi = snap.meminfo
    scrape = m.Scrape(
        host_id=host.id, snapshot_id=snapshot_id, taken_at=snap.taken_at,
        duration_seconds=snap.duration_seconds, boot_id=snap.host.boot_id,
        kernel_release=snap.host.kernel_release, era=snap.host.era,
        memcg_num_cgroups_total=next((r.num_cgroups for r in snap.proc_cgroups
                                      if r.subsys_name == "memory"), None),
        memcg_total=snap.memcg.total, memcg_visible_total=snap.memcg.visible,
        memcg_dying_total=snap.memcg.dying, memcg_method=snap.memcg.method,
        mem_total_bytes=mi.get("MemTotal"), slab_bytes=mi.get("Slab"),
        sreclaimable_bytes=mi.get("SReclaimable"), sunreclaim_bytes=mi.get("SUnreclaim"),
        percpu_bytes=mi.get("Percpu"), kernel_stack_bytes=mi.get("KernelStack"),
        shmem_bytes=mi.get("Shmem"), errors_total=len(snap.errors),
        meminfo_json=dict(mi), vmstat_json=dict(snap.vmstat),
        proc_cgroups_json=[{"subsys_name": r.subsys_name, "hierarchy": r.hierarchy,
                            "num_cgroups": r.num_cgroups, "enabled": r.enabled}
                           for r in snap.proc_cgroups],
    )
    session.add(scrape)
    session.flush()
    sid = scrape.id
    if snap.errors:
        session.execute(insert(m.ScrapeError), [
            {"scrape_id": sid, "source": e.source, "path": e.path, "message": e.message}
            for e in snap.errors])
    cache_ids = _cache_ids(session, host.id, snap)
    seen_caches: set[int] = set()
    slab_rows: list[dict[str, Any]] = []
    for c in snap.caches:
        cid = cache_ids[c.name]
        if cid in seen_caches:
            # A repeated name in slabinfo (kept by the parser): sum into the one row.
            row = next(r for r in slab_rows if r["cache_id"] == cid)
            for k, v in (("active_objs_total", c.active_objs), ("num_objs_total", c.num_objs),
                         ("num_slabs_total", c.num_slabs), ("slab_bytes", c.bytes)):
                row[k] += v
            continue
        seen_caches.add(cid)
        slab_rows.append({
            "scrape_id": sid, "cache_id": cid, "active_objs_total": c.active_objs,
            "num_objs_total": c.num_objs, "num_slabs_total": c.num_slabs, "slab_bytes": c.bytes,
            "partial_slabs_total": c.partial_slabs, "cpu_slabs_total": c.cpu_slabs})
    if slab_rows:
        _insert_rows(session, m.SlabSample, slab_rows)
    cg_ids = _cgroup_ids(session, host.id, snap)
    cg_rows: list[dict[str, Any]] = []
    kmem_rows: list[dict[str, Any]] = []
    done: set[int] = set()
    for g in snap.cgroups:
        cgid = cg_ids[(g.hierarchy, g.path)]
        if cgid in done:
            continue
        done.add(cgid)
        stat = g.cgroup_stat
        cg_rows.append({
            "scrape_id": sid, "cgroup_id": cgid, "memory_usage_bytes": g.memory_usage_bytes,
            "kmem_usage_bytes": g.kmem_usage_bytes, **memory_figures(g.memory_stat),
            "nr_descendants_total": stat.get("nr_descendants") if stat is not None else None,
            "nr_dying_descendants_total": g.nr_dying_descendants,
            "memory_stat_json": dict(g.memory_stat),
            "cgroup_stat_json": dict(stat) if stat is not None else None})
        for r in g.kmem_slabinfo or ():
            kmem_rows.append({
                "scrape_id": sid, "cgroup_id": cgid, "name": r.name,
                "active_objs_total": r.active_objs, "num_objs_total": r.num_objs,
                "object_size_bytes": r.objsize_bytes, "objs_per_slab_total": r.objperslab,
                "pages_per_slab_total": r.pagesperslab, "num_slabs_total": r.num_slabs})
    if cg_rows:
        _insert_rows(session, m.CgroupSample, cg_rows)
    if kmem_rows:
        _insert_rows(session, m.CgroupKmemCacheSample, kmem_rows)
    if snap.memcg_caches:
        session.execute(insert(m.MemcgCacheSample), [
            {"scrape_id": sid, "root_cache": x.root_cache, "memcg_serial": x.memcg_serial,
             "cgroup_name": x.cgroup_name, "slabs_total": x.slabs,
             "total_objects_total": x.total_objects, "objects_total": x.objects,
             "order": x.order, "object_size_bytes": x.object_size_bytes,
             "objs_per_slab_total": x.objs_per_slab} for x in snap.memcg_caches])
    if snap.memcg_slabinfo:
        session.execute(insert(m.MemcgSlabinfoSample), [
            {"scrape_id": sid, "name": x.name, "css_id": x.css_id, "dead": x.dead,
             "deact": x.deact, "active_objs_total": x.active_objs,
             "num_objs_total": x.num_objs, "active_slabs_total": x.active_slabs,
             "num_slabs_total": x.num_slabs} for x in snap.memcg_slabinfo])
    if snap.removed:
        all_ids = {(r.hierarchy, r.path): r.id for r in session.execute(
            select(m.Cgroup.hierarchy, m.Cgroup.path, m.Cgroup.id)
            .where(m.Cgroup.host_id == host.id)).all()}
        rows: list[dict[str, Any]] = []
        for gone in snap.removed:
            gone_id = all_ids.get((gone.hierarchy, gone.path))
            figs = memory_figures(gone.last_memory_stat)
            rows.append({
                "host_id": host.id, "cgroup_id": gone_id, "hierarchy": gone.hierarchy,
                "path": gone.path, "last_seen_at": gone.last_seen_at, "removed_at": gone.removed_by,
                "last_memory_usage_bytes": gone.last_memory_usage_bytes,
                "file_bytes": figs["file_bytes"], "shmem_bytes": figs["shmem_bytes"],
                "slab_bytes": figs["slab_bytes"], "kernel_stack_bytes": figs["kernel_stack_bytes"],
                "last_memory_stat_json": dict(gone.last_memory_stat)})
            if gone_id is not None:  # absent from this tick by definition
                session.execute(update(m.Cgroup).where(m.Cgroup.id == gone_id)
                                .values(removed_at=gone.removed_by))
        session.execute(insert(m.RemovedCgroup), rows)
    return sid


def latest_cgroups(session: Session, host_name: str) -> tuple[list[CgroupSample], datetime] | None:
    """The cgroups of a host's latest scrape, to seed removal tracking after a restart."""
    row = session.execute(
        select(m.Scrape.id, m.Scrape.taken_at).join(m.Host, m.Host.id == m.Scrape.host_id)
        .where(m.Host.name == host_name).order_by(m.Scrape.taken_at.desc()).limit(1)).first()
    if row is None:
        return None
    samples = session.execute(
        select(m.Cgroup.hierarchy, m.Cgroup.path, m.CgroupSample.memory_stat_json,
               m.CgroupSample.memory_usage_bytes, m.CgroupSample.kmem_usage_bytes,
               m.CgroupSample.cgroup_stat_json)
        .join(m.Cgroup, m.Cgroup.id == m.CgroupSample.cgroup_id)
        .where(m.CgroupSample.scrape_id == row.id)).all()
    return ([CgroupSample(s.hierarchy, s.path, dict(s.memory_stat_json or {}),
                          s.memory_usage_bytes, s.kmem_usage_bytes, None,
                          dict(s.cgroup_stat_json) if s.cgroup_stat_json is not None else None)
             for s in samples], row.taken_at)


def count_scrapes(session: Session, host_name: str | None = None) -> int:
    """How many scrapes are stored (for one host, or all)."""
    q = select(func.count(m.Scrape.id))
    if host_name is not None:
        q = q.join(m.Host, m.Host.id == m.Scrape.host_id).where(m.Host.name == host_name)
    return int(session.scalar(q) or 0)


def add_token(session: Session, host_name: str, token_sha256: str, now: datetime) -> None:
    """Record a new push token (its hash) for a host."""
    session.add(m.HostToken(host_name=host_name, token_sha256=token_sha256, created_at=now))


def revoke_tokens(session: Session, host_name: str, now: datetime) -> int:
    """Revoke every live token of a host; return how many."""
    result = session.execute(update(m.HostToken).where(m.HostToken.host_name == host_name,
                                                       m.HostToken.revoked_at.is_(None))
                             .values(revoked_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def host_for_token(session: Session, token_sha256: str) -> str | None:
    """The host a live token belongs to (None: unknown or revoked)."""
    return session.scalar(select(m.HostToken.host_name).where(
        m.HostToken.token_sha256 == token_sha256, m.HostToken.revoked_at.is_(None)))


def tokens(session: Session) -> list[m.HostToken]:
    """Every token row, newest first."""
    return list(session.scalars(select(m.HostToken).order_by(m.HostToken.created_at.desc())))


# The web tier's shared state: ingest counters, spool drops and alert state live in these
# rows, not in a server process, so N workers (or replicas) answer as one. Each write is one
# statement, atomic in the database; callers keep these transactions short (a counter row is
# a hot row on PostgreSQL, locked until commit).


def _upsert(session: Session, model: type[Base]) -> Any:
    """An INSERT that takes ON CONFLICT, in this session's dialect (PostgreSQL or SQLite)."""
    # Imported here: the two dialects' INSERT constructs are only needed by the upserts below.
    from sqlalchemy.dialects import postgresql, sqlite
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def count_ingest(session: Session, outcome: str, n: int = 1) -> None:
    """Add n to the ingest counter of an outcome (stored, duplicate, forbidden, ...)."""
    ins = _upsert(session, m.IngestCounter).values(outcome=outcome, requests_total=n)
    session.execute(ins.on_conflict_do_update(
        index_elements=["outcome"],
        set_={"requests_total": m.IngestCounter.requests_total + ins.excluded.requests_total}))


def ingest_counts(session: Session) -> dict[str, int]:
    """Ingest requests by outcome, over every server process."""
    rows = session.execute(select(m.IngestCounter.outcome, m.IngestCounter.requests_total)
                           .order_by(m.IngestCounter.outcome))
    return {outcome: int(n) for outcome, n in rows}


def record_spool_dropped(session: Session, host_name: str, total: int) -> None:
    """Keep the largest total of dropped snapshots a host's collector has reported."""
    ins = _upsert(session, m.HostSpoolDropped).values(host_name=host_name, dropped_total=total)
    session.execute(ins.on_conflict_do_update(
        index_elements=["host_name"], set_={"dropped_total": ins.excluded.dropped_total},
        where=ins.excluded.dropped_total > m.HostSpoolDropped.dropped_total))


def spool_dropped(session: Session) -> dict[str, int]:
    """Per host, the snapshots its collector dropped from a full spool, in all."""
    rows = session.execute(select(m.HostSpoolDropped.host_name, m.HostSpoolDropped.dropped_total)
                           .order_by(m.HostSpoolDropped.host_name))
    return {host: int(n) for host, n in rows}


def claim_alerts(session: Session, host_name: str, rules: set[str], now: datetime,
                 retry_after: timedelta) -> set[str]:
    """Record the rules that fire for a host now; return those this caller is to post.

    That is, rules that began firing with this call, and rules the webhook has not taken
    (notified_at unset) for retry_after since their last claim. A rule that no longer fires
    loses its row, so a later re-fire is new again. Of concurrent callers only the one whose
    INSERT adds the row (unique host, rule), or whose UPDATE of the claim matches, gets the
    rule back: the database, not a process, decides who posts the alert.
    """
    table = Base.metadata.tables[m.AlertState.__tablename__]
    cutoff = now - retry_after
    have = session.execute(select(table.c.rule, table.c.claimed_at, table.c.notified_at)
                           .where(table.c.host_name == host_name)).all()
    if {r.rule for r in have} == rules and all(r.notified_at is not None
                                               or r.claimed_at >= cutoff for r in have):
        return set()  # nothing to change: most ingests of a host read and write nothing
    session.execute(table.delete().where(table.c.host_name == host_name,
                                         table.c.rule.not_in(sorted(rules))))
    if not rules:
        return set()
    # Rows in one order in every caller, so two concurrent claims cannot deadlock.
    ins = _upsert(session, m.AlertState).values(
        [{"host_name": host_name, "rule": r, "fired_at": now, "claimed_at": now}
         for r in sorted(rules)])
    won = set(session.scalars(ins.on_conflict_do_nothing(index_elements=["host_name", "rule"])
                              .returning(m.AlertState.rule)))
    # PostgreSQL re-checks the WHERE of a row another transaction just updated (read
    # committed): a second claimer sees the fresh claimed_at and matches nothing.
    again = session.scalars(table.update().where(
        table.c.host_name == host_name, table.c.rule.in_(sorted(rules - won)),
        table.c.notified_at.is_(None), table.c.claimed_at < cutoff)
        .values(claimed_at=now).returning(table.c.rule))
    return won | set(again)


def mark_notified(session: Session, host_name: str, rules: set[str], claimed_at: datetime,
                  now: datetime) -> int:
    """Note that the webhook took these alerts (of this claim); return the rows updated."""
    result = session.execute(update(m.AlertState).where(
        m.AlertState.host_name == host_name, m.AlertState.rule.in_(sorted(rules)),
        m.AlertState.claimed_at == claimed_at).values(notified_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def has_snapshot(session: Session, host_name: str, snapshot_id: str) -> bool:
    """Whether a host's snapshot of this id is stored."""
    return session.scalar(
        select(m.Scrape.id).join(m.Host, m.Host.id == m.Scrape.host_id)
        .where(m.Host.name == host_name, m.Scrape.snapshot_id == snapshot_id)) is not None

