"""Compact per-cgroup records and their codecs: what makes 10,000 cgroups per host affordable.

Two shapes, both shared by the collector, the wire format and the database:

- `CgroupTable`: many cgroups at one instant, column-wise. Each column is one figure (a
  `memory.stat` key, `memory.current`, a `cgroup.stat` key) as an `array('Q')` of u64 plus a
  presence mask, so 10,000 cgroups x 60 keys cost 4.8 MB, not 600,000 Python ints. A walk's
  series (a few figures of every cgroup) and a periodic full `memory.stat` are both tables.
- one cgroup's whole `memory.stat` (when it is first seen and when it is removed) as a small
  blob: known keys as their place in a fixed tuple of the kernel's key names, values as
  varints, deflated; ~20x smaller than the JSON and still every key, known or not, in the
  kernel's order, with exact u64 values (version 1 blobs, deflated JSON, are still read).

`pack_table`/`unpack_table` turn a table (with integer row ids, the database's cgroup ids)
into one deflated blob; decoding a 10,000-row frame takes a few milliseconds.
"""

from __future__ import annotations

import json
import struct
import zlib
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

U64_MAX = (1 << 64) - 1

# Column names: "memory.stat:<key>", "cgroup.stat:<key>", or one of these file names.
USAGE = "memory.usage"  # v1 memory.usage_in_bytes, v2 memory.current
KMEM_USAGE = "memory.kmem.usage"  # v1 memory.kmem.usage_in_bytes
STAT = "memory.stat:"
CGSTAT = "cgroup.stat:"

# The per-cgroup series the collector keeps by default: what users chart and what the pins
# analysis (local and hierarchical, v1 and v2 names) needs. Absent keys are simply not columns.
SERIES_STAT_KEYS: tuple[str, ...] = (
    # cgroup2 (hierarchical by definition)
    "anon", "file", "shmem", "file_dirty", "file_writeback", "slab", "slab_reclaimable",
    "slab_unreclaimable", "kernel_stack", "sock", "percpu", "swapcached",
    # v1 local, then hierarchical (total_*)
    "cache", "rss", "dirty", "writeback", "swap", "total_cache", "total_rss", "total_shmem",
    "total_dirty", "total_writeback", "total_swap", "hierarchical_memory_limit",
)
SERIES_CGSTAT_KEYS: tuple[str, ...] = (
    "nr_descendants", "nr_dying_descendants", "nr_subsys_memory", "nr_dying_subsys_memory",
)


class CodecError(ValueError):
    """A blob that is not a valid encoding (corrupt, truncated or of another version)."""


@dataclass(frozen=True, slots=True)
class CgroupTable:
    """Figures of many cgroups at one instant, column-wise.

    Row i is the cgroup `(hierarchies[i], paths[i])`. `values[c][i]` is column c of row i and
    counts only where `present[c][i]` is 1 (a key the cgroup's file did not have is absent,
    not 0).
    """

    columns: tuple[str, ...]
    hierarchies: tuple[str, ...]
    paths: tuple[str, ...]
    values: tuple[array[int], ...]  # one array('Q') per column, len(paths) long
    present: tuple[bytes, ...]  # one mask per column: 1 byte per row, 0 or 1

    def __len__(self) -> int:
        return len(self.paths)

    def row(self, i: int) -> dict[str, int]:
        """Row i as {column: value}, absent columns left out."""
        return {c: v[i] for c, v, p in zip(self.columns, self.values, self.present,
                                            strict=True) if p[i]}

    def column(self, name: str) -> list[int | None]:
        """One column as a list (None where absent)."""
        k = self.columns.index(name)
        v, p = self.values[k], self.present[k]
        return [v[i] if p[i] else None for i in range(len(v))]


def table_from_rows(columns: Sequence[str], keys: Sequence[tuple[str, str]],
                    rows: Sequence[Mapping[str, int]]) -> CgroupTable:
    """Build a table from one mapping per cgroup (tests, the wire format, migrations).

    A value outside u64 (an old collector's negative per-CPU drift) is left absent, as the
    collector's own tables do; the cgroup's whole memory.stat blob keeps it as printed.
    """
    n = len(keys)
    values = []
    present = []
    for c in columns:
        v = array("Q", bytes(8 * n))
        p = bytearray(n)
        for i, r in enumerate(rows):
            x = r.get(c)
            if x is not None and 0 <= x <= U64_MAX:
                v[i] = x
                p[i] = 1
        values.append(v)
        present.append(bytes(p))
    return CgroupTable(tuple(columns), tuple(h for h, _ in keys), tuple(p for _, p in keys),
                       tuple(values), tuple(present))


_MAGIC = b"SCT1"


def pack_table(columns: Sequence[str], ids: Sequence[int], values: Sequence[array[int]],
               present: Sequence[bytes], level: int = 1) -> bytes:
    """One deflated blob: a header (columns, row count), row ids (i64), then per column its
    presence mask and its u64 values (little-endian, byte-shuffled: all first bytes, then all
    second bytes, ..., so the zero high bytes of counters deflate to almost nothing; measured
    2.5 bytes a value for random page-aligned 30-bit values, against 3.2 unshuffled)."""
    n = len(ids)
    for v, p in zip(values, present, strict=True):
        if len(v) != n or len(p) != n:
            raise ValueError("every column must have one value and one mask byte per row")
    head = json.dumps({"columns": list(columns), "rows": n}).encode()
    # Column by column into the compressor: a 10,000 x 60 table never exists twice in memory.
    z = zlib.compressobj(level)
    out = [z.compress(_MAGIC + struct.pack("<I", len(head)) + head),
           z.compress(_le(array("q", ids)).tobytes())]
    for v, p in zip(values, present, strict=True):
        out.append(z.compress(bytes(p)))
        out.append(z.compress(_shuffle(_le(v).tobytes())))
    out.append(z.flush())
    return b"".join(out)


def _inflate_checked(blob: bytes) -> tuple[bytes, int]:
    """A table blob inflated, with its header's length; CodecError if it is not one."""
    try:
        raw = zlib.decompress(blob)
    except zlib.error as err:
        raise CodecError(f"table blob is not deflate data: {err}") from err
    if raw[:4] != _MAGIC or len(raw) < 8:
        raise CodecError("table blob has no SCT1 header")
    (hlen,) = struct.unpack_from("<I", raw, 4)
    return raw, int(hlen)


def unpack_table(blob: bytes) -> tuple[tuple[str, ...], array[int], tuple[array[int], ...],
                                       tuple[bytes, ...]]:
    """Inverse of pack_table: (columns, ids, values, present)."""
    raw, hlen = _inflate_checked(blob)
    try:
        head = json.loads(raw[8:8 + hlen])
        columns = tuple(str(c) for c in head["columns"])
        n = int(head["rows"])
    except (ValueError, KeyError, TypeError) as err:
        raise CodecError(f"table blob header is invalid: {err}") from err
    pos = 8 + hlen
    need = pos + 8 * n + len(columns) * 9 * n
    if len(raw) != need:
        raise CodecError(f"table blob is {len(raw)} bytes, its header says {need}")
    ids = _from_le("q", raw[pos:pos + 8 * n])
    pos += 8 * n
    values = []
    present = []
    for _ in columns:
        present.append(raw[pos:pos + n])
        pos += n
        values.append(_from_le("Q", _unshuffle(raw[pos:pos + 8 * n])))
        pos += 8 * n
    return columns, ids, tuple(values), tuple(present)


def _shuffle(b: bytes) -> bytes:
    return b"".join(b[k::8] for k in range(8))


def _unshuffle(b: bytes) -> bytes:
    n = len(b) // 8
    out = bytearray(len(b))
    for k in range(8):
        out[k::8] = b[k * n:(k + 1) * n]
    return bytes(out)


def _le(a: array[int]) -> array[int]:
    if struct.pack("=H", 1) == b"\x00\x01":  # big-endian host: store little-endian anyway
        a = array(a.typecode, a)
        a.byteswap()
    return a


def _from_le(code: str, data: bytes) -> array[int]:
    a = array(code)
    a.frombytes(data)
    if struct.pack("=H", 1) == b"\x00\x01":
        a.byteswap()
    return a


# The key names of memory.stat (v1 and cgroup2, 4.x-6.x) as deflate's preset dictionary:
# a one-cgroup blob then spends its bytes on values, not on repeating names.
_STAT_KEYS: tuple[str, ...] = (
    "anon", "file", "kernel", "kernel_stack", "pagetables", "sec_pagetables", "percpu",
    "sock", "vmalloc", "shmem", "zswap", "zswapped", "file_mapped", "file_dirty",
    "file_writeback", "swapcached", "anon_thp", "file_thp", "shmem_thp", "inactive_anon",
    "active_anon", "inactive_file", "active_file", "unevictable", "slab_reclaimable",
    "slab_unreclaimable", "slab", "workingset_refault_anon", "workingset_refault_file",
    "workingset_activate_anon", "workingset_activate_file", "workingset_restore_anon",
    "workingset_restore_file", "workingset_nodereclaim", "pgscan", "pgsteal", "pgscan_kswapd",
    "pgscan_direct", "pgscan_khugepaged", "pgsteal_kswapd", "pgsteal_direct",
    "pgsteal_khugepaged", "pgfault", "pgmajfault", "pgrefill", "pgactivate", "pgdeactivate",
    "pglazyfree", "pglazyfreed", "zswpin", "zswpout", "zswpwb", "thp_fault_alloc",
    "thp_collapse_alloc", "thp_swpout", "thp_swpout_fallback", "numa_pages_migrated",
    "numa_pte_updates", "numa_hint_faults", "pgdemote_kswapd", "pgdemote_direct",
    "pgdemote_khugepaged", "hugetlb", "cache", "rss", "rss_huge", "mapped_file", "dirty",
    "writeback", "swap", "pgpgin", "pgpgout", "hierarchical_memory_limit",
    "hierarchical_memsw_limit", "total_cache", "total_rss", "total_rss_huge", "total_shmem",
    "total_mapped_file", "total_dirty", "total_writeback", "total_swap", "total_pgpgin",
    "total_pgpgout", "total_pgfault", "total_pgmajfault", "total_inactive_anon",
    "total_active_anon", "total_inactive_file", "total_active_file", "total_unevictable",
)  # append only: version-2 blobs refer to keys by their place in this tuple
_ZDICT = json.dumps(dict.fromkeys(_STAT_KEYS, 0), separators=(",", ":")).encode()
_STAT_INDEX = {k: i + 1 for i, k in enumerate(_STAT_KEYS)}

_STAT_MAGIC = b"\x01"  # JSON deflated against _ZDICT (still read)
_STAT_V2 = b"\x02"
PAGE = 4096


def pack_stat(stat: Mapping[str, int]) -> bytes:
    """One cgroup's whole memory.stat as a small blob (keys kept in the kernel's order).

    Version 2, three streams deflated together: the keys as steps through the known-key
    tuple (the kernel's order makes them all 1s), unknown key names, and the values as
    varints, page-aligned sizes divided by 4096. 60 keys of a cgroup2 memory.stat take ~60
    bytes, against ~150 as deflated JSON (bench/storage_size.py's values).
    """
    for k, v in stat.items():
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"memory.stat value {k}={v!r} is not an integer")
    if any(not 0 <= v <= U64_MAX for v in stat.values()):
        # A kernel that prints a negative per-CPU drift or more than u64: version 1 (JSON)
        # holds any integer exactly. Rare, so its larger size does not matter.
        return _pack_stat_v1(stat)
    keys = bytearray()
    names = bytearray()
    vals = bytearray()
    prev = 0
    for k, v in stat.items():
        idx = _STAT_INDEX.get(k)
        if idx is None:
            raw = k.encode()
            keys.append(0)
            _varint(names, len(raw))
            names += raw
        else:
            step = idx - prev - 1
            _varint(keys, (step << 1 if step >= 0 else (-step << 1) - 1) + 1)
            prev = idx
        _varint(vals, (v // PAGE) << 1 | 1 if v and v % PAGE == 0 else v << 1)
    head = bytearray()
    for part in (keys, names):
        _varint(head, len(part))
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return _STAT_V2 + c.compress(bytes(head + keys + names + vals)) + c.flush()


def unpack_stat(blob: bytes) -> dict[str, int]:
    """Inverse of pack_stat (versions 1 and 2)."""
    if blob[:1] == _STAT_MAGIC:
        return _unpack_stat_v1(blob)
    if blob[:1] != _STAT_V2:
        raise CodecError("memory.stat blob has an unknown version byte")
    try:
        raw = zlib.decompressobj(-15).decompress(blob[1:])
        pos, nkeys = _read_varint(raw, 0)
        pos, nnames = _read_varint(raw, pos)
        keys, names = raw[pos:pos + nkeys], raw[pos + nkeys:pos + nkeys + nnames]
        pos += nkeys + nnames
        out: dict[str, int] = {}
        kp = np = 0
        prev = 0
        while kp < len(keys):
            kp, token = _read_varint(keys, kp)
            if token == 0:
                np, n = _read_varint(names, np)
                key = names[np:np + n].decode()
                np += n
            else:
                z = token - 1
                prev += 1 + (z >> 1 if not z & 1 else -((z + 1) >> 1))
                if not 1 <= prev <= len(_STAT_KEYS):
                    raise ValueError(f"key number {prev} is not a known key")
                key = _STAT_KEYS[prev - 1]
            pos, v = _read_varint(raw, pos)
            out[key] = (v >> 1) * PAGE if v & 1 else v >> 1
    except (zlib.error, IndexError, UnicodeDecodeError, ValueError) as err:
        raise CodecError(f"memory.stat blob is corrupt: {err}") from err
    if pos != len(raw) or np != len(names):
        raise CodecError("memory.stat blob has trailing or missing bytes")
    return out


def _pack_stat_v1(stat: Mapping[str, int]) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
    text = json.dumps(dict(stat), separators=(",", ":")).encode()
    return _STAT_MAGIC + c.compress(text) + c.flush()


def _unpack_stat_v1(blob: bytes) -> dict[str, int]:
    try:
        d = zlib.decompressobj(-15, _ZDICT)
        raw = d.decompress(blob[1:]) + d.flush()
        out = json.loads(raw)
    except (zlib.error, ValueError) as err:
        raise CodecError(f"memory.stat blob is corrupt: {err}") from err
    if not isinstance(out, dict) or not all(isinstance(v, int) for v in out.values()):
        raise CodecError("memory.stat blob does not hold a mapping of integers")
    return {str(k): int(v) for k, v in out.items()}


def _varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)


def _read_varint(b: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = b[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return pos, n
        shift += 7
        if shift > 70:
            raise ValueError("varint longer than a u64")


def stat_columns(stat_keys: Iterable[str], cgstat_keys: Iterable[str] = (),
                 usage: bool = True, kmem: bool = False) -> tuple[str, ...]:
    """Column names for a table, in a stable order."""
    cols = [USAGE] if usage else []
    if kmem:
        cols.append(KMEM_USAGE)
    cols += [STAT + k for k in stat_keys]
    cols += [CGSTAT + k for k in cgstat_keys]
    return tuple(cols)


class CellReader:
    """Reads one row's cells out of table blobs without unpacking whole columns.

    A chart of one row over thousands of frames of the same table shape (slab frames: every
    cache of a host, a cache's series read back) needs a few values per frame: inflate (up
    to the last wanted column), then pick the row's bytes out of each byte-shuffled column.
    The header and the row ids of the previous frame are remembered, as consecutive frames
    mostly share them. A frame is checked whole when its shape is new; after that, only
    the part read (a truncated tail past the wanted columns goes unnoticed).
    """

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self._head = b""
        self._where: tuple[int, ...] = ()  # place of each wanted column (-1: absent)
        self._n = 0
        self._stored = 0  # columns the blob holds
        self._ids = b""
        self._row: dict[int, int] = {}

    def cells(self, blob: bytes, row_id: int) -> tuple[int | None, ...] | None:
        """The wanted columns of row `row_id` (None: absent); None if the row is not there."""
        raw = self._inflate(blob)
        if raw is None:  # another shape than the last frame's: inflate it all and check it
            raw, hlen = _inflate_checked(blob)
            self._parse_head(raw[8:8 + hlen])
            if len(raw) != 8 + hlen + 8 * self._n + self._stored * 9 * self._n:
                raise CodecError("table blob length does not match its header")
        n, pos = self._n, 8 + len(self._head)
        ids = raw[pos:pos + 8 * n]
        if ids != self._ids:
            self._ids = ids
            self._row = {i: k for k, i in enumerate(_from_le("q", ids))}
        k = self._row.get(row_id)
        if k is None:
            return None
        out: list[int | None] = []
        base = pos + 8 * n
        for j in self._where:
            if j < 0:
                out.append(None)
                continue
            col = base + j * 9 * n
            if not raw[col + k]:
                out.append(None)
                continue
            v = col + n + k
            out.append(int.from_bytes(raw[v:v + 8 * n:n], "little"))
        return tuple(out)

    def _inflate(self, blob: bytes) -> bytes | None:
        """Inflate only up to the last wanted column, when the blob has the last frame's
        header (a third of the work saved when the wanted columns come first); None when it
        has not, or is corrupt there (the caller then inflates and checks it all)."""
        if not self._head:
            return None
        n = self._n
        need = 8 + len(self._head) + 8 * n + (max(self._where) + 1) * 9 * n
        try:
            raw = zlib.decompressobj().decompress(blob, need)
        except zlib.error:
            return None
        if len(raw) < need or raw[8:8 + len(self._head)] != self._head:
            return None
        return raw

    def _parse_head(self, head: bytes) -> None:
        try:
            h = json.loads(head)
            columns = [str(c) for c in h["columns"]]
            n = int(h["rows"])
        except (ValueError, KeyError, TypeError) as err:
            raise CodecError(f"table blob header is invalid: {err}") from err
        self._head, self._n, self._stored = head, n, len(columns)
        self._where = tuple(columns.index(c) if c in columns else -1 for c in self.columns)
