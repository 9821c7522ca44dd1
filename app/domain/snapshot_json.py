"""A Snapshot as JSON-ready dicts: the documented `collect --format json` schema (README).

Sizes are bytes. This is also the shape a collector will push to a central server, so it
round-trips: `snapshot_from_dict(snapshot_to_dict(s)) == s`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.domain.samples import (
    Cache,
    CgroupSample,
    HostIdentity,
    MemcgChildCache,
    MemcgCount,
    MemcgSlabinfoRow,
    ProcCgroupsRow,
    RemovedCgroup,
    SlabinfoRow,
    Snapshot,
    SourceError,
)

SCHEMA = "slabscope.snapshot/1"

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


def snapshot_to_dict(s: Snapshot) -> dict[str, Any]:
    """The snapshot as plain JSON types."""
    h = s.host
    return {
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
        "cgroups": [_cgroup(c) for c in s.cgroups],
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
             "last_memory_usage_bytes": r.last_memory_usage_bytes} for r in s.removed
        ],
        "errors": [{"source": e.source, "path": e.path, "message": e.message} for e in s.errors],
    }


def _row_from(d: dict[str, Any]) -> SlabinfoRow:
    stats = d.get("statistics")
    return SlabinfoRow(
        d["name"], d["active_objs"], d["num_objs"], d["objsize"], d["objperslab"],
        d["pagesperslab"], d["limit"], d["batchcount"], d["sharedfactor"], d["active_slabs"],
        d["num_slabs"], d["sharedavail"],
        {k: tuple(v) for k, v in stats.items()} if stats else None,
    )


def snapshot_from_dict(d: dict[str, Any]) -> Snapshot:
    """Rebuild a Snapshot from `snapshot_to_dict` output (KeyError/TypeError if malformed)."""
    if d.get("schema") != SCHEMA:
        raise ValueError(f"unknown snapshot schema {d.get('schema')!r}, want {SCHEMA!r}")
    h = d["host"]
    m = d["memcg"]
    return Snapshot(
        taken_at=datetime.fromisoformat(d["taken_at"]),
        duration_seconds=float(d["duration_seconds"]),
        host=HostIdentity(h["name"], h["machine_id"], h["boot_id"], h["kernel_release"],
                          h["era"], h["era_source"], h["cpus"], h["numa_nodes"],
                          h["page_size_bytes"], h["cgroup_layout"]),
        memcg=MemcgCount(m["total"], m["visible"], m["dying"], m["method"]),
        proc_cgroups=tuple(ProcCgroupsRow(r["subsys_name"], r["hierarchy"], r["num_cgroups"],
                                          r["enabled"]) for r in d["proc_cgroups"]),
        meminfo=dict(d["meminfo_raw"]),
        vmstat=dict(d["vmstat"]),
        caches=tuple(Cache(
            c["name"], tuple(c["aliases"]), c["object_size"], c["objs_per_slab"],
            c["pages_per_slab"], c["order"], c["active_objs"], c["num_objs"], c["num_slabs"],
            c["bytes"], c["slab_size"], c["reclaim_account"], c["partial_slabs"],
            c["cpu_slabs"]) for c in d["caches"]),
        cgroups=tuple(CgroupSample(
            c["hierarchy"], c["path"], dict(c["memory_stat"]), c["memory_usage_bytes"],
            c["kmem_usage_bytes"],
            tuple(_row_from(r) for r in c["kmem_slabinfo"])
            if c["kmem_slabinfo"] is not None else None,
            dict(c["cgroup_stat"]) if c["cgroup_stat"] is not None else None,
        ) for c in d["cgroups"]),
        memcg_caches=tuple(MemcgChildCache(
            x["root_cache"], x["memcg_serial"], x["cgroup_name"], x["slabs"],
            x["total_objects"], x["objects"], x["order"], x["object_size"],
            x["objs_per_slab"]) for x in d["memcg_caches"]),
        memcg_slabinfo=tuple(MemcgSlabinfoRow(
            x["name"], x["css_id"], x["dead"], x["deact"], x["active_objs"], x["num_objs"],
            x["active_slabs"], x["num_slabs"]) for x in d["memcg_slabinfo"]),
        removed=tuple(RemovedCgroup(
            r["hierarchy"], r["path"], datetime.fromisoformat(r["last_seen_at"]),
            datetime.fromisoformat(r["removed_by"]), dict(r["last_memory_stat"]),
            r["last_memory_usage_bytes"]) for r in d["removed"]),
        errors=tuple(SourceError(e["source"], e["path"], e["message"]) for e in d["errors"]),
    )
