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


class FileGone(SourceUnavailable):
    """The file is not there (ENOENT, ENODEV): for a cgroup file, the cgroup may be going."""


def read_bytes(path: str, limit: int = TEXT_MAX, *, one_record: bool = False) -> bytes:
    """A kernel file's bytes, at most `limit`; SourceUnavailable (FileGone when missing).

    Never blocks and never reads without bound: opened O_NONBLOCK (a FIFO in place of a file
    must not hang the tick), regular files only (kernel pseudo-files in /proc and /sys are
    regular, with st_size 0 or 4096; a symlink to /dev/zero is not), and a file longer than
    `limit` is an error, not an exhausted memory.

    `one_record`: the file is printed by one seq_file show() (cgroup control files such as
    memory.stat, cgroup.stat, memory.current), so a read shorter than the buffer is all of
    it: one read() instead of two on the walk's hot path. Files of many records
    (/proc/slabinfo) come a page a read and are read to EOF.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as err:
        raise _unavailable(path, err) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SourceUnavailable(path, "not a regular file (a FIFO, device or socket?): "
                                    "not read")
        data = os.read(fd, min(_CHUNK, limit + 1))
        if data and not (one_record and len(data) < _CHUNK):
            parts = [data]
            size = len(data)
            while size <= limit and (chunk := os.read(fd, min(_CHUNK, limit + 1 - size))):
                parts.append(chunk)
                size += len(chunk)
            data = b"".join(parts)
        if len(data) > limit:
            raise SourceUnavailable(path, f"longer than {limit} bytes: not read")
    except OSError as err:
        raise _unavailable(path, err) from None
    finally:
        os.close(fd)
    return data


def read_text(path: str, limit: int = TEXT_MAX) -> str:
    """A whole kernel text file (see read_bytes), decoded; SourceUnavailable on any failure."""
    # Kernel text is ASCII; cgroup and cache names may hold any byte but '/' and NUL.
    return read_bytes(path, limit).decode("utf-8", "backslashreplace")


def _unavailable(path: str, err: OSError) -> SourceUnavailable:
    if isinstance(err, FileNotFoundError):
        return FileGone(path, "no such file (missing, or removed mid-scrape)")
    if isinstance(err, PermissionError):
        return SourceUnavailable(path, "permission denied (run as root?)")
    if err.errno == errno.ENODEV:
        return FileGone(path, "no such device (removed mid-scrape)")
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


_FLAT = re.compile(r"(?:[!-~]+ -?[0-9]+\n)*(?:[!-~]+ -?[0-9]+)?")
_KEY = re.compile(r"[!-~]{1,256}")  # a kernel key: printable ASCII, no space


def parse_flat_keyed(path: str, text: str, errors: list[ParseError] | None = None
                     ) -> dict[str, int]:
    """Parse `key value` lines (memory.stat, cgroup.stat, vmstat); keep every key.

    A bad line raises ParseError, or with `errors` is recorded there and skipped: every good
    line is kept.
    """
    # Fast path: the whole text is well-formed (one C-level match), then one split.
    if _FLAT.fullmatch(text):
        tokens = text.split()
        return dict(zip(tokens[0::2], map(int, tokens[1::2]), strict=True))
    out: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2 or not _KEY.fullmatch(parts[0]):
                raise ParseError(path, lineno, f"expected 'key value', got {line[:80]!r}")
            out[parts[0]] = parse_int(path, lineno, parts[1])
        except ParseError as err:
            if errors is None:
                raise
            errors.append(err)
    return out


def fs_name(name: str | bytes) -> str:
    """A directory name as text that is always encodable: undecodable bytes become escapes."""
    if isinstance(name, str) and name.isascii():
        return name  # the common case, and no copy: tables share the collector's path strings
    raw = os.fsencode(name)
    return raw.decode("utf-8", "backslashreplace")


_ESCAPED = re.compile(r"\\x([89a-f][0-9a-f])")


def raw_name(shown: str) -> str:
    """fs_name's inverse: a stored path as the listing's raw (surrogate-escaped) name.

    fs_name writes each byte that is not UTF-8 (0x80-0xff) as `\\xNN`; os.fsdecode makes it
    the surrogate U+DCNN. A name holding a literal `\\x8f` reads the same way: callers that
    can look at the directory decide (see CgroupTracker.seed).
    """
    if "\\x" not in shown:
        return shown
    return _ESCAPED.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), shown)
