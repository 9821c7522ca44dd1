"""Low-level reads shared by the sources: one open per file, errors translated once."""

from __future__ import annotations

import errno
import os
import re

from app.collector.errors import ParseError, SourceUnavailable


def read_text(path: str) -> str:
    """Read a whole kernel text file; raise SourceUnavailable on any OS error."""
    try:
        with open(path, "rb", buffering=0) as f:
            data = f.read()
    except FileNotFoundError as err:
        raise SourceUnavailable(path, "no such file (missing, or removed mid-scrape)") from err
    except PermissionError as err:
        raise SourceUnavailable(path, "permission denied (run as root?)") from err
    except OSError as err:
        if err.errno == errno.ENODEV:
            raise SourceUnavailable(path, "no such device (removed mid-scrape)") from err
        raise SourceUnavailable(path, os.strerror(err.errno or 0) or str(err)) from err
    # Kernel text is ASCII; cgroup and cache names may hold any byte but '/' and NUL.
    return data.decode("utf-8", "backslashreplace")


def parse_int(path: str, lineno: int, token: str) -> int:
    """Parse one decimal integer token, or raise ParseError naming the file and line."""
    try:
        return int(token)
    except ValueError:
        raise ParseError(path, lineno, f"expected an integer, got {token[:40]!r}") from None


def read_int(path: str) -> int:
    """Read a file holding one integer (e.g. `order`, `memory.current`)."""
    text = read_text(path)
    token = text.strip()
    if not token:
        raise ParseError(path, 1, "empty file, expected an integer")
    return parse_int(path, 1, token.split()[0])


_FLAT = re.compile(r"(?:[^\s]+ -?[0-9]+\n)*(?:[^\s]+ -?[0-9]+)?")


def parse_flat_keyed(path: str, text: str) -> dict[str, int]:
    """Parse `key value` lines (memory.stat, cgroup.stat, vmstat); keep every key."""
    # Fast path: the whole text is well-formed (one C-level match), then one split.
    if _FLAT.fullmatch(text):
        tokens = text.split()
        return dict(zip(tokens[0::2], map(int, tokens[1::2]), strict=True))
    out: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ParseError(path, lineno, f"expected 'key value', got {line[:80]!r}")
        out[parts[0]] = parse_int(path, lineno, parts[1])
    return out


def fs_name(name: str | bytes) -> str:
    """A directory name as text that is always encodable: undecodable bytes become escapes."""
    if isinstance(name, str) and name.isascii():
        return name  # the common case, and no copy: tables share the collector's path strings
    raw = os.fsencode(name)
    return raw.decode("utf-8", "backslashreplace")
