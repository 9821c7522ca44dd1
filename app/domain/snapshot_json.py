"""A Snapshot as JSON-ready dicts: the documented `collect --format json` schema (README).

Sizes are bytes. This is also the shape a collector pushes to a central server, defined and
validated by app.fleet.wire (strict types and bounds), and it round-trips:
`app.fleet.wire.snapshot_from_dict(snapshot_to_dict(s)) == s`. Per-cgroup tables (`series`,
`full`) travel column-wise with exact u64 ints and null where a cgroup lacks the figure;
`encode_snapshot` writes the same JSON in chunks, one column at a time, so a push of 10,000
cgroups never holds 600,000 Python ints at once. "slabscope.snapshot/1" (collectors before
the per-cgroup cadences, a `cgroups` list every tick) is still read.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator
from typing import Any

from app.domain.cgtable import CgroupTable
from app.domain.samples import Cache, CgroupSample, SlabinfoRow, Snapshot

SCHEMA = "slabscope.snapshot/2"
SCHEMA_V1 = "slabscope.snapshot/1"

MEMINFO_KEYS = {  # JSON key -> /proc/meminfo key; all in bytes
    "mem_total": "MemTotal",
    "slab": "Slab",
    "sreclaimable": "SReclaimable",
    "sunreclaim": "SUnreclaim",
    "percpu": "Percpu",
    "kernel_stack": "KernelStack",
    "shmem": "Shmem",
    "cached": "Cached",
}


def _slabinfo_row(r: SlabinfoRow) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": r.name, "active_objs": r.active_objs, "num_objs": r.num_objs,
        "objsize": r.objsize_bytes, "objperslab": r.objperslab, "pagesperslab": r.pagesperslab,
        "limit": r.limit, "batchcount": r.batchcount, "sharedfactor": r.sharedfactor,
        "active_slabs": r.active_slabs, "num_slabs": r.num_slabs, "sharedavail": r.sharedavail,
    }
    if r.statistics:
        d["statistics"] = {k: list(v) for k, v in r.statistics.items()}
    return d


def _cache(c: Cache) -> dict[str, Any]:
    return {
        "name": c.name, "aliases": list(c.aliases), "object_size": c.object_size_bytes,
        "objs_per_slab": c.objs_per_slab, "pages_per_slab": c.pages_per_slab, "order": c.order,
        "active_objs": c.active_objs, "num_objs": c.num_objs, "num_slabs": c.num_slabs,
        "bytes": c.bytes, "slab_size": c.slab_size_bytes, "reclaim_account": c.reclaim_account,
        "partial_slabs": c.partial_slabs, "cpu_slabs": c.cpu_slabs,
    }


def _cgroup(c: CgroupSample) -> dict[str, Any]:
    stat = c.cgroup_stat
    return {
        "hierarchy": c.hierarchy, "path": c.path, "memory_stat": dict(c.memory_stat),
        "memory_usage_bytes": c.memory_usage_bytes, "kmem_usage_bytes": c.kmem_usage_bytes,
        "nr_descendants": stat.get("nr_descendants") if stat is not None else None,
        "nr_dying_descendants": c.nr_dying_descendants,
        "cgroup_stat": dict(stat) if stat is not None else None,
        "kmem_slabinfo": [_slabinfo_row(r) for r in c.kmem_slabinfo]
        if c.kmem_slabinfo is not None else None,
    }


def _table(t: CgroupTable | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"columns": list(t.columns), "hierarchies": list(t.hierarchies),
            "paths": list(t.paths), "values": [_column(v, p) for v, p in
                                               zip(t.values, t.present, strict=True)]}


def _column(v: array[int], p: bytes) -> list[int | None]:
    return [x if q else None for x, q in zip(v, p, strict=True)]


def _table_chunks(t: CgroupTable | None) -> Iterator[str]:
    if t is None:
        yield "null"
        return
    yield (f'{{"columns": {json.dumps(list(t.columns))}, "hierarchies": '
           f'{json.dumps(list(t.hierarchies))}, "paths": {json.dumps(list(t.paths))}, '
           '"values": [')
    for i, (v, p) in enumerate(zip(t.values, t.present, strict=True)):
        yield (", " if i else "") + json.dumps(_column(v, p))
    yield "]}"


def encode_snapshot(s: Snapshot, envelope: dict[str, Any] | None = None) -> Iterator[str]:
    """`snapshot_to_dict(s)` as JSON text in chunks (tables column by column).

    With `envelope`, the snapshot is its "snapshot" member (the push body).
    """
    head = json.dumps(snapshot_to_dict(s, tables=False))
    if envelope is not None:
        yield json.dumps(envelope)[:-1] + (', "snapshot": ' if envelope else '"snapshot": ')
    yield head[:-1]
    for name, t in (("series", s.series), ("full", s.full)):
        yield f', "{name}": '
        yield from _table_chunks(t)
    yield "}}" if envelope is not None else "}"


def snapshot_to_dict(s: Snapshot, *, tables: bool = True) -> dict[str, Any]:
    """The snapshot as plain JSON types (tables=False leaves out `series` and `full`)."""
    h = s.host
    d = {
        "schema": SCHEMA,
        "taken_at": s.taken_at.isoformat(),
        "duration_seconds": s.duration_seconds,
        "host": {
            "name": h.hostname, "machine_id": h.machine_id, "boot_id": h.boot_id,
            "kernel_release": h.kernel_release, "era": h.era, "era_source": h.era_source,
            "cpus": h.possible_cpus, "numa_nodes": h.numa_nodes,
            "page_size_bytes": h.page_size_bytes, "cgroup_layout": h.cgroup_layout,
        },
        "memcg": {
            "num_cgroups": next((r.num_cgroups for r in s.proc_cgroups
                                 if r.subsys_name == "memory"), None),
            "total": s.memcg.total, "visible": s.memcg.visible, "dying": s.memcg.dying,
            "method": s.memcg.method,
        },
        "meminfo": {k: s.meminfo.get(v) for k, v in MEMINFO_KEYS.items()},
        "meminfo_raw": dict(s.meminfo),
        "vmstat": dict(s.vmstat),
        "proc_cgroups": [
            {"subsys_name": r.subsys_name, "hierarchy": r.hierarchy,
             "num_cgroups": r.num_cgroups, "enabled": r.enabled} for r in s.proc_cgroups
        ],
        "caches": [_cache(c) for c in s.caches],
        "host_full": s.host_full,
        "new_cgroups": [_cgroup(c) for c in s.new_cgroups],
        "kmem_slabinfo": [{"hierarchy": k.hierarchy, "path": k.path,
                           "rows": [_slabinfo_row(r) for r in k.rows]}
                          for k in s.kmem_slabinfo],
        "memcg_caches": [
            {"root_cache": m.root_cache, "memcg_serial": m.memcg_serial,
             "cgroup_name": m.cgroup_name, "slabs": m.slabs, "total_objects": m.total_objects,
             "objects": m.objects, "order": m.order, "object_size": m.object_size_bytes,
             "objs_per_slab": m.objs_per_slab} for m in s.memcg_caches
        ],
        "memcg_slabinfo": [
            {"name": m.name, "css_id": m.css_id, "dead": m.dead, "deact": m.deact,
             "active_objs": m.active_objs, "num_objs": m.num_objs,
             "active_slabs": m.active_slabs, "num_slabs": m.num_slabs}
            for m in s.memcg_slabinfo
        ],
        "removed": [
            {"hierarchy": r.hierarchy, "path": r.path, "last_seen_at": r.last_seen_at.isoformat(),
             "removed_by": r.removed_by.isoformat(), "last_memory_stat": dict(r.last_memory_stat),
             "last_memory_usage_bytes": r.last_memory_usage_bytes,
             "stat_read_at": r.stat_read_at.isoformat() if r.stat_read_at else None}
            for r in s.removed
        ],
        "errors": [{"source": e.source, "path": e.path, "message": e.message} for e in s.errors],
        "churn": [{"hierarchy": c.hierarchy, "since": c.since.isoformat(),
                   "created": c.created, "removed": c.removed, "freed": c.freed,
                   "exact": c.exact} for c in s.churn],
    }
    if tables:
        d["series"] = _table(s.series)
        d["full"] = _table(s.full)
    return d
