"""`python -m app.collector`: the collector daemon alone, with as little imported as possible.

`slabscope collect` migrates the database, then execs this so the long-running process holds
neither the CLI framework nor Alembic (issue 2 budget: 60 MB RSS; see bench/scrape.py).
"""

from __future__ import annotations

import argparse
import logging
import sys

from app.config import get_settings


def main(argv: list[str] | None = None) -> int:
    """Run the daemon with the settings of the environment."""
    p = argparse.ArgumentParser(prog="python -m app.collector")
    p.add_argument("--ticks", type=int, help="stop after this many ticks")
    a = p.parse_args(argv)
    s = get_settings()  # SLABSCOPE_* from the environment, as `slabscope collect` set them
    logging.basicConfig(level=getattr(logging, s.log_level.upper(), logging.INFO),
                        stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from app.collector.daemon import Daemon
    from app.collector.scrape import Collector, CollectorOptions
    from app.collector.sources.host import read_hostname
    from app.db.session import make_engine, make_session_factory

    collector = Collector(CollectorOptions(
        proc_root=s.proc_root, sys_root=s.sys_root, era=s.era, hostname=s.hostname,
        page_size_bytes=s.page_size_bytes, slub_stats=s.slub_stats,
        slub_objects=s.slub_objects))
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


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


if __name__ == "__main__":
    sys.exit(main())
