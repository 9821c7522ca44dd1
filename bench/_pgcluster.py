"""A throwaway PostgreSQL cluster of the bench's own, so it can be restarted under load.

Other sessions share the server at 127.0.0.1:5432: restarting it would break their tests.
This one lives in a temporary directory, listens on a free loopback port, runs as the
`postgres` user (PostgreSQL refuses root), trusts local connections, and is removed on stop.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise SystemExit(f"no PostgreSQL {name} under /usr/lib/postgresql/*/bin")
    return found[-1]


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Cluster:
    """initdb, start, restart and remove one private cluster."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="slabscope-pg-"))
        self.data = self.dir / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres([_bin("initdb"), "-D", str(self.data), "-U", "postgres",
                                     "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True)
        self.start()

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", str(self.data), "-o", opts,
                                     "-l", str(self.dir / "log"), "-w", *args]),
                       check=True, capture_output=True)

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> float:
        """Restart (fast shutdown: sessions cut); return the seconds it took."""
        t = time.monotonic()
        self._ctl("-m", "fast", "restart")
        return time.monotonic() - t

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
