"""Cgroup trees: the v1 memory hierarchy, cgroup2, and hybrid layouts such as this machine's.

This module finds the hierarchies; `app/collector/cgstate.py` lists and reads their cgroups.

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

from app.collector.errors import CollectorError
from app.collector.sources._files import read_text


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
