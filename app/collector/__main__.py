"""`python -m app.collector`: the collector daemon alone, with as little imported as possible.

`slabscope collect` migrates the database, then execs this so the long-running process holds
neither the CLI framework nor Alembic (issue 2 budget: 60 MB RSS; see bench/scrape.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from app.config import Settings, get_settings


def main(argv: list[str] | None = None) -> int:
    """Run the daemon with the settings of the environment."""
    p = argparse.ArgumentParser(prog="python -m app.collector")
    p.add_argument("--ticks", type=int, help="stop after this many ticks")
    a = p.parse_args(argv)
    s = get_settings()  # SLABSCOPE_* from the environment, as `slabscope collect` set them
    logging.basicConfig(level=getattr(logging, s.log_level.upper(), logging.INFO),
                        stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if s.push_url:
        return _push(s, s.push_url, a.ticks)
    from app.collector.daemon import Daemon
    from app.collector.scrape import Collector, options_from
    from app.collector.sources.host import read_hostname
    from app.db.session import make_engine, make_session_factory

    collector = Collector(options_from(s))
    engine = make_engine(s.database_url)
    daemon = Daemon(collector, make_session_factory(engine), s.collect_interval_seconds,
                    max_ticks=a.ticks)
    daemon.install_signal_handlers()
    daemon.seed_from_database(s.hostname or read_hostname(s.proc_root) or "unknown")
    logging.getLogger("slabscope").info("collecting every %.1fs into %s",
                                        s.collect_interval_seconds,
                                        _redact(s.database_url))
    daemon.run()
    engine.dispose()
    return 0


def _push(s: Settings, url: str, ticks: int | None) -> int:
    """Push mode: collect, spool, send; no database in this process."""
    import gzip
    import json
    import signal
    import threading
    import time

    from app.collector.oncelog import OnceLog
    from app.collector.push import Pusher, Spool, new_snapshot_id
    from app.collector.scrape import Collector, options_from
    from app.domain.snapshot_json import snapshot_to_dict
    if not s.token_file:
        logging.getLogger("slabscope").error("push mode needs a token file "
                                             "(--token-file or SLABSCOPE_TOKEN_FILE)")
        return 2
    try:
        token = Path(s.token_file).read_text().strip()
    except OSError as err:
        logging.getLogger("slabscope").error("cannot read token file %s: %s", s.token_file,
                                             err.strerror)
        return 2
    collector = Collector(options_from(s))
    spool = Spool(s.spool_dir, s.spool_max_files)
    pusher = Pusher(url, token, spool)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    once = OnceLog(logging.getLogger("slabscope.collector"))
    log = logging.getLogger("slabscope")
    log.info("collecting every %.1fs, pushing to %s (spool %s)", s.collect_interval_seconds,
             url, s.spool_dir)
    n = 0
    while not stop.is_set():
        start = time.monotonic()
        snap = collector.collect()
        once.snapshot_errors(snap)
        sid = new_snapshot_id()
        body = gzip.compress(json.dumps({"snapshot_id": sid, "snapshot": snapshot_to_dict(snap),
                                         "spool_dropped_total": spool.dropped}).encode(), 5)
        spool.put(sid, body)
        pusher.flush()
        Path(s.spool_dir, "heartbeat").touch()  # the container health check looks at it
        n += 1
        if ticks is not None and n >= ticks:
            break
        stop.wait(max(0.0, s.collect_interval_seconds - (time.monotonic() - start)))
    pusher.flush()
    log.info("stopped after %d ticks (%d sent, %d pending, %d dropped)", n, pusher.sent,
             len(spool.pending()), spool.dropped)
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


if __name__ == "__main__":
    sys.exit(main())
