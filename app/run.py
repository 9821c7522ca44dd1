"""`make run`: migrate once, then the collector daemon and the dashboard; Ctrl-C stops both."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable


def main() -> int:
    """Start the collector and the web app on this host and print the dashboard's address."""
    env = dict(os.environ)
    url = env.setdefault("SLABSCOPE_DATABASE_URL", "sqlite:///slabscope.db")
    if subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env,
                      check=False).returncode != 0:
        return 2
    port = env.get("SLABSCOPE_WEB_PORT", "8000")
    addr = env.get("SLABSCOPE_WEB_HOST", "127.0.0.1")
    from app.webserver import cannot_listen
    problem = cannot_listen(addr, int(port)) if port.isdigit() else None
    if problem:
        print(f"slabscope: cannot listen on {addr}:{port}: {problem}; another server there? "
              f"try `make run PORT={int(port) + 1}`", file=sys.stderr, flush=True)
        return 2
    restore = _own_terminal()
    procs = [
        subprocess.Popen([sys.executable, "-m", "app.cli", "collect"], env=env),
        subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--no-migrate"], env=env),
    ]
    if os.geteuid() != 0:
        print("slabscope: not root: /proc/slabinfo (mode 0400) will be missing; "
              "run `sudo make run` for every source", flush=True)
    print(f"slabscope: collector and dashboard running on {url}\n"
          f"slabscope: open http://{addr}:{port}  (Ctrl-C stops both)", flush=True)
    # Ctrl-C (or a SIGTERM) asks both to stop: that is a clean end, status 0, even when a
    # child, which got the same Ctrl-C from the terminal, ends first.
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    time.sleep(0.3)  # a Ctrl-C that reached the children first reaches us within this
    code = 0 if stopping else 1  # 1: one of them ended on its own
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    restore()
    return code


def _own_terminal() -> Callable[[], None]:
    """Take the terminal's foreground, as a shell does for a job, so that Ctrl-C reaches this
    process and its children only: `make`, our parent, never sees it and ends with our
    status (a make that gets SIGINT itself always ends "Interrupt", 130). Returns what gives
    the terminal back. Without a terminal (CI, tests, a service) nothing changes."""
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            return lambda: None
        before = os.tcgetpgrp(fd)
        os.setpgid(0, 0)
        # A background group may not take the terminal without this (SIGTTOU stops it).
        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        os.tcsetpgrp(fd, os.getpgrp())
    except (OSError, ValueError):
        return lambda: None

    def give_back() -> None:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, before)
        signal.signal(signal.SIGTTOU, old)
    return give_back


if __name__ == "__main__":
    sys.exit(main())
