"""Snapshots for database tests, built from the fixtures' kernel files without the collector.

Host-level parts come from the source readers (slabinfo, SLUB geometry, meminfo, vmstat,
/proc/cgroups); the per-cgroup parts are given by each test with the Snapshot's own fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from app.collector.errors import CollectorError
from app.collector.sources import host as hostsrc
from app.collector.sources import procfs, slabinfo, slub
from app.domain import cgtable as ct
from app.domain.eras import era_for_release
from app.domain.samples import Cache, CgroupTable, HostIdentity, MemcgCount, Snapshot


def host_snapshot(root: Path, taken_at: datetime, *, page_size: int = 4096) -> Snapshot:
    """A snapshot of a fixture tree's host-level files, with no per-cgroup data."""
    proc, sys = str(root / "proc"), str(root / "sys")
    errors: list[CollectorError] = []
    try:
        dirs = slub.scan_caches(sys)
    except OSError:  # no SLUB sysfs in this tree (SLAB, or not captured)
        dirs = {}
    geometry = {n: slub.read_geometry(sys, d, names, errors)
                for d, names in dirs.items() for n in names}
    caches = []
    for r in slabinfo.read_slabinfo(proc):
        g = geometry.get(r.name)
        aliases = tuple(a for a in g.alias_names if a != r.name) if g else ()
        order = g.order if g and g.order is not None else r.pagesperslab.bit_length() - 1
        caches.append(Cache(r.name, aliases, r.objsize_bytes, r.objperslab, r.pagesperslab,
                            order, r.active_objs, r.num_objs, r.num_slabs,
                            r.num_slabs * r.pagesperslab * page_size,
                            g.slab_size_bytes if g else None, g.reclaim_account if g else None))
    release = hostsrc.read_release(proc) or "6.18.0"
    rows = procfs.read_proc_cgroups(proc)
    total = next((r.num_cgroups for r in rows if r.subsys_name == "memory"), None)
    host = HostIdentity(hostsrc.read_hostname(proc) or "vm", hostsrc.read_machine_id(proc),
                        hostsrc.read_boot_id(proc), release, era_for_release(release),
                        "release", hostsrc.read_possible(sys, "cpu") or 2,
                        hostsrc.read_possible(sys, "node") or 1, page_size, "v2")
    return Snapshot(
        taken_at=taken_at, duration_seconds=0.01, host=host,
        memcg=MemcgCount(total, None, None, "test"), proc_cgroups=tuple(rows),
        meminfo=procfs.read_meminfo(proc), vmstat=procfs.read_vmstat(proc),
        caches=tuple(caches), new_cgroups=(), series=None, full=None, kmem_slabinfo=(),
        memcg_caches=(), memcg_slabinfo=(), removed=(), errors=())


def table(rows: Mapping[tuple[str, str], Mapping[str, int]],
          columns: Sequence[str] | None = None) -> CgroupTable:
    """A CgroupTable of {(hierarchy, path): {column: value}}; columns: all that appear."""
    if columns is None:
        columns = list(dict.fromkeys(c for r in rows.values() for c in r))
    return ct.table_from_rows(columns, list(rows), list(rows.values()))


def stat_row(stat: Mapping[str, int], usage: int | None = None,
             cgstat: Mapping[str, int] | None = None,
             keys: Sequence[str] | None = None) -> dict[str, int]:
    """One table row from memory.stat (only `keys` of it if given), usage and cgroup.stat."""
    out = {ct.STAT + k: v for k, v in stat.items() if keys is None or k in keys}
    if usage is not None:
        out[ct.USAGE] = usage
    out.update({ct.CGSTAT + k: v for k, v in (cgstat or {}).items()})
    return out


def with_host(snap: Snapshot, hostname: str) -> Snapshot:
    """The same snapshot from another host name."""
    return replace(snap, host=replace(snap.host, hostname=hostname))
