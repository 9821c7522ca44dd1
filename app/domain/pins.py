"""What the dying memcgs of a host still hold, measured from the kernel's own counters.

A removed cgroup's memcg stays "dying" while anything is charged to it, and what is charged
to it still counts in its ancestors' hierarchical figures. So, for a live cgroup P, what
P's dying descendants hold is P's hierarchical figure less what its live parts hold:

- v1 (`memory` hierarchy): `total_X(P) - X(P) - sum(total_X(child))` over P's live
  children, since v1 memory.stat prints P's own (local) figure X and the hierarchical one
  total_X. `memory.kmem.usage_in_bytes` is hierarchical only, with no figure of P's own,
  so its residual `kmem(P) - sum(kmem(child))` also holds P's own kernel memory: on a leaf
  or a cgroup with tasks it is mostly that (on a tester's host the leaves' own kmem was
  166 MB of the 167 MB at the root). It is counted as held by dying descendants (an
  estimate, P's own taken as 0) only where that is likely: P has no anon of its own (v1's
  local `rss`, the proxy for "no tasks": an assumption, v1 memory.stat counts no tasks)
  and at least one removal record lies below P (`removed_below`). Elsewhere it is
  `unknown`: kept in the record, never shown as kernel memory held.
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

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from app.domain.cgtable import CGSTAT, KMEM_USAGE, STAT, CgroupTable
from app.domain.eras import ERAS

CHARGE_BATCH_PAGES = 64  # MEMCG_CHARGE_BATCH (include/linux/memcontrol.h)

# The kinds of charge a residual is split into, in the order pages list them.
KINDS: tuple[str, ...] = ("file", "dirty", "shmem", "anon", "swap", "slab", "kernel_stack",
                          "sock", "percpu", "kernel")

# kind -> what the breakdown calls it.
# Sockets apart from kernel memory: an open socket holds its memcg in every era, while kernel
# memory is reparented since 5.13 (app/domain/eras.py Era.reparented_kinds).
CATEGORY: dict[str, str] = {
    "file": "page cache", "dirty": "dirty page cache", "shmem": "tmpfs/shmem",
    "anon": "anonymous memory", "swap": "swap", "slab": "kernel memory",
    "kernel_stack": "kernel memory", "sock": "socket buffers", "percpu": "kernel memory",
    "kernel": "kernel memory",
}

# Kinds whose charge no longer holds a dying memcg, by era: the era registry's own
# (Era.reparented_kinds, from its facts), for every kind: reparented to the parent when the
# memcg goes offline (kernel-notes.md: slab 5.3 fb2f2b0adb98; objcg for slab and percpu 5.9;
# kernel pages, v1 kmem included, 5.13; LRU folios in the 2026 series). Sockets hold a css
# reference while open (mem_cgroup_sk_alloc), in every era.
REPARENTED: dict[str, frozenset[str]] = {n: e.reparented_kinds for n, e in ERAS.items()}


@dataclass(frozen=True, slots=True)
class Residual:
    """What the dying descendants of one live cgroup hold, by kind of charge (bytes).

    `bytes` holds the residuals as the counters give them, signed; `about_zero` the kinds
    below 0 by no more than per-CPU batching (shown as ~0); `inconsistent` the kinds further below 0
    than batching explains (a torn read); `estimated` the kinds that may include the
    cgroup's own charge (see the module docstring); `unknown` the kinds whose residual is
    likely the cgroup's own (v1 kmem where P may have tasks, or has no removal below it):
    never shown as held. `dying` counts the dying memcgs whose
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
    unknown: frozenset[str] = frozenset()

    def held(self, kind: str) -> int:
        """The kind's residual as shown: 0 where it is about 0, torn or unknown, else its
        bytes."""
        if kind in self.about_zero or kind in self.inconsistent or kind in self.unknown:
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


I64 = np.int64
_MAX = (1 << 63) - 1


class _Frame:
    """A table's columns as int64 arrays with masks (u64 values past int64 are absent: per-CPU
    drift, not a charge), and each row's parent row (-1: none listed)."""

    def __init__(self, table: CgroupTable) -> None:
        self.table = table
        self.n = n = len(table)
        self.col = {c: i for i, c in enumerate(table.columns)}
        index = {(h, p): i for i, (h, p) in enumerate(zip(table.hierarchies, table.paths,
                                                             strict=True))}
        parent = np.full(n, -1, dtype=I64)
        for i, (h, p) in enumerate(zip(table.hierarchies, table.paths, strict=True)):
            up = parent_path(p)
            if up is not None:
                parent[i] = index.get((h, up), -1)
        self.parent = parent
        self.has_parent = parent >= 0
        self.children = np.bincount(parent[self.has_parent], minlength=n).astype(I64)

    def get(self, key: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        k = self.col.get(key)
        if k is None:
            return np.zeros(self.n, dtype=I64), np.zeros(self.n, dtype=bool)
        raw = np.frombuffer(self.table.values[k], dtype=np.uint64)
        ok = np.frombuffer(self.table.present[k], dtype=np.uint8).astype(bool) & (raw <= _MAX)
        return np.where(ok, raw, 0).astype(I64), ok

    def kids_sum(self, key: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Per row: the sum of `key` over its listed children, and whether all had it."""
        v, ok = self.get(key)
        total = np.zeros(self.n, dtype=I64)
        lacking = np.zeros(self.n, dtype=I64)
        hp = self.has_parent
        np.add.at(total, self.parent[hp], v[hp])
        np.add.at(lacking, self.parent[hp], (~ok[hp]).astype(I64))
        return total, lacking == 0

    def residual(self, parent_key: str, local_key: str | None, child_key: str
                 ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        v, ok = self.get(parent_key)
        kids, kids_ok = self.kids_sum(child_key)
        out, out_ok = v - kids, ok & kids_ok
        if local_key is not None:
            lv, lok = self.get(local_key)
            out, out_ok = out - lv, out_ok & lok
        return out, out_ok


def _add(*parts: tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]
         ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    v = sum((p[0] for p in parts[1:]), parts[0][0])
    ok = parts[0][1].copy()
    for p in parts[1:]:
        ok &= p[1]
    return v, ok


@dataclass(frozen=True, slots=True)
class ResidualTable:
    """Residuals of every row of a table, column-wise: kind -> (bytes, available)."""

    table: CgroupTable
    kinds: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]]
    estimated: dict[str, npt.NDArray[np.bool_]]
    dying: npt.NDArray[np.int64]  # -1 where the kernel does not say (v1)
    children: npt.NDArray[np.int64]
    tolerance: int
    # Rows whose residual of the kind is likely their own (v1 kmem: see the module docstring).
    unknown: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)

    def held(self, kind: str) -> npt.NDArray[np.int64]:
        """Bytes shown per row: negatives (batching noise or torn reads) and unknowns as 0."""
        v, ok = self.kinds.get(kind, (np.zeros(len(self.table), dtype=I64),
                                      np.zeros(len(self.table), dtype=bool)))
        unknown = self.unknown.get(kind)
        if unknown is not None:
            ok = ok & ~unknown
        return np.where(ok & (v > 0) & (self.dying != 0), v, 0)

    def unknown_bytes(self, kind: str) -> int:
        """Positive residual bytes of `kind` over the rows where it is unknown (likely the
        cgroups' own): what the chart leaves out, said beside it."""
        v, ok = self.kinds.get(kind, (np.zeros(len(self.table), dtype=I64),
                                      np.zeros(len(self.table), dtype=bool)))
        unknown = self.unknown.get(kind)
        if unknown is None:
            return 0
        return int(np.where(ok & unknown & (v > 0), v, 0).sum())

    def totals(self, era: str) -> dict[tuple[str, bool, bool], int]:
        """(category, pins in `era`, measured) -> bytes, summed over every row."""
        reparented = REPARENTED.get(era, frozenset())
        out: dict[tuple[str, bool, bool], int] = {}
        for kind in self.kinds:
            held = self.held(kind)
            est = self.estimated.get(kind)
            for measured in (True, False):
                mask = (~est if measured else est) if est is not None else (
                    np.ones(len(held), dtype=bool) if measured else
                    np.zeros(len(held), dtype=bool))
                b = int(held[mask].sum())
                if b:
                    key = (CATEGORY[kind], kind not in reparented, measured)
                    out[key] = out.get(key, 0) + b
        return out


def residual_table(table: CgroupTable, *, cpus: int, page_size: int = 4096,
                   removed_below: Collection[tuple[str, str]] = ()) -> ResidualTable:
    """The residuals of every cgroup of `table`, vectorised (a 10,000-cgroup frame in a few
    milliseconds: the pages fold a range of frames).

    `removed_below`: the (hierarchy, path) of cgroups with at least one removal record below
    them; only there can v1's kmem residual be held by removed children (module docstring).
    """
    f = _Frame(table)
    v1 = np.array([h == "memory" for h in table.hierarchies], dtype=bool)
    v2 = ~v1

    def one(local: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """v1 total_X - X - sum(total_X of children); cgroup2 X - sum(X of children)."""
        a, a_ok = f.residual(STAT + "total_" + local, STAT + local, STAT + "total_" + local)
        return np.where(v1, a, 0), a_ok & v1

    def two(key: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        b, b_ok = f.residual(STAT + key, None, STAT + key)
        return np.where(v2, b, 0), b_ok & v2

    def either(a: tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]],
               b: tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]
               ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        return np.where(a[1], a[0], b[0]), a[1] | b[1]

    shmem = either(one("shmem"), two("shmem"))
    dirty = either(_add(one("dirty"), one("writeback")),
                   _add(two("file_dirty"), two("file_writeback")))
    cache = either(one("cache"), two("file"))
    # Page cache holds tmpfs and dirty pages on both layouts: "file" is what is left.
    file = (cache[0] - np.where(shmem[1], shmem[0], 0) - np.where(dirty[1], dirty[0], 0),
            cache[1])
    slab = two("slab")
    slab = either(slab, _add(two("slab_reclaimable"), two("slab_unreclaimable")))
    kmem, kmem_ok = f.residual(KMEM_USAGE, None, KMEM_USAGE)
    kinds = {"file": file, "dirty": dirty, "shmem": shmem, "anon": either(one("rss"),
                                                                            two("anon")),
             "swap": one("swap"), "slab": slab, "kernel_stack": two("kernel_stack"),
             "sock": two("sock"), "percpu": two("percpu"),
             "kernel": (np.where(v1, kmem, 0), kmem_ok & v1)}
    kinds = {k: v for k, v in kinds.items() if v[1].any()}
    # cgroup2's no-internal-process rule: only a non-root cgroup with live children surely
    # has no processes of its own. v1's kmem usage is hierarchical only: it holds P's own,
    # taken as 0 only where P has no anon of its own and removals lie below it; else unknown.
    root = np.array([p == "/" for p in table.paths], dtype=bool)
    v2_est = v2 & (root | (f.children == 0))
    own_rss, own_rss_ok = f.get(STAT + "rss")
    below = frozenset(removed_below)
    has_removed = np.array([(h, p) in below for h, p in zip(table.hierarchies, table.paths,
                                                             strict=True)], dtype=bool)
    kmem_likely_left = v1 & own_rss_ok & (own_rss == 0) & has_removed
    estimated = {k: (kmem_likely_left if k == "kernel" else v2_est.copy()) for k in kinds}
    unknown = {"kernel": v1 & ~kmem_likely_left} if "kernel" in kinds else {}
    nd, nd_ok = f.residual(CGSTAT + "nr_dying_descendants", None,
                           CGSTAT + "nr_dying_descendants")
    dying = np.where(nd_ok & v2, np.maximum(nd, 0), -1)
    tolerance = CHARGE_BATCH_PAGES * max(1, cpus) * page_size
    return ResidualTable(table, kinds, estimated, dying, f.children, tolerance, unknown)


def residuals(table: CgroupTable, *, cpus: int, page_size: int = 4096,
              removed_below: Collection[tuple[str, str]] = ()) -> list[Residual]:
    """The residual of every cgroup of `table` that has the figures for it, as records.

    `cpus` and `page_size` size the per-CPU batching tolerance. Cgroups are matched to
    their live children by path within a hierarchy; a hierarchy without memory.stat (a
    cgroup2 tree that does not run the memory controller) gives nothing. A cgroup2 cgroup
    with no dying memcg below it is left out: its residual is its own.
    """
    rt = residual_table(table, cpus=cpus, page_size=page_size, removed_below=removed_below)
    return [r for i in range(len(table)) if (r := record(rt, i)) is not None]


def record(rt: ResidualTable, i: int) -> Residual | None:
    """Row i of a residual table as a record (None: nothing to say for it)."""
    got = {k: int(v[i]) for k, (v, ok) in rt.kinds.items() if ok[i]}
    dying = int(rt.dying[i])
    if not got or dying == 0:
        return None
    tol = rt.tolerance
    return Residual(rt.table.hierarchies[i], rt.table.paths[i], got,
                    None if dying < 0 else dying,
                    frozenset(k for k in got if rt.estimated[k][i]),
                    frozenset(k for k, v in got.items() if -tol <= v < 0),
                    frozenset(k for k, v in got.items() if v < -tol), int(rt.children[i]),
                    frozenset(k for k in got if k in rt.unknown and rt.unknown[k][i]))


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
