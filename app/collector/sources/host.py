"""Host identity: hostname, machine-id, boot id, kernel release, CPUs, NUMA nodes."""

from __future__ import annotations

import os

from app.collector.errors import CollectorError, ParseError
from app.collector.sources._files import read_text


def wire_text(text: str, limit: int) -> str:
    """Text a snapshot can carry: NUL shown as `\\x00` (no database text holds one) and at
    most `limit` characters (the wire schema's bound), so a hostile file cannot make the
    whole snapshot one the server refuses."""
    return text.replace("\x00", "\\x00")[:limit]


def _first_line(path: str, limit: int = 255) -> str | None:
    try:
        text = read_text(path).strip()
    except CollectorError:
        return None
    return wire_text(text.splitlines()[0].strip(), limit) if text else None


def parse_cpu_list(path: str, text: str) -> int:
    """Count the CPUs (or nodes) of a kernel range list such as `0-3,8-11`."""
    total = 0
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if hi else a
        except ValueError:
            raise ParseError(path, 1, f"expected a range list like '0-3,8', got {text[:40]!r}") \
                from None
        if b < a:
            raise ParseError(path, 1, f"range {part!r} ends before it starts")
        total += b - a + 1
    return total


def read_release(proc_root: str) -> str | None:
    """`uname -r` of the host whose /proc this is."""
    return _first_line(os.path.join(proc_root, "sys", "kernel", "osrelease"))


def read_hostname(proc_root: str) -> str | None:
    """The host's name from /proc/sys/kernel/hostname."""
    return _first_line(os.path.join(proc_root, "sys", "kernel", "hostname"))


def read_boot_id(proc_root: str) -> str | None:
    """The boot id (changes at every boot; per-boot constants are keyed by it)."""
    return _first_line(os.path.join(proc_root, "sys", "kernel", "random", "boot_id"), 64)


def read_machine_id(proc_root: str) -> str | None:
    """`/etc/machine-id` of the host (beside its /proc)."""
    host_root = os.path.dirname(os.path.abspath(proc_root))
    return _first_line(os.path.join(host_root, "etc", "machine-id"), 64)


def read_possible(sys_root: str, what: str) -> int | None:
    """Number of possible CPUs (`what="cpu"`) or NUMA nodes (`what="node"`)."""
    path = os.path.join(sys_root, "devices", "system", what, "possible")
    try:
        return parse_cpu_list(path, read_text(path))
    except CollectorError:
        return None
