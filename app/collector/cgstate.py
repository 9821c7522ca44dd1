"""The collector's compact in-memory copy of every live cgroup's last read figures.

At 10,000 cgroups a dict per cgroup (60 keys, 60 ints) costs ~45 MB; here a hierarchy keeps
its `memory.stat` key tuples once (every cgroup of a kernel prints the same keys, in the same
order; the v2 root and a few odd ones get their own) and each cgroup one `array('Q')` of
values: ~0.6 kB a cgroup. Values the kernel prints outside u64 (negative per-CPU drift on
some kernels) go to a small per-cgroup side dict and never crash a read; a value outside
s64 and u64 both (no kernel prints one) is a parse error of its line (the wire schema,
app/fleet/wire.py, carries what a kernel can print).

Reads are the walk's hot loop, so the parse is cheap on the common case: split once, compare
the key slice to the cached schema in one comparison, convert the values with `array('Q',
map(int, ...))`; anything else (another key set, a bad line, an out-of-range value) takes the
careful line-by-line parser, which names the file and line in its error.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from app.collector.errors import CollectorError, ParseError
from app.collector.sources import _files
from app.collector.sources._files import FileGone
from app.collector.sources.cgroups import Hierarchy
from app.domain.cgtable import U64_MAX

_U32 = (1 << 32) - 1
S64_MIN = -(1 << 63)
# A cgroup's memory.stat is ~2 kB; anything near this is not a cgroup file.
CGROUP_FILE_MAX = 1 << 20


class Schemas:
    """Interned key tuples of one file kind (memory.stat or cgroup.stat) of one hierarchy."""

    __slots__ = ("_index", "keys", "names")

    def __init__(self) -> None:
        self.keys: list[list[bytes]] = []  # as split() gives them: compared on the fast path
        self.names: list[tuple[str, ...]] = []
        self._index: dict[tuple[bytes, ...], int] = {}

    def intern(self, keys: list[bytes]) -> int:
        """The id of this key tuple, added if new."""
        t = tuple(keys)
        sid = self._index.get(t)
        if sid is None:
            sid = len(self.keys)
            self._index[t] = sid
            self.keys.append(list(t))
            self.names.append(tuple(k.decode("utf-8", "backslashreplace") for k in t))
        return sid


class Entry:
    """One cgroup's last read figures, compact."""

    __slots__ = ("cgschema", "cgstat", "ino", "kmem", "odd", "read_at", "schema", "seen",
                 "stat", "tried", "usage")

    def __init__(self) -> None:
        self.stat: array[int] | None = None  # memory.stat values in schema order ('I' or 'Q')
        self.schema = -1
        self.usage: int | None = None
        self.kmem: int | None = None
        self.cgstat: array[int] | None = None  # cgroup.stat values (v2)
        self.cgschema = -1
        self.odd: dict[str, int] | None = None  # memory.stat values outside u64
        self.read_at: datetime | None = None  # None: listed but never read successfully
        self.seen: datetime | None = None  # the last listing that had it
        self.tried: datetime | None = None  # the last read attempted, failed or not
        # The directory's inode number: the kernel's identity of the cgroup (kernfs node id,
        # the cgroup id on cgroup2), never reused soon; 0 until a listing gave it (a seed).
        # A path listed with another inode is another cgroup: the old one was removed.
        self.ino = 0


def read_bytes(path: str) -> bytes:
    """One cgroup control file's bytes (one seq_file record: one read), bounded, never
    blocking; FileGone when missing (the cgroup may be going), else SourceUnavailable."""
    return _files.read_bytes(path, CGROUP_FILE_MAX, one_record=True)


def parse_keyed(path: str, data: bytes, schemas: Schemas, hint: int,
                problems: list[CollectorError] | None = None
                ) -> tuple[int, array[int], dict[str, int] | None]:
    """`key value` lines as (schema id, u64 values, out-of-range values or None).

    With `problems`, a malformed line is recorded there and skipped (the good lines are
    kept: one bad line must not make a live cgroup look empty or removed), and a value
    outside u64 is recorded as well as kept aside; without it, a malformed line raises.
    """
    tokens = data.split()
    # Same keys in the same order and an even token count: every value token is in place.
    if hint >= 0 and not len(tokens) & 1 and tokens[0::2] == schemas.keys[hint]:
        try:
            # From a list, not an iterator: exact size (no growth slack) and 30 % faster.
            vals = list(map(int, tokens[1::2]))
            # Most cgroups' figures fit in 32 bits: half the memory (tables are u64 anyway).
            return hint, array("I" if vals and max(vals) <= _U32 else "Q", vals), None
        except (OverflowError, ValueError):
            pass  # a negative or huge value, or a bad token: the careful parser says which
    return _parse_careful(path, data, schemas, problems)


def _parse_careful(path: str, data: bytes, schemas: Schemas,
                   problems: list[CollectorError] | None
                   ) -> tuple[int, array[int], dict[str, int] | None]:
    keys: list[bytes] = []
    values = array("Q")
    odd: dict[str, int] | None = None
    bads: list[CollectorError] = []
    for lineno, line in enumerate(data.split(b"\n"), 1):
        parts = line.split()
        if not parts:
            continue
        bad = None
        if len(parts) != 2:
            bad = ParseError(path, lineno, f"expected 'key value', got {line[:80]!r}")
        else:
            try:
                v = int(parts[1])
            except ValueError:
                bad = ParseError(path, lineno, f"expected an integer, got {parts[1][:40]!r}")
            else:
                if not S64_MIN <= v <= U64_MAX:  # no kernel prints it: not a figure we keep
                    bad = ParseError(path, lineno, f"{parts[0][:80].decode(errors='replace')} "
                                                   f"{parts[1][:40].decode()} is outside the "
                                                   "64-bit range: left out")
        if bad is not None:
            if problems is None:
                raise bad
            bads.append(bad)
            continue
        keys.append(parts[0])
        if 0 <= v <= U64_MAX:
            values.append(v)
        else:
            values.append(0)
            if odd is None:
                odd = {}
            key = parts[0].decode("utf-8", "backslashreplace")
            odd[key] = v
            if problems is not None:
                problems.append(ParseError(path, lineno, f"{key} {v} is outside u64 (per-CPU "
                                                         "drift?): kept as printed"))
    if not keys:  # nothing good in it: a failed read, the last good figures stay
        raise bads[0] if bads else ParseError(path, 0, "empty file, expected 'key value' "
                                                       "lines")
    if bads:
        assert problems is not None
        problems.extend(bads)
    return schemas.intern(keys), values, odd


def parse_int(path: str, data: bytes) -> int:
    """A file holding one integer."""
    try:
        return int(data)
    except ValueError:
        raise ParseError(path, 1, f"expected an integer, got {data[:40]!r}") from None


class HierarchyState:
    """The live cgroups of one hierarchy and what the collector last read of each."""

    def __init__(self, hierarchy: Hierarchy) -> None:
        self.h = hierarchy
        self.kind = hierarchy.kind
        root = hierarchy.fs_path
        self.v1 = hierarchy.kind == "memory"
        self.has_kmem = self.v1 and os.path.exists(
            os.path.join(root, "memory.kmem.usage_in_bytes"))
        self.has_stat = self.v1 or hierarchy.memory_controller
        self.entries: dict[str, Entry] = {}
        self.stat_schemas = Schemas()
        self.cg_schemas = Schemas()
        self._stat_hint = -1
        self._cg_hint = -1

    def dir_of(self, rel: str) -> str:
        """The directory of a cgroup path."""
        return self.h.fs_path + (rel if rel != "/" else "")

    def read(self, rel: str, at: datetime, errors: list[CollectorError]) -> Entry | None:
        """Read one cgroup into its entry (created if new); None when its directory is gone.

        The entry stays either way (the caller decides: a cgroup of the previous listing is
        reported removed by the next listing, with the figures it had). On any other failure
        the old figures stay and the error is recorded.
        """
        e = self.entries.get(rel)
        if e is None:
            e = self.entries[rel] = Entry()
        e.tried = at
        d = self.dir_of(rel)
        try:
            if self.v1:
                self._read_v1(d, e, at, errors)
            else:
                self._read_v2(d, rel, e, at, errors)
        except FileGone as gone:
            if not os.path.isdir(d):
                return None
            errors.append(gone)
        except CollectorError as err:
            errors.append(err)
        return e

    def _read_v1(self, d: str, e: Entry, at: datetime, errors: list[CollectorError]) -> None:
        p = d + "/memory.stat"
        sid, vals, odd = parse_keyed(p, read_bytes(p), self.stat_schemas,
                                     e.schema if e.schema >= 0 else self._stat_hint, errors)
        p = d + "/memory.usage_in_bytes"
        usage = parse_int(p, read_bytes(p))
        kmem = None
        if self.has_kmem:
            p = d + "/memory.kmem.usage_in_bytes"
            kmem = parse_int(p, read_bytes(p))
        e.stat, e.schema, e.odd, e.usage, e.kmem, e.read_at = vals, sid, odd, usage, kmem, at
        self._stat_hint = sid

    def _read_v2(self, d: str, rel: str, e: Entry, at: datetime,
                 errors: list[CollectorError]) -> None:
        p = d + "/cgroup.stat"
        cid, cvals, _ = parse_keyed(p, read_bytes(p), self.cg_schemas,
                                    e.cgschema if e.cgschema >= 0 else self._cg_hint, errors)
        # memory.* exist only where the parent enabled +memory in subtree_control, and the
        # root has memory.stat but no memory.current: a missing file here is normal. When
        # +memory goes away the memcg goes offline: keep the figures last read for it.
        vals, sid, odd, usage = e.stat, e.schema, e.odd, e.usage
        read_at = at
        if self.h.memory_controller:
            p = d + "/memory.stat"
            try:
                sid, vals, odd = parse_keyed(p, read_bytes(p), self.stat_schemas,
                                             e.schema if e.schema >= 0 else self._stat_hint,
                                             errors)
            except FileGone:
                if not os.path.isdir(d):
                    raise
                if vals is not None:
                    read_at = e.read_at or at  # the kept figures are as old as they are
            if rel != "/":
                p = d + "/memory.current"
                try:
                    usage = parse_int(p, read_bytes(p))
                except FileGone:
                    if not os.path.isdir(d):
                        raise
        e.cgstat, e.cgschema, e.stat, e.schema, e.odd, e.usage, e.read_at = (
            cvals, cid, vals, sid, odd, usage, read_at)
        self._cg_hint = cid
        if sid >= 0 and rel != "/":  # the root's keys differ (no anon/file split on 5.x)
            self._stat_hint = sid

    # -- views of an entry ------------------------------------------------------------
    def memory_stat(self, e: Entry) -> dict[str, int]:
        """The entry's whole memory.stat as read, odd values included."""
        if e.stat is None:
            return {}
        out = dict(zip(self.stat_schemas.names[e.schema], e.stat, strict=True))
        if e.odd:
            out.update(e.odd)
        return out

    def cgroup_stat(self, e: Entry) -> dict[str, int] | None:
        """The entry's cgroup.stat (v2), or None."""
        if e.cgstat is None:
            return None
        return dict(zip(self.cg_schemas.names[e.cgschema], e.cgstat, strict=True))

    def stat_keys(self) -> Iterator[str]:
        """Every memory.stat key seen in this hierarchy, first-seen order."""
        seen: set[str] = set()
        for names in self.stat_schemas.names:
            for k in names:
                if k not in seen:
                    seen.add(k)
                    yield k

    def cgstat_keys(self) -> set[str]:
        """Every cgroup.stat key seen in this hierarchy."""
        return {k for names in self.cg_schemas.names for k in names}


class Listing(NamedTuple):
    """One hierarchy's cgroup directories: raw paths below its mount, and their inodes."""

    paths: list[str]
    inodes: array[int]  # d_ino from the directory read (free: no stat), 0 when unknown


def listing(h: Hierarchy) -> Listing:
    """Every cgroup directory of a hierarchy (root included) as raw paths below its mount."""
    try:
        root_ino = os.stat(h.fs_path).st_ino
    except OSError:
        root_ino = 0
    out = ["/"]
    inodes = array("Q", [root_ino])
    stack = [(h.fs_path, "")]
    while stack:
        path, rel = stack.pop()
        try:
            it = os.scandir(path)
        except OSError:
            continue  # removed while we listed
        with it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    # The raw name (surrogate-escaped) opens files; fs_name() is for display.
                    child = rel + "/" + entry.name
                    out.append(child)
                    inodes.append(entry.inode())
                    if _may_have_children(entry):
                        stack.append((entry.path, child))
    return Listing(out, inodes)


def _may_have_children(entry: os.DirEntry[str]) -> bool:
    # A directory's link count is 2 + its subdirectories on kernfs (cgroupfs sets it from
    # kn->dir.subdirs) and tmpfs: one lstat() of a leaf saves listing its 30-60 control
    # files. Any other count (btrfs says 1) means "maybe": list it.
    try:
        return entry.stat(follow_symlinks=False).st_nlink != 2
    except OSError:
        return False  # gone already
