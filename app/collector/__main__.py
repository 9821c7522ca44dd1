"""`python -m app.collector`: the collector daemon alone, with as little imported as possible.

It only builds the settings, the collector and a sink (database or push) and runs the one
loop of `daemon.Daemon`; push mode imports no database code.

`slabscope collect` migrates the database, then execs this so the long-running process holds
neither the CLI framework nor Alembic (issue 2 budget: 60 MB RSS; see bench/scrape.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Settings, get_settings

if TYPE_CHECKING:
    from app.collector.push import PushSink


def main(argv: list[str] | None = None) -> int:
    """Run the daemon with the settings of the environment."""
    p = argparse.ArgumentParser(prog="python -m app.collector")
    p.add_argument("--ticks", type=int, help="stop after this many ticks")
    a = p.parse_args(argv)
    s = get_settings()  # SLABSCOPE_* from the environment, as `slabscope collect` set them
    logging.basicConfig(level=getattr(logging, s.log_level.upper(), logging.INFO),
                        stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from app.collector.daemon import Daemon, Sink
    from app.collector.scrape import Collector, options_from
    collector = Collector(options_from(s))
    log = logging.getLogger("slabscope")
    dispose = None
    sink: Sink
    if s.push_url:
        push = _push_sink(s, s.push_url)
        if push is None:
            return 2
        sink = push
        log.info("collecting every %.1fs, pushing to %s (spool %s)",
                 s.collect_interval_seconds, s.push_url, s.spool_dir)
    else:
        from app.collector.dbsink import DatabaseSink
        from app.collector.sources.host import read_hostname
        from app.db.session import make_engine, make_session_factory
        engine = make_engine(s.database_url)
        dispose = engine.dispose
        db = DatabaseSink(make_session_factory(engine))
        db.seed(collector, s.hostname or read_hostname(s.proc_root) or "unknown")
        sink = db
        log.info("collecting every %.1fs into %s", s.collect_interval_seconds,
                 _redact(s.database_url))
    daemon = Daemon(collector, sink, s.collect_interval_seconds, max_ticks=a.ticks)
    daemon.install_signal_handlers()
    daemon.run()
    if dispose is not None:
        dispose()
    return 0


def _push_sink(s: Settings, url: str) -> PushSink | None:
    """Push mode: spool and send; no database code in this process."""
    from app.collector.push import Pusher, PushSink, Spool
    if not s.token_file:
        logging.getLogger("slabscope").error("push mode needs a token file "
                                             "(--token-file or SLABSCOPE_TOKEN_FILE)")
        return None
    try:
        token = Path(s.token_file).read_text().strip()
    except OSError as err:
        logging.getLogger("slabscope").error("cannot read token file %s: %s", s.token_file,
                                             err.strerror)
        return None
    spool = Spool(s.spool_dir, s.spool_max_files)
    return PushSink(spool, Pusher(url, token, spool), Path(s.spool_dir, "heartbeat"))


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


if __name__ == "__main__":
    sys.exit(main())
