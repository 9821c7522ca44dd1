"""`make run`: migrate, then run the collector daemon and (once it exists) the web app."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def main() -> int:
    """Start the collector (and the dashboard) on this host; Ctrl-C stops everything."""
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-m", "app.cli", "collect"], env=env)]
    print("slabscope: collector started; database", env.get("SLABSCOPE_DATABASE_URL",
                                                           "sqlite:///slabscope.db"), flush=True)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)
    return max((p.returncode or 0) for p in procs)


if __name__ == "__main__":
    sys.exit(main())
