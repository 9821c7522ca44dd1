"""A check shared by the collector tests: a tick's tables hold exactly what was read."""

from __future__ import annotations

from app.domain.cgtable import CGSTAT, KMEM_USAGE, STAT, USAGE
from app.domain.samples import CgroupSample, Snapshot


def check_tables(s: Snapshot, cgroups: list[CgroupSample]) -> None:
    """Every row of the series and full tables equals the cgroup's whole read."""
    by = {(c.hierarchy, c.path): c for c in cgroups}
    assert (s.series is not None and s.full is not None) or not cgroups
    if s.series is None or s.full is None:
        return
    assert sorted(zip(s.series.hierarchies, s.series.paths, strict=True)) == sorted(by)
    for i, key in enumerate(zip(s.series.hierarchies, s.series.paths, strict=True)):
        c = by[key]
        want = {STAT + k: v for k, v in c.memory_stat.items() if STAT + k in s.series.columns}
        want.update({CGSTAT + k: v for k, v in (c.cgroup_stat or {}).items()
                     if CGSTAT + k in s.series.columns})
        if c.memory_usage_bytes is not None:
            want[USAGE] = c.memory_usage_bytes
        if c.kmem_usage_bytes is not None:
            want[KMEM_USAGE] = c.kmem_usage_bytes
        assert s.series.row(i) == want, key
    for i, key in enumerate(zip(s.full.hierarchies, s.full.paths, strict=True)):
        assert s.full.row(i) == {STAT + k: v for k, v in by[key].memory_stat.items()}, key
    assert {k for k, c in by.items() if c.memory_stat} == set(
        zip(s.full.hierarchies, s.full.paths, strict=True))
