"""SLUB sysfs: `/sys/kernel/slab/<cache>/`, its per-memcg children (<= 5.8), and debugfs
`memcg_slabinfo` (5.4-5.8).

Mergeable caches live in a unique-id directory (`:0000064`, `:A-0001280`) with every alias
name as a symlink to it (mm/slub.c, sysfs_slab_add -> create_unique_id); we read each real
directory once and keep the names. Count files print `"%lu"` then `" N%d=%lu"` per node with
a non-zero value (show_slab_objects). `objects` and `objects_partial` walk each node's partial
list under list_lock with IRQs off (1.4 ms for one cache with 96k partial slabs on this VM,
lab-findings.md 2), so they are read only when asked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from app.collector.errors import CollectorError, ParseError
from app.collector.sources._files import fs_name, parse_int, read_int, read_text
from app.domain.samples import (
    MemcgChildCache,
    MemcgSlabinfoRow,
    NodeCount,
    SlubGeometry,
    SlubStats,
)

GEOMETRY_FILES = ("order", "object_size", "slab_size", "objs_per_slab", "aliases",
                  "reclaim_account")
STATS_FILES = ("slabs", "total_objects", "partial", "cpu_slabs")


def slab_root(sys_root: str) -> str:
    """The SLUB sysfs directory under a sys root."""
    return os.path.join(sys_root, "kernel", "slab")


def parse_node_count(path: str, text: str) -> NodeCount:
    """Parse `1234 N0=600 N1=634` (the per-node part only with CONFIG_NUMA)."""
    tokens = text.split()
    if not tokens:
        raise ParseError(path, 1, "empty count file")
    total = parse_int(path, 1, tokens[0])
    per_node: dict[int, int] = {}
    for tok in tokens[1:]:
        if not tok.startswith("N") or "=" not in tok:
            # cpu_slabs on SLUB_STATS-free kernels prints only the total; other suffixes
            # (e.g. `C0=` in slabs_cpu_partial) are not count-file syntax.
            raise ParseError(path, 1, f"expected 'N<node>=<count>', got {tok[:40]!r}")
        node, _, value = tok[1:].partition("=")
        per_node[parse_int(path, 1, node)] = parse_int(path, 1, value)
    return NodeCount(total=total, per_node=per_node)


def scan_caches(sys_root: str) -> dict[str, tuple[str, ...]]:
    """Map each real cache directory to every name that leads to it (dedupe by realpath)."""
    base = slab_root(sys_root)
    names: dict[str, list[str]] = {}
    with os.scandir(base) as it:
        for entry in it:
            name = fs_name(entry.name)
            if entry.is_symlink():
                target = fs_name(os.path.basename(os.readlink(entry.path).rstrip("/")))
                names.setdefault(target, []).append(name)
            elif entry.is_dir(follow_symlinks=False):
                lst = names.setdefault(name, [])
                if not name.startswith(":"):
                    lst.insert(0, name)
    return {d: tuple(sorted(v)) for d, v in names.items()}


def _maybe(path: str, errors: list[CollectorError]) -> int | None:
    try:
        return read_int(path)
    except CollectorError as err:
        errors.append(err)
        return None


def read_geometry(
    sys_root: str, dir_name: str, alias_names: Iterable[str], errors: list[CollectorError]
) -> SlubGeometry:
    """Read the per-boot constant attributes of one cache directory."""
    d = os.path.join(slab_root(sys_root), dir_name)
    vals = {f: _maybe(os.path.join(d, f), errors) for f in GEOMETRY_FILES}
    reclaim = vals["reclaim_account"]
    return SlubGeometry(
        dir_name=dir_name,
        alias_names=tuple(alias_names),
        aliases_count=vals["aliases"],
        order=vals["order"],
        object_size_bytes=vals["object_size"],
        slab_size_bytes=vals["slab_size"],
        objs_per_slab=vals["objs_per_slab"],
        reclaim_account=None if reclaim is None else reclaim != 0,
    )


def _count(path: str, errors: list[CollectorError]) -> NodeCount | None:
    try:
        return parse_node_count(path, read_text(path))
    except CollectorError as err:
        errors.append(err)
        return None


def read_stats(
    sys_root: str, dir_name: str, errors: list[CollectorError], *, objects: bool = False
) -> SlubStats:
    """Read the cheap per-tick counts of one cache; `objects=True` adds the list walkers."""
    d = os.path.join(slab_root(sys_root), dir_name)
    return SlubStats(
        dir_name=dir_name,
        slabs=_count(os.path.join(d, "slabs"), errors),
        total_objects=_count(os.path.join(d, "total_objects"), errors),
        partial=_count(os.path.join(d, "partial"), errors),
        cpu_slabs=_count(os.path.join(d, "cpu_slabs"), errors),
        objects=_count(os.path.join(d, "objects"), errors) if objects else None,
        objects_partial=_count(os.path.join(d, "objects_partial"), errors) if objects else None,
    )


# "%s(%llu:%s)": root cache name, css serial_nr, cgroup leaf name (5.x memcg_create_kmem_cache)
_CHILD = re.compile(r"^(?P<root>.+?)\((?P<serial>\d+):(?P<cg>.*)\)$", re.DOTALL)


def parse_child_name(name: str) -> tuple[str, int, str] | None:
    """Split `dentry(1234:foo.service)` into (root cache, css serial, cgroup name)."""
    m = _CHILD.match(name)
    if m is None:
        return None
    return m.group("root"), int(m.group("serial")), m.group("cg")


def read_memcg_children(
    sys_root: str, dir_name: str, errors: list[CollectorError], *, objects: bool = False
) -> list[MemcgChildCache]:
    """Read `<cache>/cgroup/<cache>(<serial>:<name>)/` (kernels <= 5.8, slub_memcg_sysfs=1)."""
    cdir = os.path.join(slab_root(sys_root), dir_name, "cgroup")
    try:
        entries = os.listdir(cdir)
    except OSError:
        return []
    out: list[MemcgChildCache] = []
    for raw in sorted(entries):
        name = fs_name(raw)
        parsed = parse_child_name(name)
        if parsed is None:
            errors.append(ParseError(os.path.join(cdir, name), 0,
                                     "child cache name is not '<root>(<serial>:<cgroup>)'"))
            continue
        d = os.path.join(cdir, raw)
        slabs = _count(os.path.join(d, "slabs"), errors)
        total = _count(os.path.join(d, "total_objects"), errors)
        objs = _count(os.path.join(d, "objects"), errors) if objects else None
        out.append(MemcgChildCache(
            root_cache=parsed[0],
            memcg_serial=parsed[1],
            cgroup_name=parsed[2],
            slabs=slabs.total if slabs else None,
            total_objects=total.total if total else None,
            objects=objs.total if objs else None,
            order=_maybe(os.path.join(d, "order"), errors),
            object_size_bytes=_maybe(os.path.join(d, "object_size"), errors),
            objs_per_slab=_maybe(os.path.join(d, "objs_per_slab"), errors),
        ))
    return out


def parse_memcg_slabinfo(path: str, text: str) -> list[MemcgSlabinfoRow]:
    """Parse debugfs memcg_slabinfo: `<name> <css_id[:dead|:deact]|root> a n as ns`."""
    rows: list[MemcgSlabinfoRow] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 6:
            raise ParseError(path, lineno, f"expected 6 fields, got {len(parts)}: {line[:80]!r}")
        name, ident = parts[0], parts[1]
        css_id: int | None
        dead = deact = False
        if ident == "root":
            css_id = None
        else:
            num, _, flag = ident.partition(":")
            css_id = parse_int(path, lineno, num)
            if flag not in ("", "dead", "deact"):
                raise ParseError(path, lineno, f"unknown css flag {flag!r} (want dead or deact)")
            dead, deact = flag == "dead", flag == "deact"
        a, n, sa, sn = (parse_int(path, lineno, t) for t in parts[2:])
        rows.append(MemcgSlabinfoRow(name, css_id, dead, deact, a, n, sa, sn))
    return rows


def memcg_slabinfo_path(sys_root: str) -> str:
    """Where debugfs' memcg_slabinfo is when debugfs is mounted at /sys/kernel/debug."""
    return os.path.join(sys_root, "kernel", "debug", "memcg_slabinfo")


def read_memcg_slabinfo(sys_root: str) -> list[MemcgSlabinfoRow]:
    """Read debugfs `memcg_slabinfo` (raises SourceUnavailable where it does not exist)."""
    path = memcg_slabinfo_path(sys_root)
    return parse_memcg_slabinfo(path, read_text(path))
