"""Logging each distinct source error once per process (shared by the database and push
daemons; it imports no database code, so a push-mode collector loads no driver)."""

from __future__ import annotations

import logging

from app.domain.samples import Snapshot


class OnceLog:
    """Logs each distinct (source, message) once per process: no repeated noise per tick."""

    def __init__(self, logger: logging.Logger) -> None:
        self._seen: set[tuple[str, str, str]] = set()
        self._log = logger

    def snapshot_errors(self, snap: Snapshot) -> None:
        """Log the errors of a snapshot that were not logged before."""
        for e in snap.errors:
            key = (e.source, e.path, e.message)
            if key not in self._seen:
                self._seen.add(key)
                self._log.warning("source %s: %s: %s (logged once)", e.source, e.path, e.message)
