"""What the dying memcgs of a host still hold, measured from the kernel's own counters.

A removed cgroup's memcg stays "dying" while anything is charged to it, and what is charged
to it still counts in its ancestors' hierarchical figures. So, for a live cgroup P, what
P's dying descendants hold is P's hierarchical figure less what its live parts hold:

- v1 (`memory` hierarchy): `total_X(P) - X(P) - sum(total_X(child))` over P's live
  children, since v1 memory.stat prints P's own (local) figure X and the hierarchical one
  total_X. `memory.kmem.usage_in_bytes` is hierarchical only, so its residual
  `kmem(P) - sum(kmem(child))` also holds P's own kernel memory: an estimate.
- cgroup2 (`unified`): `X(P) - sum(X(child))`, since memory.stat is hierarchical. Exact for
  a cgroup with no processes of its own: a non-root cgroup with live children (the
  no-internal-process rule). Elsewhere (the root, a cgroup without live children) it may
  include P's own processes' memory: an estimate, flagged.

Per-CPU stat batching lets the figures of P and of its children disagree by up to about a
charge batch (64 pages) per CPU, so negative residuals within that are "about 0": never an
error. Larger negative residuals (reads are not atomic across files) are flagged, not
hidden. Small positive residuals are kept: one page of directory metadata pins a memcg.
On cgroup2, where the kernel counts the dying memcgs below each cgroup, a residual is held
by dying memcgs only where some are: a cgroup with none has its residual from its own
processes, and reports nothing.

Which residuals still pin depends on the era: since 5.3 slab is reparented (its residual
is the parent's charge now, held by no dying memcg), since 5.9 percpu, since 5.13 every
kernel page (kernel-notes.md sections 1-3 and the era table, app/domain/eras.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from app.domain.cgtable import CGSTAT, KMEM_USAGE, STAT, CgroupTable

CHARGE_BATCH_PAGES = 64  # MEMCG_CHARGE_BATCH (include/linux/memcontrol.h)

# The kinds of charge a residual is split into, in the order pages list them.
KINDS: tuple[str, ...] = ("file", "dirty", "shmem", "anon", "swap", "slab", "kernel_stack",
                          "sock", "percpu", "kernel")

# kind -> what the breakdown calls it.
CATEGORY: dict[str, str] = {
    "file": "page cache", "dirty": "dirty page cache", "shmem": "tmpfs/shmem",
    "anon": "anonymous memory", "swap": "swap", "slab": "kernel memory",
    "kernel_stack": "kernel memory", "sock": "kernel memory", "percpu": "kernel memory",
    "kernel": "kernel memory",
}

# Kinds whose charge no longer holds a dying memcg, by era: reparented to the parent when
# the memcg goes offline (kernel-notes.md: slab 5.3 fb2f2b0adb98; objcg for slab and
# percpu 5.9; kernel pages 5.13; LRU folios in the 2026 series). Sockets hold a css
# reference while open (mem_cgroup_sk_alloc), in every era.
REPARENTED: dict[str, frozenset[str]] = {
    "pre-5.3": frozenset(),
    "v4-5/7": frozenset(),  # slab pages moved, but each cache keeps a css ref
    "5.3": frozenset({"slab"}),
    "objcg": frozenset({"slab", "percpu"}),
    "objcg-kmem": frozenset({"slab", "percpu", "kernel_stack"}),
    "lru-reparent": frozenset({"slab", "percpu", "kernel_stack", "file", "dirty", "shmem",
                               "anon", "swap"}),
}


@dataclass(frozen=True, slots=True)
class Residual:
    """What the dying descendants of one live cgroup hold, by kind of charge (bytes).

    `bytes` holds the residuals as the counters give them, signed; `about_zero` the kinds
    below 0 by no more than per-CPU batching (shown as ~0); `inconsistent` the kinds further below 0
    than batching explains (a torn read); `estimated` the kinds that may include the
    cgroup's own charge (see the module docstring). `dying` counts the dying memcgs whose
    nearest live ancestor this cgroup is (cgroup2's nr_dying_descendants, less its live
    children's), None where the kernel does not say (v1).
    """

    hierarchy: str
    path: str
    bytes: dict[str, int]
    dying: int | None
    estimated: frozenset[str] = frozenset()
    about_zero: frozenset[str] = frozenset()
    inconsistent: frozenset[str] = frozenset()
    children: int = 0

    def held(self, kind: str) -> int:
        """The kind's residual as shown: 0 where it is about 0 or torn, else its bytes."""
        if kind in self.about_zero or kind in self.inconsistent:
            return 0
        return max(0, self.bytes.get(kind, 0))

    @property
    def total(self) -> int:
        """Bytes held, counting each charge once (dirty and shmem are parts of file on
        both layouts; see `_v1`/`_v2`: file here is clean, non-shmem page cache)."""
        return sum(self.held(k) for k in KINDS)


@dataclass(frozen=True, slots=True)
class Pin:
    """One line of a breakdown: a category of charge under a subtree, and whether it pins."""

    category: str
    kinds: tuple[str, ...]
    bytes: int
    pins: bool  # False: reparented in this era, held by the parent, no dying memcg
    measured: bool  # False: an estimate (may hold the cgroup's own charge)


@dataclass(frozen=True, slots=True)
class Breakdown:
    """What holds the dying memcgs of one subtree, per category, for one era."""

    residual: Residual
    pins: tuple[Pin, ...] = field(default_factory=tuple)

    @property
    def pinning_bytes(self) -> int:
        """Measured charge that holds dying memcgs (estimates are apart: `estimated_bytes`)."""
        return sum(p.bytes for p in self.pins if p.pins and p.measured)

    @property
    def estimated_bytes(self) -> int:
        """Charge that may hold dying memcgs or may be the cgroup's own."""
        return sum(p.bytes for p in self.pins if p.pins and not p.measured)

    @property
    def unexplained(self) -> bool:
        """Dying memcgs are counted here but no charge that pins them is measured: held by
        references the counters do not show (an open socket or file, a live task's
        css reference), or freed since the sample."""
        return (self.residual.dying or 0) > 0 and self.pinning_bytes == 0 \
            and self.estimated_bytes == 0


def parent_path(path: str) -> str | None:
    """The parent of a cgroup path below its mount ("/" has none)."""
    if path == "/" or not path.startswith("/"):
        return None
    head = path.rstrip("/").rpartition("/")[0]
    return head or "/"


def _get(row: Mapping[str, int], key: str) -> int | None:
    return row.get(key)


def _sum(rows: Iterable[Mapping[str, int]], key: str) -> int | None:
    total = 0
    for r in rows:
        v = r.get(key)
        if v is None:
            return None
        total += v
    return total


def _diff(parent: int | None, *less: int | None) -> int | None:
    if parent is None or any(x is None for x in less):
        return None
    return parent - sum(x for x in less if x is not None)


def _v1(row: Mapping[str, int], kids: Sequence[Mapping[str, int]]) -> tuple[dict[str, int],
                                                                           set[str]]:
    """v1: total_X(P) - X(P) - sum(total_X(child)), per kind."""

    def res(local: str) -> int | None:
        total = STAT + "total_" + local
        return _diff(_get(row, total), _get(row, STAT + local), _sum(kids, total))

    out: dict[str, int] = {}
    cache, shmem, rss, swap = res("cache"), res("shmem"), res("rss"), res("swap")
    dirty_parts = [res("dirty"), res("writeback")]
    dirty = None if any(x is None for x in dirty_parts) else sum(
        x for x in dirty_parts if x is not None)
    # v1 cache holds shmem and dirty pages: file is what is left, clean and not tmpfs.
    if cache is not None:
        out["file"] = cache - (shmem or 0) - (dirty or 0)
    for kind, v in (("shmem", shmem), ("dirty", dirty), ("anon", rss), ("swap", swap)):
        if v is not None:
            out[kind] = v
    estimated: set[str] = set()
    kmem = _diff(_get(row, KMEM_USAGE), _sum(kids, KMEM_USAGE))
    if kmem is not None:
        out["kernel"] = kmem
        estimated.add("kernel")  # hierarchical only: it holds P's own kernel memory too
    return out, estimated


def _v2(row: Mapping[str, int], kids: Sequence[Mapping[str, int]]) -> dict[str, int]:
    """cgroup2: X(P) - sum(X(child)), per kind."""

    def res(key: str) -> int | None:
        return _diff(_get(row, STAT + key), _sum(kids, STAT + key))

    out: dict[str, int] = {}
    file, shmem = res("file"), res("shmem")
    dirty_parts = [res("file_dirty"), res("file_writeback")]
    dirty = None if any(x is None for x in dirty_parts) else sum(
        x for x in dirty_parts if x is not None)
    if file is not None:  # file holds shmem (tmpfs) and dirty pages: keep them apart
        out["file"] = file - (shmem or 0) - (dirty or 0)
    slab = res("slab")
    if slab is None:
        parts = [res("slab_reclaimable"), res("slab_unreclaimable")]
        slab = None if any(x is None for x in parts) else sum(x for x in parts if x is not None)
    for kind, v in (("shmem", shmem), ("dirty", dirty), ("anon", res("anon")), ("slab", slab),
                    ("kernel_stack", res("kernel_stack")), ("sock", res("sock")),
                    ("percpu", res("percpu"))):
        if v is not None:
            out[kind] = v
    return out


def residuals(table: CgroupTable, *, cpus: int, page_size: int = 4096) -> list[Residual]:
    """The residual of every cgroup of `table` that has the figures for it.

    `cpus` and `page_size` size the per-CPU batching tolerance. Cgroups are matched to
    their live children by path within a hierarchy; a hierarchy without memory.stat (a
    cgroup2 tree that does not run the memory controller) gives nothing.
    """
    rows = [table.row(i) for i in range(len(table))]
    index = {(h, p): i for i, (h, p) in enumerate(zip(table.hierarchies, table.paths,
                                                         strict=True))}
    kids: dict[int, list[int]] = {}
    for i, (h, p) in enumerate(zip(table.hierarchies, table.paths, strict=True)):
        parent = parent_path(p)
        j = index.get((h, parent)) if parent is not None else None
        if j is not None:
            kids.setdefault(j, []).append(i)
    tolerance = CHARGE_BATCH_PAGES * max(1, cpus) * page_size
    out: list[Residual] = []
    for i, row in enumerate(rows):
        h, path = table.hierarchies[i], table.paths[i]
        child_rows = [rows[k] for k in kids.get(i, [])]
        if h == "memory":
            got, estimated = _v1(row, child_rows)
            dying = None
        else:
            got = _v2(row, child_rows)
            # No-internal-process rule: only a non-root cgroup with live children surely
            # has no processes of its own.
            estimated = set() if (path != "/" and child_rows) else set(got)
            nd = _diff(_get(row, CGSTAT + "nr_dying_descendants"),
                       _sum(child_rows, CGSTAT + "nr_dying_descendants"))
            dying = None if nd is None else max(0, nd)
        if not got:
            continue
        if dying == 0:
            continue  # cgroup2 says no dying memcg is below: the residual is its own
        about = {k for k, v in got.items() if -tolerance <= v < 0}
        torn = {k for k, v in got.items() if v < -tolerance}
        out.append(Residual(h, path, got, dying, frozenset(estimated), frozenset(about),
                            frozenset(torn), len(child_rows)))
    return out


def breakdown(r: Residual, era: str) -> Breakdown:
    """What holds the dying memcgs under `r`'s cgroup, by category, in `era`."""
    reparented = REPARENTED.get(era, frozenset())
    by: dict[tuple[str, bool, bool], list[str]] = {}
    for kind in KINDS:
        if r.held(kind) > 0:
            key = (CATEGORY[kind], kind not in reparented, kind not in r.estimated)
            by.setdefault(key, []).append(kind)
    pins = tuple(Pin(cat, tuple(kinds), sum(r.held(k) for k in kinds), pinning, measured)
                 for (cat, pinning, measured), kinds in by.items())
    return Breakdown(r, tuple(sorted(pins, key=lambda p: (not p.pins, not p.measured,
                                                          -p.bytes))))


def top_leaking(res: Iterable[Residual], era: str, n: int = 10) -> list[Breakdown]:
    """The `n` subtrees with the most dying memcgs (where the kernel counts them), then the
    most pinning charge.

    A residual counts where it was made: P's figure includes its live children's, which
    were subtracted, so no charge is counted at two levels.
    """
    ranked = [breakdown(r, era) for r in res]
    ranked = [b for b in ranked if b.pinning_bytes > 0 or (b.residual.dying or 0) > 0]
    ranked.sort(key=lambda b: (-(b.residual.dying or 0), -b.pinning_bytes, b.residual.path))
    return ranked[:n]
