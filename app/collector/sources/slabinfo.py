"""/proc/slabinfo v2.1, with and without the "(statistics)" variant.

Format (mm/slab_common.c, cache_show):
    "%-17s %6lu %6lu %6u %4u %4d" " : tunables %4u %4u %4u" " : slabdata %6lu %6lu %6lu"
and with CONFIG_DEBUG_SLAB the SLAB allocator appends " : globalstat ..." and " : cpustat ...".
The same parser reads v1 `memory.kmem.slabinfo` (<= 5.8), which prints the same rows.
Repeated cache names (seen with per-memcg summing and with old kernels) are kept as rows.
"""

from __future__ import annotations

import os

from app.collector.errors import ParseError
from app.collector.sources._files import parse_int, read_text
from app.domain.samples import SlabinfoRow

SOURCE = "slabinfo"


def parse_slabinfo(path: str, text: str, *, allow_empty: bool = False) -> list[SlabinfoRow]:
    """Parse slabinfo text; raise ParseError with the line of the first malformed row."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        if allow_empty:
            return []
        raise ParseError(path, 1, "empty file, expected 'slabinfo - version: 2.1'")
    head = lines[0].strip()
    if not head.startswith("slabinfo - version:"):
        raise ParseError(path, 1, f"expected 'slabinfo - version: 2.1', got {head[:60]!r}")
    version = head.split(":", 1)[1].strip().split()[0] if ":" in head else ""
    if not version.startswith("2."):
        raise ParseError(path, 1, f"unsupported slabinfo version {version!r} (want 2.x)")
    fast = _parse_columns(text)
    if fast is not None:
        return fast
    rows: list[SlabinfoRow] = []
    append = rows.append
    for lineno, line in enumerate(lines[1:], 2):
        t = line.split()
        # Fast path: the 16 tokens of a standard row (one split, eleven int()s).
        if (len(t) == 16 and t[6] == ":" and t[7] == "tunables" and t[11] == ":"
                and t[12] == "slabdata"):
            try:
                append(SlabinfoRow(t[0], int(t[1]), int(t[2]), int(t[3]), int(t[4]),
                                   int(t[5]), int(t[8]), int(t[9]), int(t[10]), int(t[13]),
                                   int(t[14]), int(t[15])))
                continue
            except ValueError:
                pass  # the slow path names the bad token
        if not t or line.startswith("#"):
            continue
        append(_parse_row(path, lineno, line))
    return rows


_INT_COLUMNS = (1, 2, 3, 4, 5, 8, 9, 10, 13, 14, 15)


def _parse_columns(text: str) -> list[SlabinfoRow] | None:
    """Parse a well-formed v2.1 body column by column (C-level map); None if not well-formed.

    Every row of a standard file has 16 tokens; when the separators sit where they must in
    every row and the row count matches the line count, whole columns are converted at once.
    Anything else (statistics variant, a name with a space, a bad number) takes the per-line
    path, which names the offending line.
    """
    _, _, body = text.partition("\n")
    if body.startswith("#"):
        _, _, body = body.partition("\n")
    tokens = body.split()
    n = len(tokens) // 16
    lines = body.count("\n") + (1 if body and not body.endswith("\n") else 0)
    if (len(tokens) != 16 * n or lines != n
            or tokens[6::16].count(":") != n or tokens[7::16].count("tunables") != n
            or tokens[11::16].count(":") != n or tokens[12::16].count("slabdata") != n):
        return None
    cols: list[list[int]] = []
    try:
        for k in _INT_COLUMNS:
            col = tokens[k::16]
            if col.count("0") == n:  # SLUB: tunables and sharedavail are always 0
                cols.append([0] * n)
            elif k == 14 and col == tokens[13::16]:  # SLUB: active_slabs == num_slabs
                cols.append(cols[-1])
            else:
                cols.append(list(map(int, col)))
    except ValueError:
        return None
    return list(map(SlabinfoRow, tokens[0::16], *cols))


def _parse_row(path: str, lineno: int, line: str) -> SlabinfoRow:
    sections = line.split(" : ")
    # The name may in principle hold spaces; the five numbers are the last tokens of part 0.
    head = sections[0].rsplit(None, 5)
    if len(head) != 6:
        raise ParseError(path, lineno, f"expected a name and 5 numbers, got {sections[0][:80]!r}")
    name = head[0].strip()
    active, num, objsize, perslab, pages = (parse_int(path, lineno, t) for t in head[1:])
    labelled: dict[str, tuple[int, ...]] = {}
    for section in sections[1:]:
        tokens = section.split()
        if not tokens:
            raise ParseError(path, lineno, "empty ' : ' section")
        labelled[tokens[0]] = tuple(parse_int(path, lineno, t) for t in tokens[1:])
    tunables = labelled.pop("tunables", None)
    slabdata = labelled.pop("slabdata", None)
    if tunables is None or len(tunables) != 3:
        raise ParseError(path, lineno, "missing or short ': tunables' section (want 3 numbers)")
    if slabdata is None or len(slabdata) != 3:
        raise ParseError(path, lineno, "missing or short ': slabdata' section (want 3 numbers)")
    return SlabinfoRow(
        name=name,
        active_objs=active,
        num_objs=num,
        objsize_bytes=objsize,
        objperslab=perslab,
        pagesperslab=pages,
        limit=tunables[0],
        batchcount=tunables[1],
        sharedfactor=tunables[2],
        active_slabs=slabdata[0],
        num_slabs=slabdata[1],
        sharedavail=slabdata[2],
        statistics=labelled or None,
    )


def read_slabinfo(proc_root: str) -> list[SlabinfoRow]:
    """Read and parse `<proc_root>/slabinfo` (mode 0400: root only)."""
    path = os.path.join(proc_root, "slabinfo")
    return parse_slabinfo(path, read_text(path))
