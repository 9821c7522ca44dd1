"""The collector's exceptions.

    CollectorError
    ├── SourceUnavailable    a file is missing, unreadable (permissions) or vanished mid-read
    └── ParseError           a file was read but its text is not the documented format

Both carry the path; ParseError also the 1-based line number (0 when the whole file is bad).
A scrape turns them into `SourceError` records and goes on; they never end a tick.
"""

from __future__ import annotations


class CollectorError(Exception):
    """Base of the collector's errors; `path` names the file."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class SourceUnavailable(CollectorError):
    """The file could not be read: missing, permission denied, or gone mid-scrape."""


class ParseError(CollectorError):
    """The file's text is not in the documented format."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(path, f"line {line}: {message}" if line else message)
        self.line = line
        self.reason = message
