"""`python -m app.collector`: the collector daemon alone, with as little imported as possible.

It only builds its configuration, the collector and a sink (database or push) and runs the
one loop of `daemon.Daemon`; push mode imports no database code.

`slabscope collect` validates the settings, migrates the database, then execs this with the
settings as JSON on an inherited pipe (`--settings-fd`): the long-running process holds
neither the CLI framework, nor Alembic, nor pydantic (8 MB at import; bench/scrape.py).
Started alone, it reads the environment through `app.config`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.collector.scrape import CollectorOptions, options_from_values

if TYPE_CHECKING:
    from app.collector.push import PushSink


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """What the daemon needs of the settings, as plain values."""

    options: CollectorOptions
    database_url: str
    push_url: str | None
    token_file: str | None
    spool_dir: str
    spool_max_files: int
    interval_seconds: float
    log_level: str


def config_from(v: Mapping[str, Any]) -> DaemonConfig:
    """The daemon's configuration from settings values (field name -> value)."""
    return DaemonConfig(options_from_values(v), v["database_url"], v["push_url"],
                        v["token_file"], v["spool_dir"], int(v["spool_max_files"]),
                        float(v["collect_interval_seconds"]), v["log_level"])


def read_config(fd: int | None) -> DaemonConfig:
    """From the pipe `slabscope collect` wrote, or else from the environment (pydantic)."""
    if fd is not None:
        with os.fdopen(fd, "rb") as f:
            return config_from(json.load(f))
    from app.config import get_settings
    return config_from(get_settings().model_dump())


def main(argv: list[str] | None = None) -> int:
    """Run the daemon with the settings it was given."""
    p = argparse.ArgumentParser(prog="python -m app.collector")
    p.add_argument("--ticks", type=int, help="stop after this many ticks")
    p.add_argument("--settings-fd", type=int, help="read the settings as JSON from this fd")
    a = p.parse_args(argv)
    c = read_config(a.settings_fd)
    logging.basicConfig(level=getattr(logging, c.log_level.upper(), logging.INFO),
                        stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from app.collector.daemon import Daemon, Sink
    from app.collector.scrape import Collector
    collector = Collector(c.options)
    log = logging.getLogger("slabscope")
    dispose = None
    sink: Sink
    if c.push_url:
        push = _push_sink(c, c.push_url)
        if push is None:
            return 2
        sink = push
        log.info("collecting every %.1fs, pushing to %s (spool %s)", c.interval_seconds,
                 c.push_url, c.spool_dir)
    else:
        from app.collector.dbsink import DatabaseSink
        from app.collector.sources.host import read_hostname
        from app.db.session import make_engine, make_session_factory
        engine = make_engine(c.database_url)
        dispose = engine.dispose
        db = DatabaseSink(make_session_factory(engine))
        o = c.options
        db.seed(collector, o.hostname or read_hostname(o.proc_root) or "unknown")
        sink = db
        log.info("collecting every %.1fs into %s", c.interval_seconds, _redact(c.database_url))
    daemon = Daemon(collector, sink, c.interval_seconds, max_ticks=a.ticks)
    daemon.install_signal_handlers()
    daemon.run()
    if dispose is not None:
        dispose()
    return 0


def _push_sink(c: DaemonConfig, url: str) -> PushSink | None:
    """Push mode: spool and send; no database code in this process."""
    from app.collector.push import Pusher, PushSink, Spool
    if not c.token_file:
        logging.getLogger("slabscope").error("push mode needs a token file "
                                             "(--token-file or SLABSCOPE_TOKEN_FILE)")
        return None
    try:
        token = Path(c.token_file).read_text().strip()
    except OSError as err:
        logging.getLogger("slabscope").error("cannot read token file %s: %s", c.token_file,
                                             err.strerror)
        return None
    spool = Spool(c.spool_dir, c.spool_max_files)
    return PushSink(spool, Pusher(url, token, spool), Path(c.spool_dir, "heartbeat"))


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


if __name__ == "__main__":
    sys.exit(main())
