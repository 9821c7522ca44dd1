"""/proc/cgroups, /proc/meminfo, /proc/vmstat and per-node meminfo."""

from __future__ import annotations

import os
import re

from app.collector.errors import ParseError
from app.collector.sources._files import parse_flat_keyed, parse_int, read_text
from app.domain.samples import ProcCgroupsRow


def parse_proc_cgroups(path: str, text: str) -> list[ProcCgroupsRow]:
    """Parse /proc/cgroups: `#subsys_name hierarchy num_cgroups enabled`, tab separated."""
    rows: list[ProcCgroupsRow] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 4:
            raise ParseError(path, lineno, f"expected 4 fields, got {len(parts)}: {line[:80]!r}")
        rows.append(
            ProcCgroupsRow(
                subsys_name=parts[0],
                hierarchy=parse_int(path, lineno, parts[1]),
                num_cgroups=parse_int(path, lineno, parts[2]),
                enabled=parse_int(path, lineno, parts[3]) != 0,
            )
        )
    return rows


def read_proc_cgroups(proc_root: str) -> list[ProcCgroupsRow]:
    """Read `<proc_root>/cgroups`."""
    path = os.path.join(proc_root, "cgroups")
    return parse_proc_cgroups(path, read_text(path))


_MEMINFO = re.compile(r"^(?:Node\s+\d+\s+)?([^:\s]+):\s+(\d+)(?:\s+(kB))?\s*$")


def parse_meminfo(path: str, text: str, errors: list[ParseError] | None = None
                  ) -> dict[str, int]:
    """Parse meminfo (or a node's meminfo): kB values become bytes, unitless ones stay counts.

    A bad line raises ParseError, or with `errors` is recorded there and skipped.
    """
    out: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        t = line.split()
        # Fast path: "Key: 123 kB" or "Key: 123" (the form of every /proc/meminfo line).
        n = len(t)
        if ((n == 3 and t[2] == "kB") or n == 2) and t[0].endswith(":") and t[1].isdigit():
            out[t[0][:-1]] = int(t[1]) * 1024 if n == 3 else int(t[1])
            continue
        if not t:
            continue
        m = _MEMINFO.match(line)
        if m is None:
            err = ParseError(path, lineno, f"expected 'Key: value [kB]', got {line[:80]!r}")
            if errors is None:
                raise err
            errors.append(err)
            continue
        value = int(m.group(2))
        out[m.group(1)] = value * 1024 if m.group(3) else value
    return out


def read_meminfo(proc_root: str, errors: list[ParseError] | None = None) -> dict[str, int]:
    """Read `<proc_root>/meminfo` (with `errors`: bad lines recorded, good ones kept)."""
    path = os.path.join(proc_root, "meminfo")
    return _not_empty(path, parse_meminfo(path, read_text(path), errors))


def read_vmstat(proc_root: str, errors: list[ParseError] | None = None) -> dict[str, int]:
    """Read `<proc_root>/vmstat` (reclaim activity: pgscan, pgsteal, slabs_scanned, ...)."""
    path = os.path.join(proc_root, "vmstat")
    return _not_empty(path, parse_flat_keyed(path, read_text(path), errors))


def _not_empty(path: str, figures: dict[str, int]) -> dict[str, int]:
    # The kernel always prints these files whole: nothing at all is a bad file, not zeros.
    if not figures:
        raise ParseError(path, 0, "empty file, expected one figure a line")
    return figures


def read_node_meminfo(sys_root: str) -> dict[int, dict[str, int]]:
    """Read `<sys_root>/devices/system/node/node<N>/meminfo` for every node present."""
    base = os.path.join(sys_root, "devices", "system", "node")
    out: dict[int, dict[str, int]] = {}
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for name in names:
        if name.startswith("node") and name[4:].isdigit():
            path = os.path.join(base, name, "meminfo")
            if os.path.exists(path):
                out[int(name[4:])] = parse_meminfo(path, read_text(path))
    return out
