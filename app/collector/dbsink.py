"""The database sink: one transaction per snapshot through `store.write_snapshot`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.collector.daemon import SinkError, short
from app.collector.scrape import Collector
from app.domain.samples import Snapshot

log = logging.getLogger("slabscope.collector")

Writer = Callable[[Session, Snapshot], object]


def _store_write(session: Session, snap: Snapshot) -> object:
    from app.db import store  # the models load with the first write, not at import
    return store.write_snapshot(session, snap)


class DatabaseSink:
    """Writes each snapshot in its own transaction; a database error is a SinkError."""

    def __init__(self, sessions: sessionmaker[Session], write: Writer = _store_write) -> None:
        self.sessions = sessions
        self._write = write

    def write(self, snap: Snapshot) -> None:
        """Store one snapshot (the caller keeps it on SinkError)."""
        try:
            with self.sessions.begin() as s:
                self._write(s, snap)
        except SQLAlchemyError as err:
            raise SinkError(f"database write failed: {short(err)}") from err

    def seed(self, collector: Collector, hostname: str) -> None:
        """Carry removal tracking over a restart: the last stored cgroups are 'previous'."""
        from app.collector.sources.host import read_boot_id
        from app.db import store
        boot = read_boot_id(collector.options.proc_root)
        try:
            with self.sessions() as s:
                seed = store.latest_cgroups(s, hostname, boot)
                if seed is not None:  # inside the session: the cgroups may be streamed
                    collector.seed_previous(*seed)
        except SQLAlchemyError as err:
            log.warning("could not read the last scrape to seed removals: %s", short(err))

    def close(self) -> None:
        """Nothing pending beyond the daemon's backlog."""
