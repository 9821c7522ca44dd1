"""Low-level reads shared by the sources: one open per file, errors translated once."""

from __future__ import annotations

import errno
import os
import re
import stat

from app.collector.errors import ParseError, SourceUnavailable

# /proc/slabinfo on a big host is ~100 kB and memcg_slabinfo a few MB: far below this.
TEXT_MAX = 16 << 20
# sysfs attributes are at most a page (64 kB on some arches).
SMALL_MAX = 64 << 10
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 16


def read_text(path: str, limit: int = TEXT_MAX) -> str:
    """Read a whole kernel text file, at most `limit` bytes; SourceUnavailable on any failure.

    Never blocks: opened O_NONBLOCK and only regular files are read (kernel pseudo-files in
    /proc and /sys are regular, with st_size 0 or 4096), so a FIFO or a symlink to /dev/zero
    in place of a file is an error, not a hung tick or an exhausted memory.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as err:
        raise _unavailable(path, err) from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SourceUnavailable(path, "not a regular file (a FIFO, device or socket?): "
                                    "not read")
        parts = []
        size = 0
        # One read gives a whole seq_file page; loop (bounded) for the bigger ones.
        while chunk := os.read(fd, min(_CHUNK, limit + 1 - size)):
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise SourceUnavailable(path, f"longer than {limit} bytes: not read")
    except OSError as err:
        raise _unavailable(path, err) from err
    finally:
        os.close(fd)
    # Kernel text is ASCII; cgroup and cache names may hold any byte but '/' and NUL.
    return b"".join(parts).decode("utf-8", "backslashreplace")


def _unavailable(path: str, err: OSError) -> SourceUnavailable:
    if isinstance(err, FileNotFoundError):
        return SourceUnavailable(path, "no such file (missing, or removed mid-scrape)")
    if isinstance(err, PermissionError):
        return SourceUnavailable(path, "permission denied (run as root?)")
    if err.errno == errno.ENODEV:
        return SourceUnavailable(path, "no such device (removed mid-scrape)")
    return SourceUnavailable(path, os.strerror(err.errno or 0) or str(err))


def parse_int(path: str, lineno: int, token: str) -> int:
    """Parse one decimal integer token, or raise ParseError naming the file and line."""
    try:
        return int(token)
    except ValueError:
        raise ParseError(path, lineno, f"expected an integer, got {token[:40]!r}") from None


def read_int(path: str) -> int:
    """Read a file holding one integer (e.g. `order`, `memory.current`)."""
    text = read_text(path, SMALL_MAX)
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
