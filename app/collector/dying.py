"""Dying-memcg accounting: how many memory cgroups exist but are no longer visible.

* v1 memory hierarchy (and hybrid): /proc/cgroups `num_cgroups` of memory counts every memcg
  until it is freed (css_free_rwork_fn), dying ones included; the visible ones are the
  directories of the hierarchy, root included. dying = num_cgroups - directories.
* cgroup2 with the memory controller, 6.12+: the root's cgroup.stat has
  `nr_subsys_memory` (live memory csses, root included) and `nr_dying_subsys_memory`.
* cgroup2 before 6.12: the root's `nr_dying_descendants` counts every dying cgroup; with the
  memory controller enabled throughout, each held a memcg.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.domain.samples import MemcgCount, ProcCgroupsRow


def memory_row(rows: Sequence[ProcCgroupsRow]) -> ProcCgroupsRow | None:
    """The memory controller's row of /proc/cgroups, if the kernel prints one."""
    return next((r for r in rows if r.subsys_name == "memory"), None)


def count_v1(num_cgroups: int, visible_dirs: int) -> MemcgCount:
    """v1: dying = num_cgroups(memory) - visible memory cgroup directories."""
    return MemcgCount(num_cgroups, visible_dirs, max(0, num_cgroups - visible_dirs),
                      "v1: /proc/cgroups memory num_cgroups - visible memory cgroup directories")


def count_v2(root_stat: dict[str, int], visible_dirs: int) -> MemcgCount:
    """cgroup2 with memory: from the root's cgroup.stat."""
    if "nr_dying_subsys_memory" in root_stat and "nr_subsys_memory" in root_stat:
        live = root_stat["nr_subsys_memory"]
        dying = root_stat["nr_dying_subsys_memory"]
        return MemcgCount(live + dying, live, dying,
                          "v2 (6.12+): root cgroup.stat nr_subsys_memory, nr_dying_subsys_memory")
    nr_dying = root_stat.get("nr_dying_descendants")
    if nr_dying is None:
        return MemcgCount(None, visible_dirs, None, "unavailable: root cgroup.stat has no dying "
                          "counts (kernel before 4.14)")
    return MemcgCount(visible_dirs + nr_dying, visible_dirs, nr_dying,
                      "v2: root cgroup.stat nr_dying_descendants (every dying cgroup)")


def unavailable(reason: str) -> MemcgCount:
    """No way to count memcgs on this host; say why."""
    return MemcgCount(None, None, None, f"unavailable: {reason}")
