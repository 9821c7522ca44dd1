"""`slabscope doctor`: which sources this host offers, and what the dashboard can show."""

from __future__ import annotations

import os
from dataclasses import dataclass

from app.collector.errors import CollectorError
from app.collector.scrape import Collector, CollectorOptions
from app.collector.sources import cgroups as cgsrc
from app.collector.sources import procfs, slabinfo, slub
from app.collector.sources._files import read_text
from app.domain.eras import ERAS


@dataclass(frozen=True, slots=True)
class Check:
    """One source: readable or not, and why."""

    source: str
    path: str
    ok: bool
    detail: str


def _try(source: str, path: str, fn: object, detail_ok: str) -> Check:
    try:
        assert callable(fn)
        fn()
    except CollectorError as err:
        return Check(source, path, False, err.message)
    except OSError as err:
        return Check(source, path, False, err.strerror or str(err))
    return Check(source, path, True, detail_ok)


def diagnose(options: CollectorOptions) -> tuple[list[Check], list[str], list[str], dict[str, str]]:
    """Return (checks, what the dashboard shows, what it cannot show, host facts)."""
    p, s = options.proc_root, options.sys_root
    snap = Collector(options).collect()
    era = ERAS.get(snap.host.era)
    checks: list[Check] = []
    shows: list[str] = []
    cannot: list[str] = []
    root = os.geteuid() == 0

    sl = os.path.join(p, "slabinfo")
    c = _try("slabinfo", sl, lambda: slabinfo.read_slabinfo(p),
             f"{len(snap.caches)} caches")
    if not c.ok and not root and "permission" in c.detail:
        c = Check(c.source, c.path, False, "mode 0400: run the collector as root")
    checks.append(c)
    (shows if c.ok else cannot).append("per-cache slab objects, slabs and bytes")

    sr = slub.slab_root(s)
    c = _try("slub-sysfs", sr, lambda: slub.scan_caches(s), "SLUB sysfs: order, aliases, "
             "slab_size, reclaim_account (read once per boot)")
    if not c.ok:
        c = Check(c.source, c.path, False, f"{c.detail} (SLAB allocator, or sysfs not mounted)")
    checks.append(c)
    (shows if c.ok else cannot).append("cache geometry and merged aliases")

    if era is not None and era.memcg_sysfs_children:
        n = len(snap.memcg_caches)
        checks.append(Check("slub-memcg-sysfs", sr + "/<cache>/cgroup/", n > 0,
                            f"{n} per-memcg child caches" if n else
                            "no child cache directories: boot with slub_memcg_sysfs=1"))
        (shows if n else cannot).append("exact per-memcg caches and refcounts")
    else:
        checks.append(Check("slub-memcg-sysfs", sr + "/<cache>/cgroup/", False,
                            f"not on era {snap.host.era}: per-memcg caches are gone since 5.9"))
    dpath = slub.memcg_slabinfo_path(s)
    if era is not None and era.memcg_slabinfo_debugfs:
        c = _try("memcg_slabinfo", dpath, lambda: slub.read_memcg_slabinfo(s),
                 f"{len(snap.memcg_slabinfo)} rows")
        if not c.ok:
            c = Check(c.source, c.path, False, f"{c.detail}: mount debugfs at /sys/kernel/debug")
        checks.append(c)
    else:
        checks.append(Check("memcg_slabinfo", dpath, False,
                            f"not on era {snap.host.era}: exists on 5.4-5.8 only"))

    pc = os.path.join(p, "cgroups")
    c = _try("proc-cgroups", pc, lambda: procfs.read_proc_cgroups(p), "")
    row = next((r for r in snap.proc_cgroups if r.subsys_name == "memory"), None)
    if c.ok:
        c = Check(c.source, c.path, row is not None,
                  f"memory num_cgroups {row.num_cgroups}" if row else
                  "no memory row: memory controller not built or disabled (cgroup_disable=)")
    checks.append(c)

    hier, layout = cgsrc.discover(p, s)
    for h in hier:
        detail = f"{h.kind} at {h.mount_point}"
        if h.kind == "unified":
            detail += " with memory controller" if h.memory_controller else \
                " without the memory controller"
        checks.append(Check(f"cgroup-{h.kind}", h.fs_path, True, detail))
    if not hier:
        checks.append(Check("cgroups", os.path.join(s, "fs", "cgroup"), False,
                            "no cgroup hierarchy found"))
    if snap.memcg.dying is not None:
        shows.append(f"dying memcgs ({snap.memcg.method})")
    else:
        cannot.append(f"dying memcgs: {snap.memcg.method}")
    v2 = next((h for h in hier if h.kind == "unified"), None)
    if v2 is not None:
        shows.append("dying cgroups per cgroup2 subtree (cgroup.stat)")
        try:
            root_stat = read_text(os.path.join(v2.fs_path, "cgroup.stat"))
            if "nr_dying_subsys_" in root_stat:
                shows.append("dying csses per controller (6.12+ nr_dying_subsys_*)")
        except CollectorError:
            pass
    else:
        cannot.append("dying counts per subtree: no cgroup2 (v1 gives only a host total)")
    if any(h.kind == "memory" or h.memory_controller for h in hier):
        shows.append("per-cgroup memory.stat and what removed cgroups left charged")
    else:
        cannot.append("per-cgroup memory.stat: no memory controller hierarchy")

    for name, fn in (("meminfo", lambda: procfs.read_meminfo(p)),
                     ("vmstat", lambda: procfs.read_vmstat(p))):
        checks.append(_try(name, os.path.join(p, name), fn, ""))
    if "Percpu" in snap.meminfo:
        shows.append("slab and percpu memory over time")
    facts = {
        "host": snap.host.hostname,
        "kernel": snap.host.kernel_release,
        "era": f"{snap.host.era} ({'from the release' if snap.host.era_source == 'release' else 'set in settings'})"  # noqa: E501
        + (f": {era.pins} pin a dying memcg" if era else ""),
        "cgroup layout": layout,
        "cpus": str(snap.host.possible_cpus),
        "numa nodes": str(snap.host.numa_nodes),
        "running as": "root" if root else f"uid {os.geteuid()} (not root: slabinfo is 0400)",
        "memcgs": f"{snap.memcg.total} total, {snap.memcg.visible} visible, "
                  f"{snap.memcg.dying} dying",
    }
    return checks, shows, cannot, facts
