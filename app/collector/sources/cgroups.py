"""Cgroup trees: the v1 memory hierarchy, cgroup2, and hybrid layouts such as this machine's.

Mount points come from `<proc_root>/1/mounts` (the host's init, also right from a container
with the host's /proc mounted), then `self/mounts`, then `mounts`. A mount point under /sys
is read below `sys_root`; any other (`/cgroup/memory` on old RHEL) below the parent of
`proc_root`, which is `/` on a host and the capture's top directory in a fixture tree. Without
a mounts file the usual places under `<sys_root>/fs/cgroup` are probed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from app.collector.errors import CollectorError, SourceUnavailable
from app.collector.sources._files import fs_name, parse_flat_keyed, read_int, read_text
from app.collector.sources.slabinfo import parse_slabinfo
from app.domain.samples import CgroupSample


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """One cgroup hierarchy we read: "memory" (v1) or "unified" (cgroup2)."""

    kind: str
    mount_point: str  # as the host sees it
    fs_path: str  # where we read it
    memory_controller: bool  # v2: memory in the root's cgroup.controllers; v1: always


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as \040 \011 \012 \134.
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def _map_mount(mount_point: str, proc_root: str, sys_root: str) -> str:
    if mount_point == "/sys" or mount_point.startswith("/sys/"):
        return os.path.join(sys_root, mount_point[len("/sys/"):]) if mount_point != "/sys" \
            else sys_root
    host_root = os.path.dirname(os.path.abspath(proc_root))
    return os.path.join(host_root, mount_point.lstrip("/"))


def _controllers(fs_path: str) -> set[str]:
    try:
        return set(read_text(os.path.join(fs_path, "cgroup.controllers")).split())
    except CollectorError:
        return set()


def discover(proc_root: str, sys_root: str) -> tuple[list[Hierarchy], str]:
    """Find the v1 memory and cgroup2 hierarchies; return them and the layout name."""
    mounts_text = None
    for rel in ("1/mounts", "self/mounts", "mounts"):
        try:
            mounts_text = read_text(os.path.join(proc_root, rel))
            break
        except CollectorError:
            continue
    found: list[Hierarchy] = []
    seen: set[str] = set()
    if mounts_text is not None:
        for line in mounts_text.splitlines():
            parts = line.split()
            if len(parts) < 4:
                continue
            mount_point, fstype, options = _unescape(parts[1]), parts[2], parts[3].split(",")
            if fstype == "cgroup" and "memory" in options:
                kind = "memory"
            elif fstype == "cgroup2":
                kind = "unified"
            else:
                continue
            path = _map_mount(mount_point, proc_root, sys_root)
            if kind in seen or not os.path.isdir(path):
                continue  # bind mounts of the same hierarchy, or not visible from here
            seen.add(kind)
            mem = kind == "memory" or "memory" in _controllers(path)
            found.append(Hierarchy(kind, mount_point, path, mem))
    if not found:
        base = os.path.join(sys_root, "fs", "cgroup")
        v1 = os.path.join(base, "memory")
        if os.path.isfile(os.path.join(v1, "memory.usage_in_bytes")):
            found.append(Hierarchy("memory", "/sys/fs/cgroup/memory", v1, True))
        for cand, mp in ((os.path.join(base, "unified"), "/sys/fs/cgroup/unified"),
                         (base, "/sys/fs/cgroup")):
            if os.path.isfile(os.path.join(cand, "cgroup.controllers")):
                found.append(Hierarchy("unified", mp, cand, "memory" in _controllers(cand)))
                break
    kinds = {h.kind: h for h in found}
    if "memory" in kinds and "unified" in kinds:
        layout = "hybrid"
    elif "memory" in kinds:
        layout = "v1"
    elif "unified" in kinds:
        layout = "v2"
    else:
        layout = "none"
    return found, layout


def walk_dirs(root: str) -> list[str]:
    """Every cgroup directory below root (root included), as paths relative to it."""
    out = ["/"]
    stack = [(root, "")]
    while stack:
        path, rel = stack.pop()
        try:
            it = os.scandir(path)
        except OSError:
            continue  # removed while we walked
        with it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    child = rel + "/" + entry.name
                    out.append(child)
                    stack.append((entry.path, child))
    return out


class TreeReader:
    """Reads the files of each cgroup of one hierarchy; knows which files the kernel has."""

    def __init__(self, hierarchy: Hierarchy, *, kmem_slabinfo: bool) -> None:
        # v1 memory.kmem.slabinfo lists caches only on <= 5.8 (empty, deprecated since 5.9).
        self.hierarchy = hierarchy
        self.kmem_slabinfo = kmem_slabinfo
        root = hierarchy.fs_path
        self._has_kmem = os.path.exists(os.path.join(root, "memory.kmem.usage_in_bytes"))
        self._has_kmem_slabinfo = self.kmem_slabinfo and os.path.exists(
            os.path.join(root, "memory.kmem.slabinfo"))

    def read(self, rel: str, errors: list[CollectorError]) -> CgroupSample | None:
        """Read one cgroup; None (and an error) when it vanished mid-scrape."""
        d = self.hierarchy.fs_path + (rel if rel != "/" else "")
        name = fs_name(rel)
        try:
            if self.hierarchy.kind == "memory":
                return self._read_v1(d, name, errors)
            return self._read_v2(d, name, errors)
        except SourceUnavailable as err:
            if not os.path.isdir(d):
                err = SourceUnavailable(err.path, "cgroup removed mid-scrape")
            errors.append(err)
            return None
        except CollectorError as err:
            errors.append(err)
            return None

    def _read_v1(self, d: str, name: str, errors: list[CollectorError]) -> CgroupSample:
        p = os.path.join(d, "memory.stat")
        stat = parse_flat_keyed(p, read_text(p))
        usage = read_int(os.path.join(d, "memory.usage_in_bytes"))
        kmem = read_int(os.path.join(d, "memory.kmem.usage_in_bytes")) if self._has_kmem \
            else None
        slabinfo = None
        if self._has_kmem_slabinfo:
            sp = os.path.join(d, "memory.kmem.slabinfo")
            slabinfo = tuple(parse_slabinfo(sp, read_text(sp), allow_empty=True))
        return CgroupSample("memory", name, stat, usage, kmem, slabinfo, None)

    def _read_v2(self, d: str, name: str, errors: list[CollectorError]) -> CgroupSample:
        p = os.path.join(d, "cgroup.stat")
        cstat = parse_flat_keyed(p, read_text(p))
        stat: dict[str, int] = {}
        current = None
        if self.hierarchy.memory_controller:
            # memory.* exist only where the parent enabled +memory in subtree_control, and
            # the root has memory.stat but no memory.current: a missing file here is normal.
            try:
                sp = os.path.join(d, "memory.stat")
                stat = parse_flat_keyed(sp, read_text(sp))
            except SourceUnavailable:
                if not os.path.isdir(d):
                    raise
            if name != "/":
                try:
                    current = read_int(os.path.join(d, "memory.current"))
                except SourceUnavailable:
                    if not os.path.isdir(d):
                        raise
        return CgroupSample("unified", name, stat, current, None, None, cstat)
