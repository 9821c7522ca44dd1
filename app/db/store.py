"""All SQL for writing and reading samples. Callers own the transaction; nothing here commits."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Table, bindparam, insert, null, select, update
from sqlalchemy.orm import Session

from app.db import models as m
from app.db import partitions, slabframes
from app.db.base import U64, U64_MAX, Base, encode_u64, insert_on_conflict
from app.db.cgroups import latest_cgroups
from app.db.frames import memory_figures
from app.domain import cgtable as ct
from app.domain.samples import Snapshot

__all__ = ["SnapshotConflict", "latest_cgroups", "memory_figures", "upsert_host",
           "write_snapshot"]

LAST_SEEN_RESOLUTION = timedelta(hours=1)  # slab_cache last_seen_at granularity


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
    # COPY passes values as they are: the u64 columns' two's complement is applied here.
    u64_cols = {c.name for c in table.columns if isinstance(c.type, U64)}
    raw = conn.connection.driver_connection
    quote = conn.dialect.identifier_preparer.quote  # "order" is a column name
    assert raw is not None
    with raw.cursor() as cur, cur.copy(
            f"COPY {quote(table.name)} ({', '.join(quote(c) for c in cols)}) FROM STDIN"
    ) as cp:
        for r in rows:
            cp.write_row([None if r[c] is None
                          else json.dumps(r[c]) if c in json_cols
                          else encode_u64(r[c]) if c in u64_cols else r[c]
                          for c in cols])


class SnapshotConflict(Exception):
    """A snapshot with this id was already stored for this host (an idempotent retry)."""


Key = tuple[str, str]  # (hierarchy, path)
_CHUNK = 500  # bound parameters per IN list


def _table(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]


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


def write_snapshot(session: Session, snap: Snapshot, *, snapshot_id: str | None = None) -> int:
    """Store one snapshot; return the scrape id. Raises SnapshotConflict on a repeated id."""
    partitions.ensure(session, snap.taken_at)  # PostgreSQL: the day's partitions exist
    host_id = upsert_host(session, snap).id
    sid = _write_scrape(session, host_id, snap, snapshot_id)
    _write_errors(session, sid, snap)
    _write_slab_samples(session, host_id, sid, _cache_ids(session, host_id, snap), snap)
    cg = _lookup_cgroups(session, host_id, snap)
    # Removals first: a path removed and made again between two ticks comes as the old
    # cgroup removed and the new one new, in one snapshot; the new one must end live.
    _write_removed(session, host_id, snap, cg)
    _write_new_cgroups(session, host_id, snap, cg)
    _write_frames(session, host_id, sid, snap, cg)
    _write_kmem(session, sid, snap, cg)
    _write_memcg(session, sid, snap)
    _write_churn(session, host_id, sid, snap)
    return sid


def _write_churn(session: Session, host_id: int, sid: int, snap: Snapshot) -> None:
    """Counted churn per hierarchy (the wire bounds every count to 32 bits)."""
    if snap.churn:
        session.execute(insert(_table(m.CgroupChurn)), [
            {"scrape_id": sid, "hierarchy": c.hierarchy, "host_id": host_id,
             "taken_at": snap.taken_at, "since_at": c.since, "created_total": c.created,
             "removed_total": c.removed, "freed_total": c.freed, "exact": c.exact}
            for c in snap.churn])


def _write_scrape(session: Session, host_id: int, snap: Snapshot,
                  snapshot_id: str | None) -> int:
    mi = snap.meminfo
    values: dict[str, Any] = dict(
        host_id=host_id, snapshot_id=snapshot_id, taken_at=snap.taken_at,
        duration_seconds=snap.duration_seconds, boot_id=snap.host.boot_id,
        kernel_release=snap.host.kernel_release, era=snap.host.era,
        memcg_num_cgroups_total=_opt(next((r.num_cgroups for r in snap.proc_cgroups
                                           if r.subsys_name == "memory"), None),
                                     "num_cgroups", "/proc/cgroups"),
        memcg_total=_opt(snap.memcg.total, "total", "memcg"),
        memcg_visible_total=_opt(snap.memcg.visible, "visible", "memcg"),
        memcg_dying_total=_opt(snap.memcg.dying, "dying", "memcg"),
        memcg_method=snap.memcg.method,
        mem_total_bytes=_u64(mi.get("MemTotal")), slab_bytes=_u64(mi.get("Slab")),
        sreclaimable_bytes=_u64(mi.get("SReclaimable")),
        sunreclaim_bytes=_u64(mi.get("SUnreclaim")), percpu_bytes=_u64(mi.get("Percpu")),
        kernel_stack_bytes=_u64(mi.get("KernelStack")), shmem_bytes=_u64(mi.get("Shmem")),
        errors_total=len(snap.errors),
        # Whole files only when due: ~300 keys a row that no page reads.
        # SQL NULL, not JSON 'null' (what None means to the JSON type).
        meminfo_json=dict(mi) if snap.host_full else null(),
        vmstat_json=dict(snap.vmstat) if snap.host_full else null(),
        proc_cgroups_json=[{"subsys_name": r.subsys_name, "hierarchy": r.hierarchy,
                            "num_cgroups": r.num_cgroups, "enabled": r.enabled}
                           for r in snap.proc_cgroups])
    t = _table(m.Scrape)
    dialect = session.connection().dialect.name
    if snapshot_id is not None and dialect in ("postgresql", "sqlite"):
        # One statement for the idempotency check and the insert: a repeat inserts nothing.
        ins = insert_on_conflict(session, t).values(values).on_conflict_do_nothing()
        sid = session.scalar(ins.returning(t.c.id))
        if sid is None:
            raise SnapshotConflict(snapshot_id)
        return int(sid)
    if snapshot_id is not None and session.scalar(
            select(t.c.id).where(t.c.host_id == host_id,
                                 t.c.snapshot_id == snapshot_id)) is not None:
        raise SnapshotConflict(snapshot_id)
    return int(session.scalar(insert(t).values(values).returning(t.c.id)) or 0)


def _write_errors(session: Session, sid: int, snap: Snapshot) -> None:
    if snap.errors:
        session.execute(insert(_table(m.ScrapeError)), [
            {"scrape_id": sid, "taken_day": partitions.day_of(snap.taken_at),
             "source": e.source, "path": e.path, "message": e.message}
            for e in snap.errors])


def _cache_ids(session: Session, host_id: int, snap: Snapshot) -> dict[str, int]:
    t = _table(m.SlabCache)
    rows = session.execute(select(t.c.name, t.c.id, t.c.aliases_json, t.c.order,
                                  t.c.slab_size_bytes).where(t.c.host_id == host_id)).all()
    ids = {r.name: r.id for r in rows}
    known = {r.name: (list(r.aliases_json or []), r.order, r.slab_size_bytes) for r in rows}
    new: dict[str, dict[str, Any]] = {}
    for c in snap.caches:
        if c.name not in ids and c.name not in new:
            new[c.name] = {
                "host_id": host_id, "name": c.name, "aliases_json": list(c.aliases),
                "object_size_bytes": _req(c.object_size_bytes, "object_size", c.name),
                "slab_size_bytes": _opt(c.slab_size_bytes, "slab_size", c.name),
                "objs_per_slab_total": _req(c.objs_per_slab, "objs_per_slab", c.name),
                "pages_per_slab_total": _req(c.pages_per_slab, "pages_per_slab", c.name),
                "order": _opt(c.order, "order", c.name),
                "reclaim_account": c.reclaim_account, "first_seen_at": snap.taken_at,
                "last_seen_at": snap.taken_at}
    if new:
        ids.update((r.name, r.id) for r in session.execute(
            insert(t).returning(t.c.name, t.c.id), list(new.values())))
    for c in snap.caches:
        if c.name in known and known[c.name] != (list(c.aliases), c.order, c.slab_size_bytes):
            session.execute(update(t).where(t.c.id == ids[c.name]).values(
                aliases_json=list(c.aliases), order=_opt(c.order, "order", c.name),
                slab_size_bytes=_opt(c.slab_size_bytes, "slab_size", c.name),
                object_size_bytes=_req(c.object_size_bytes, "object_size", c.name),
                objs_per_slab_total=_req(c.objs_per_slab, "objs_per_slab", c.name),
                pages_per_slab_total=_req(c.pages_per_slab, "pages_per_slab", c.name),
                reclaim_account=c.reclaim_account))
            known[c.name] = (list(c.aliases), c.order, c.slab_size_bytes)
    # Coarse on purpose: an hour's resolution spares 235 row updates on every scrape.
    session.execute(update(t).where(t.c.host_id == host_id)
                    .where(t.c.last_seen_at < snap.taken_at - LAST_SEEN_RESOLUTION)
                    .values(last_seen_at=snap.taken_at))
    return ids


def _write_slab_samples(session: Session, host_id: int, sid: int, cache_ids: dict[str, int],
                        snap: Snapshot) -> None:
    """One slab frame for the scrape: every cache's counts in one blob."""
    rows: dict[int, dict[str, int | None]] = {}
    for c in snap.caches:
        cid = cache_ids[c.name]
        row = rows.get(cid)
        if row is not None:
            # A repeated name in slabinfo (kept by the parser): sum into the one row, at
            # most 2^64-1 (two counts near 2^64 are underflow, not a sum).
            for k, v in (("active_objs", c.active_objs), ("num_objs", c.num_objs),
                         ("num_slabs", c.num_slabs), ("slab_bytes", c.bytes)):
                row[k] = min((row[k] or 0) + v, U64_MAX)
            continue
        rows[cid] = {"active_objs": c.active_objs, "num_objs": c.num_objs,
                     "num_slabs": c.num_slabs, "slab_bytes": c.bytes,
                     "partial_slabs": c.partial_slabs, "cpu_slabs": c.cpu_slabs}
    if rows:
        session.execute(insert(_table(m.SlabFrame)).values(
            scrape_id=sid, host_id=host_id, taken_at=snap.taken_at,
            data=slabframes.pack(rows)))


@dataclass(slots=True)
class _Cgroups:
    """The cgroup ids a snapshot needs: live ones, and rows of its paths in any state."""

    host_id: int
    ids: dict[Key, int]
    removed: set[int]  # ids whose row says removed (a path that came back)


def _lookup_cgroups(session: Session, host_id: int, snap: Snapshot) -> _Cgroups:
    # Never every cgroup the host ever had (100 removals a minute make 4 million rows a
    # month): the live ones when a walk's table is stored, and the snapshot's own paths.
    t = _table(m.Cgroup)
    wanted: set[Key] = {(c.hierarchy, c.path) for c in snap.new_cgroups}
    wanted.update((r.hierarchy, r.path) for r in snap.removed)
    wanted.update((k.hierarchy, k.path) for k in snap.kmem_slabinfo)
    ids: dict[Key, int] = {}
    tables = [x for x in (snap.series, snap.full) if x is not None]
    if tables:
        ids = {(h, p): i for h, p, i in session.execute(
            select(t.c.hierarchy, t.c.path, t.c.id)
            .where(t.c.host_id == host_id, t.c.removed_at.is_(None))).all()}
        for x in tables:
            wanted.update(zip(x.hierarchies, x.paths, strict=True))
    missing = wanted - ids.keys()
    removed: set[int] = set()
    # By (hierarchy, path): the unique index's order, so each lookup is an index probe and
    # not a scan of every cgroup the host ever had.
    for hier in sorted({h for h, _ in missing}):
        paths = sorted(p for h, p in missing if h == hier)
        for i in range(0, len(paths), _CHUNK):
            for h, p, cid, gone in session.execute(
                    select(t.c.hierarchy, t.c.path, t.c.id, t.c.removed_at)
                    .where(t.c.host_id == host_id, t.c.hierarchy == hier,
                           t.c.path.in_(paths[i:i + _CHUNK]))).all():
                if (h, p) in missing:
                    ids[(h, p)] = cid
                    if gone is not None:
                        removed.add(cid)
    return _Cgroups(host_id, ids, removed)


def _insert_cgroups(session: Session, rows: Iterable[dict[str, Any]], cg: _Cgroups) -> None:
    # In chunks: a first walk brings every cgroup of the host (10,000 rows), and one
    # executemany of them all holds ~10 MB of parameters at once in the collector.
    t = _table(m.Cgroup)
    stmt = insert(t).returning(t.c.id, t.c.hierarchy, t.c.path)
    it = iter(rows)
    while chunk := list(itertools.islice(it, _CHUNK)):
        for cid, h, p in session.execute(stmt, chunk):
            cg.ids[(h, p)] = cid


def _revive(session: Session, cg: _Cgroups, revive: dict[int, bytes | None],
            at: datetime) -> None:
    """A path that was removed is back: the same row, live again from `at`."""
    if not revive:
        return
    t = _table(m.Cgroup)
    session.execute(update(t).where(t.c.id == bindparam("cid"))
                    .values(removed_at=None, first_seen_at=at, last_seen_at=at,
                            first_memory_stat=bindparam("blob")),
                    [{"cid": cid, "blob": blob} for cid, blob in revive.items()])
    cg.removed -= revive.keys()


def _write_new_cgroups(session: Session, host_id: int, snap: Snapshot, cg: _Cgroups) -> None:
    at = snap.taken_at
    new: dict[Key, dict[str, Any]] = {}
    revive: dict[int, bytes | None] = {}
    for c in snap.new_cgroups:
        key = (c.hierarchy, c.path)
        cid = cg.ids.get(key)
        if cid is None and key not in new:
            new[key] = {"host_id": host_id, "hierarchy": c.hierarchy, "path": c.path,
                        "first_seen_at": at, "last_seen_at": at,
                        "first_memory_stat": ct.pack_stat(c.memory_stat)}
        elif cid in cg.removed:
            revive[cid] = ct.pack_stat(c.memory_stat)
        # else: already live (a restarted collector without its seed): keep the first stat
    _revive(session, cg, revive, at)
    _insert_cgroups(session, list(new.values()), cg)


def _ensure(session: Session, keys: list[Key], cg: _Cgroups, at: datetime) -> None:
    """Rows for paths a walk saw that the database does not know as live."""
    missing = [k for k in dict.fromkeys(keys) if k not in cg.ids]
    _insert_cgroups(session, ({"host_id": cg.host_id, "hierarchy": h, "path": p,
                               "first_seen_at": at, "last_seen_at": at}
                              for h, p in missing), cg)
    _revive(session, cg, {cg.ids[k]: None for k in keys if cg.ids[k] in cg.removed}, at)


def _write_frames(session: Session, host_id: int, sid: int, snap: Snapshot,
                  cg: _Cgroups) -> None:
    rows = []
    for kind, x in (("series", snap.series), ("full", snap.full)):
        if x is None:
            continue
        keys = list(zip(x.hierarchies, x.paths, strict=True))
        _ensure(session, keys, cg, snap.taken_at)
        rows.append({"host_id": host_id, "scrape_id": sid, "taken_at": snap.taken_at,
                     "kind": kind, "rows_total": len(keys),
                     "data": ct.pack_table(x.columns, [cg.ids[k] for k in keys], x.values,
                                           x.present)})
    if rows:
        session.execute(insert(_table(m.CgroupFrame)), rows)


def _write_kmem(session: Session, sid: int, snap: Snapshot, cg: _Cgroups) -> None:
    if not snap.kmem_slabinfo:
        return
    _ensure(session, [(k.hierarchy, k.path) for k in snap.kmem_slabinfo], cg, snap.taken_at)
    _insert_rows(session, m.CgroupKmemCacheSample, [
        {"scrape_id": sid, "taken_day": partitions.day_of(snap.taken_at),
         "cgroup_id": cg.ids[(k.hierarchy, k.path)], "name": r.name,
         **_reqs(f"memory.kmem.slabinfo of {k.path}: {r.name}", active_objs_total=r.active_objs,
                 num_objs_total=r.num_objs, object_size_bytes=r.objsize_bytes,
                 objs_per_slab_total=r.objperslab, pages_per_slab_total=r.pagesperslab,
                 num_slabs_total=r.num_slabs)}
        for k in snap.kmem_slabinfo for r in k.rows])


def _write_memcg(session: Session, sid: int, snap: Snapshot) -> None:
    day = partitions.day_of(snap.taken_at)
    if snap.memcg_caches:
        _insert_rows(session, m.MemcgCacheSample, [
            {"scrape_id": sid, "taken_day": day, "root_cache": x.root_cache,
             "memcg_serial": _req(x.memcg_serial, "memcg_serial", x.root_cache),
             "cgroup_name": x.cgroup_name,
             **_opts(f"memcg cache {x.root_cache}({x.memcg_serial})", slabs_total=x.slabs,
                     total_objects_total=x.total_objects, objects_total=x.objects,
                     order=x.order, object_size_bytes=x.object_size_bytes,
                     objs_per_slab_total=x.objs_per_slab)} for x in snap.memcg_caches])
    if snap.memcg_slabinfo:
        _insert_rows(session, m.MemcgSlabinfoSample, [
            {"scrape_id": sid, "taken_day": day, "name": x.name,
             "css_id": _opt(x.css_id, "css_id", x.name),
             "dead": x.dead, "deact": x.deact,
             **_reqs(f"memcg_slabinfo: {x.name}", active_objs_total=x.active_objs,
                     num_objs_total=x.num_objs, active_slabs_total=x.active_slabs,
                     num_slabs_total=x.num_slabs)} for x in snap.memcg_slabinfo])


def _u64(v: int | None) -> int | None:
    """A figure for a nullable u64 column that a real kernel may give outside u64: NULL
    then (a negative per-CPU drift an old kernel printed signed in memory.stat, a meminfo kB
    figure times 1024 past 2^64). Every u64, up to 2^64-1, is stored exactly
    (app.db.base.U64); the whole file (memory.stat blob, meminfo JSON) keeps the value as
    printed."""
    return v if v is None or 0 <= v <= U64_MAX else None


def _req(v: int, what: str, of: str) -> int:
    """A figure for a NOT NULL u64 column, or a ValueError naming it (ingest: a 422)."""
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= U64_MAX:
        raise ValueError(f"{of}: {what}={v!r} is not a u64 (0..{U64_MAX})")
    return v


def _reqs(of: str, **figures: int) -> dict[str, int]:
    return {k: _req(v, k, of) for k, v in figures.items()}


def _opt(v: int | None, what: str, of: str) -> int | None:
    """A figure for a nullable u64 column the kernel prints as an unsigned integer (so a
    value outside u64 is no kernel's): None, or as _req."""
    return None if v is None else _req(v, what, of)


def _opts(of: str, **figures: int | None) -> dict[str, int | None]:
    return {k: _opt(v, k, of) for k, v in figures.items()}


def _write_removed(session: Session, host_id: int, snap: Snapshot, cg: _Cgroups) -> None:
    if not snap.removed:
        return
    rows: list[dict[str, Any]] = []
    by_time: dict[tuple[datetime, datetime], list[int]] = {}
    for gone in snap.removed:
        gone_id = cg.ids.get((gone.hierarchy, gone.path))
        figs = memory_figures(gone.last_memory_stat)
        rows.append({
            "host_id": host_id, "cgroup_id": gone_id, "hierarchy": gone.hierarchy,
            "path": gone.path, "last_seen_at": gone.last_seen_at, "removed_at": gone.removed_by,
            "last_memory_usage_bytes": _u64(gone.last_memory_usage_bytes),
            "file_bytes": _u64(figs["file_bytes"]), "shmem_bytes": _u64(figs["shmem_bytes"]),
            "slab_bytes": _u64(figs["slab_bytes"]),
            "kernel_stack_bytes": _u64(figs["kernel_stack_bytes"]),
            "last_memory_stat": ct.pack_stat(gone.last_memory_stat),
            "stat_read_at": gone.stat_read_at})
        if gone_id is not None:
            by_time.setdefault((gone.removed_by, gone.last_seen_at), []).append(gone_id)
    _insert_rows(session, m.RemovedCgroup, rows)
    t = _table(m.Cgroup)
    for (when, last), ids in by_time.items():  # one statement a tick, as a rule
        for i in range(0, len(ids), _CHUNK):
            session.execute(update(t).where(t.c.id.in_(ids[i:i + _CHUNK]))
                            .values(removed_at=when, last_seen_at=last))
        cg.removed.update(ids)
