"""Per-cgroup data at its cadences: listing every tick, new cgroups at once, a periodic walk.

Every tick lists each hierarchy's directories (cheap: scandir, no file opened) to find new
and removed cgroups. A new cgroup is read the tick it appears and reported whole. The walk
(every `cgroup_walk_interval_seconds`) reads every live cgroup into the compact copy
(`cgstate`); series and full tables are built from that copy, never from a dict per cgroup.
A removed cgroup carries the memory.stat of the last read that saw it.

Every tick also counts churn from the listing (`count_churn`): the newest directory id, the
visible count and /proc/cgroups num_cgroups, against the previous tick's (app/domain/churn.py),
so cgroups made and removed between two ticks are counted though never listed.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.collector.cgstate import Entry, HierarchyState, Listing, listing
from app.collector.errors import CollectorError, SourceUnavailable
from app.collector.sources._files import fs_name, parse_flat_keyed, raw_name, read_text
from app.collector.sources.cgroups import Hierarchy
from app.collector.sources.slabinfo import parse_slabinfo
from app.domain.cgtable import (
    SERIES_CGSTAT_KEYS,
    SERIES_STAT_KEYS,
    STAT,
    CgroupTable,
    stat_columns,
)
from app.domain.churn import Listing as ChurnListing
from app.domain.churn import NumBase, churn, stride_of
from app.domain.samples import (
    CgroupKmemSlabinfo,
    CgroupSample,
    HierarchyChurn,
    RemovedCgroup,
    SlabinfoRow,
)

STRIDE_TRIES = 3  # leaves tried when the newest ones go while their files are counted


@dataclass(slots=True)
class _ChurnCounter:
    """One hierarchy's churn state across ticks of one boot."""

    newest: int = 0  # the largest directory id listed in this boot (ids only grow)
    before: ChurnListing | None = None  # the last listing churn was counted from
    since: datetime | None = None  # its time
    stride: int | None = None  # ids a new cgroup takes, measured from a leaf
    # num_cgroups where the ids were last complete, and creations counted since: carried
    # across intervals whose ids lag (app/domain/churn.py), None: `before`'s own figure.
    base: NumBase | None = None


class CgroupTracker:
    """The live cgroups of one boot's hierarchies, their last figures, and what changed."""

    def __init__(self, hierarchies: Sequence[Hierarchy]) -> None:
        self.states = [HierarchyState(h) for h in hierarchies]
        self.by_kind = {s.kind: s for s in self.states}
        self._has_kmem_slabinfo = any(
            s.v1 and os.path.exists(os.path.join(s.h.fs_path, "memory.kmem.slabinfo"))
            for s in self.states)
        self.kmem_slabinfo = False
        self.listed_at: datetime | None = None  # the previous listing (a tick or a seed)
        # memory.kmem.slabinfo read this tick (a new cgroup's, again for the series): once.
        self._slab_read: dict[tuple[str, str], tuple[SlabinfoRow, ...] | None] = {}
        self._churn = {s.kind: _ChurnCounter() for s in self.states}

    def use_kmem_slabinfo(self, era_fills_it: bool) -> None:
        """Read v1 memory.kmem.slabinfo: it lists caches only on <= 5.8 (empty since 5.9)."""
        self.kmem_slabinfo = era_fills_it and self._has_kmem_slabinfo

    # -- seed -------------------------------------------------------------------------
    def seed(self, cgroups: Iterable[CgroupSample], taken_at: datetime) -> None:
        """Take a stored scrape's cgroups as the previous listing (after a restart)."""
        seeded = False
        for c in cgroups:  # one at a time: 10,000 dicts never exist at once if streamed
            hs = self.by_kind.get(c.hierarchy)
            if hs is None:
                continue
            seeded = True
            # Stored paths are for display (undecodable bytes as \\xNN escapes); the
            # listing keys by the raw name: the same cgroup must have the same key.
            e = hs.entries.setdefault(self._raw(hs, c.path), Entry())
            if c.memory_stat:
                keys = [k.encode() for k in c.memory_stat]
                vals = list(c.memory_stat.values())
                e.schema = hs.stat_schemas.intern(keys)
                e.stat = array("Q", (v if 0 <= v < 1 << 64 else 0 for v in vals))
                odd = {k: v for k, v in c.memory_stat.items() if not 0 <= v < 1 << 64}
                e.odd = odd or None
            if c.cgroup_stat:
                e.cgschema = hs.cg_schemas.intern([k.encode() for k in c.cgroup_stat])
                e.cgstat = array("Q", (min(max(v, 0), (1 << 64) - 1)
                                       for v in c.cgroup_stat.values()))
            e.usage, e.kmem, e.read_at = c.memory_usage_bytes, c.kmem_usage_bytes, taken_at
            e.tried = taken_at
        if seeded:  # an empty seed is no listing: else every cgroup would be "new" at once
            self.listed_at = taken_at

    @staticmethod
    def _raw(hs: HierarchyState, path: str) -> str:
        """The listing's key of a stored (display) path."""
        raw = raw_name(path)
        if raw != path and not os.path.isdir(hs.dir_of(raw)) and os.path.isdir(
                hs.dir_of(path)):
            return path  # a name with a literal backslash-x: it is what it says
        return raw

    # -- one tick ---------------------------------------------------------------------
    def list_all(self) -> dict[str, Listing]:
        """This tick's directory listing of every hierarchy."""
        return {s.kind: listing(s.h) for s in self.states}

    def tick(self, listings: dict[str, Listing], taken_at: datetime, walk: bool,
             errors: list[CollectorError]) -> tuple[list[CgroupSample], list[RemovedCgroup]]:
        """Apply a listing: removals, new cgroups read at once, and the walk when due.

        A path listed with another inode than before was removed and made again since the
        last listing: the old cgroup is reported removed and the new one new.
        """
        report_new = self.listed_at is not None  # the first listing's cgroups are not "new"
        new: list[CgroupSample] = []
        removed: list[RemovedCgroup] = []
        self._slab_read = {}
        for hs in self.states:
            listed = listings.get(hs.kind, Listing([], array("Q")))
            # Mark what the listing has with this tick's time (one shared object): no set of
            # 10,000 paths to find the missing ones, nor of the ones read already.
            unread = []
            for rel, ino in zip(listed.paths, listed.inodes, strict=True):
                e = hs.entries.get(rel)
                if e is None:
                    e = hs.entries[rel] = Entry()
                elif e.ino != ino and e.ino and ino:  # the same path, another cgroup
                    if self.listed_at is not None:
                        removed.append(self._removal(hs, rel, e, taken_at))
                    e = hs.entries[rel] = Entry()
                e.ino = ino
                e.seen = taken_at
                # Read at first sight; one that failed waits for the walk, not every tick.
                if e.tried is None:
                    unread.append(rel)
            removed += self._removals(hs, taken_at, errors)
            for rel in unread:
                e = hs.read(rel, taken_at, errors)
                if e is None:  # gone between the listing and the read: never seen
                    del hs.entries[rel]
                elif report_new and e.read_at is not None:
                    new.append(self.sample(hs, rel, e, errors))
            if walk:
                for rel in listed.paths:
                    e = hs.entries.get(rel)
                    if e is not None and e.tried is not taken_at:  # once a tick at most
                        hs.read(rel, taken_at, errors)
        self.listed_at = taken_at
        return new, removed

    # -- counted churn ----------------------------------------------------------------
    def count_churn(self, listings: dict[str, Listing], num_cgroups: int | None,
                    taken_at: datetime) -> list[HierarchyChurn]:
        """Cgroups made, removed and freed in each hierarchy since the previous tick.

        `num_cgroups` is /proc/cgroups' memory count, read consistently with `listings`; it
        counts the memcgs of the hierarchy that runs the memory controller only. The first
        listing of a tracker (a new boot, a restarted collector) only sets the baseline: no
        churn. While no leaf exists to measure the stride from, the baseline stays, and the
        next counted interval spans the ticks in between (nothing is lost). A wrap or a
        reboot the ids show (app.domain.churn.churn gives None) counts nothing and resets
        the baseline. While the ids lag behind num_cgroups (cgroups made and removed since
        the newest listed directory), freed is None and the num_cgroups baseline is carried
        to the interval whose ids catch up, so freed and created cover one span.
        """
        out: list[HierarchyChurn] = []
        for hs in self.states:
            listed = listings.get(hs.kind)
            if listed is None or not listed.paths:
                continue
            c = self._churn[hs.kind]
            c.newest = max(c.newest, max(listed.inodes))
            memcgs = hs.v1 or hs.h.memory_controller
            now = ChurnListing(c.newest, len(listed.paths), num_cgroups if memcgs else None)
            if c.before is None or c.since is None:
                c.before, c.since, c.base = now, taken_at, None
                continue
            if c.stride is None:
                c.stride = self._stride(hs, listed)
                if c.stride is None:
                    continue  # no leaf to measure yet: keep the baseline
            got = churn(c.before, now, c.stride, c.base)
            if got is not None and not got.exact:
                # Another file count (cgroup2: controllers enabled since), or ids taken by
                # files alone: measure again, and keep the new stride if it counts whole.
                stride = self._stride(hs, listed)
                if stride is not None and stride != c.stride:
                    again = churn(c.before, now, stride, c.base)
                    if again is not None and again.exact:
                        got, c.stride = again, stride
            if got is not None:
                out.append(HierarchyChurn(hs.kind, c.since, got.created, got.removed,
                                          got.freed, got.exact))
            c.before, c.since = now, taken_at
            c.base = None if got is None else got.base
        return out

    @staticmethod
    def _stride(hs: HierarchyState, listed: Listing) -> int | None:
        """Ids one new cgroup of this hierarchy takes: 1 + the control files of its newest
        cgroups (the newest is what is being made now; the root has fewer files)."""
        order = sorted(range(1, len(listed.paths)), key=lambda i: listed.inodes[i],
                       reverse=True)
        for i in order[:STRIDE_TRIES]:
            try:
                with os.scandir(hs.dir_of(listed.paths[i])) as it:
                    files = sum(1 for e in it if not e.is_dir(follow_symlinks=False))
            except OSError:
                continue  # removed meanwhile: the next newest
            if files:
                return stride_of(files)
        return None

    def _removals(self, hs: HierarchyState, taken_at: datetime,
                  errors: list[CollectorError]) -> list[RemovedCgroup]:
        out = []
        for rel in [r for r, e in hs.entries.items() if e.seen is not taken_at]:
            d = hs.dir_of(rel)
            if os.path.isdir(d):  # the listing missed it (a parent unreadable): not removed
                errors.append(SourceUnavailable(d, "cgroup directory exists but the listing "
                                                "did not reach it; kept"))
                continue
            e = hs.entries.pop(rel)
            if self.listed_at is None:
                continue
            out.append(self._removal(hs, rel, e, taken_at))
        return out

    def _removal(self, hs: HierarchyState, rel: str, e: Entry,
                 taken_at: datetime) -> RemovedCgroup:
        assert self.listed_at is not None
        return RemovedCgroup(hs.kind, fs_name(rel), self.listed_at, taken_at,
                             hs.memory_stat(e), e.usage, e.read_at)

    def root_cgroup_stat(self, kind: str, taken_at: datetime,
                         errors: list[CollectorError]) -> dict[str, int]:
        """The root's cgroup.stat now (cgroup2 dying count): the walk's read when this tick
        had one, else one read of the file."""
        hs = self.by_kind[kind]
        e = hs.entries.get("/")
        if e is not None and e.read_at is taken_at and e.cgstat is not None:
            return hs.cgroup_stat(e) or {}
        p = os.path.join(hs.h.fs_path, "cgroup.stat")
        try:
            return parse_flat_keyed(p, read_text(p))
        except CollectorError as err:
            errors.append(err)
            return {}

    def sample(self, hs: HierarchyState, rel: str, e: Entry,
               errors: list[CollectorError]) -> CgroupSample:
        """One cgroup's whole record, rebuilt from its compact entry."""
        slab = self._slabinfo(hs, rel, errors) if hs.v1 and self.kmem_slabinfo else None
        return CgroupSample(hs.kind, fs_name(rel), hs.memory_stat(e), e.usage, e.kmem, slab,
                            hs.cgroup_stat(e))

    def _slabinfo(self, hs: HierarchyState, rel: str, errors: list[CollectorError]
                  ) -> tuple[SlabinfoRow, ...] | None:
        key = (hs.kind, rel)
        if key in self._slab_read:  # a new cgroup on a series tick: read once
            return self._slab_read[key]
        p = os.path.join(hs.dir_of(rel), "memory.kmem.slabinfo")
        rows: tuple[SlabinfoRow, ...] | None = None
        try:
            rows = tuple(parse_slabinfo(p, read_text(p), allow_empty=True))
        except CollectorError as err:
            errors.append(err)
        self._slab_read[key] = rows
        return rows

    def kmem_slabinfo_rows(self, errors: list[CollectorError]) -> list[CgroupKmemSlabinfo]:
        """memory.kmem.slabinfo of every v1 cgroup (kernels <= 5.8), with the series."""
        out: list[CgroupKmemSlabinfo] = []
        if not self.kmem_slabinfo:
            return out
        for hs in self.states:
            if hs.v1:
                for rel in hs.entries:
                    rows = self._slabinfo(hs, rel, errors)
                    if rows:
                        out.append(CgroupKmemSlabinfo(hs.kind, fs_name(rel), rows))
        return out

    def live(self) -> int:
        """How many cgroups the compact copy holds."""
        return sum(len(s.entries) for s in self.states)

    # -- tables -----------------------------------------------------------------------
    def series_table(self) -> CgroupTable:
        """Every live cgroup's series figures (the keys this kernel has)."""
        present = {k for s in self.states for k in s.stat_keys()}
        cg_present = {k for s in self.states for k in s.cgstat_keys()}
        return self._table([k for k in SERIES_STAT_KEYS if k in present],
                           [k for k in SERIES_CGSTAT_KEYS if k in cg_present], usage=True,
                           kmem=any(s.has_kmem for s in self.states), stat_only=False)

    def full_table(self) -> CgroupTable:
        """Every live cgroup's whole memory.stat (columns: the union of key schemas)."""
        keys: dict[str, None] = {}
        for s in self.states:
            keys.update(dict.fromkeys(s.stat_keys()))
        return self._table(list(keys), [], usage=False, kmem=False, stat_only=True)

    def _table(self, stat_keys: list[str], cg_keys: list[str], *, usage: bool, kmem: bool,
               stat_only: bool) -> CgroupTable:
        columns = stat_columns(stat_keys, cg_keys, usage=usage, kmem=kmem)
        def rows() -> Iterator[tuple[HierarchyState, str, Entry]]:
            # Iterated three times rather than kept: no list of 10,000 tuples.
            return ((hs, rel, e) for hs in self.states for rel, e in hs.entries.items()
                    if not stat_only or e.stat is not None)
        n = sum(1 for _ in rows())
        values = [array("Q", bytes(8 * n)) for _ in columns]
        masks = [bytearray(n) for _ in columns]
        base = int(usage) + int(kmem)
        stat_col = {STAT + k: i for i, k in enumerate(stat_keys)}
        # (hierarchy, schema) -> [(column, index in the entry's array)]: computed once.
        plans: dict[tuple[int, int, bool], list[tuple[int, int]]] = {}
        for i, (hs, _rel, e) in enumerate(rows()):
            if usage and e.usage is not None:
                values[0][i] = e.usage
                masks[0][i] = 1
            if kmem and e.kmem is not None:
                values[1][i] = e.kmem
                masks[1][i] = 1
            for arr, sid, cg in ((e.stat, e.schema, False), (e.cgstat, e.cgschema, True)):
                if arr is None:
                    continue
                plan = plans.get((id(hs), sid, cg))
                if plan is None:
                    plan = plans[(id(hs), sid, cg)] = self._plan(hs, sid, cg, stat_col,
                                                                 cg_keys, base)
                odd = e.odd if not cg else None
                for c, k in plan:
                    if odd and hs.stat_schemas.names[sid][k] in odd:
                        continue  # not a u64: absent here, exact in the removal record
                    values[c][i] = arr[k]
                    masks[c][i] = 1
        return CgroupTable(columns, tuple(hs.kind for hs, _, _ in rows()),
                           tuple(fs_name(rel) for _, rel, _ in rows()), tuple(values),
                           tuple(bytes(m) for m in masks))

    @staticmethod
    def _plan(hs: HierarchyState, sid: int, cg: bool, stat_col: dict[str, int],
              cg_keys: list[str], base: int) -> list[tuple[int, int]]:
        if cg:
            names = hs.cg_schemas.names[sid]
            cgc = {k: base + len(stat_col) + i for i, k in enumerate(cg_keys)}
            return [(cgc[k], j) for j, k in enumerate(names) if k in cgc]
        names = hs.stat_schemas.names[sid]
        return [(base + stat_col[STAT + k], j) for j, k in enumerate(names)
                if STAT + k in stat_col]
