"""`make run`: migrate once, then the collector daemon and the dashboard; Ctrl-C stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def main() -> int:
    """Start the collector and the web app on this host and print the dashboard's address."""
    env = dict(os.environ)
    url = env.setdefault("SLABSCOPE_DATABASE_URL", "sqlite:///slabscope.db")
    if subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env,
                      check=False).returncode != 0:
        return 2
    port = env.get("SLABSCOPE_WEB_PORT", "8000")
    addr = env.get("SLABSCOPE_WEB_HOST", "127.0.0.1")
    procs = [
        subprocess.Popen([sys.executable, "-m", "app.cli", "collect"], env=env),
        subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--no-migrate"], env=env),
    ]
    if os.geteuid() != 0:
        print("slabscope: not root: /proc/slabinfo (mode 0400) will be missing; "
              "run `sudo make run` for every source", flush=True)
    print(f"slabscope: collector and dashboard running on {url}\n"
          f"slabscope: open http://{addr}:{port}  (Ctrl-C stops both)", flush=True)
    code = 0
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        code = 1  # one of them ended on its own
    except KeyboardInterrupt:
        pass
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    return code


if __name__ == "__main__":
    sys.exit(main())
