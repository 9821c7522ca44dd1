"""Push mode: every snapshot goes to a bounded on-disk spool, then to the server, in order.

Each tick's snapshot is written to the spool first (one gzip file, renamed into place), then
everything pending is sent oldest first. 2xx ("stored" or "duplicate": the server is
idempotent by snapshot id) removes a file. A refused token stops sending and keeps the spool
(nothing is lost while someone fixes the token). An invalid snapshot (413/422) moves to
`rejected/`, never resent and never deleted. An unreachable server or a 5xx stops this round;
the next tick tries again. Past `max_files` the oldest snapshots are dropped, counted (sent to
the server with every push as `X-Slabscope-Spool-Dropped`, exported at /metrics) and logged.
Only the standard library and our domain: a push-mode collector loads no database driver.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
import uuid
import zlib
from pathlib import Path

from app.collector.daemon import SinkError
from app.domain.samples import Snapshot
from app.domain.snapshot_json import encode_snapshot

log = logging.getLogger("slabscope.push")


class Spool:
    """A directory of pending snapshots, oldest first, bounded by count."""

    def __init__(self, directory: str, max_files: int) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "rejected").mkdir(exist_ok=True)
        self.max_files = max_files
        self._dropped_file = self.dir / "dropped_total"
        self.dropped = int(self._dropped_file.read_text()) if self._dropped_file.exists() else 0

    def put(self, snapshot_id: str, body: bytes) -> Path:
        """Write one snapshot durably; drop (and count) the oldest past the bound."""
        name = f"{time.time_ns():020d}-{snapshot_id}.json.gz"
        tmp = self.dir / (name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        path = self.dir / name
        os.replace(tmp, path)
        pending = self.pending()
        while len(pending) > self.max_files:
            oldest = pending.pop(0)
            oldest.unlink(missing_ok=True)
            self.dropped += 1
            self._dropped_file.write_text(str(self.dropped))
            log.error("spool full (%d snapshots): dropped the oldest, %s (%d dropped in all)",
                      self.max_files, oldest.name, self.dropped)
        return path

    def pending(self) -> list[Path]:
        """Pending snapshots, oldest first."""
        return sorted(p for p in self.dir.glob("*.json.gz") if p.is_file())

    def reject(self, path: Path) -> None:
        """Keep a snapshot the server refused as invalid, out of the way."""
        os.replace(path, self.dir / "rejected" / path.name)


class Pusher:
    """Sends spooled snapshots to POST <url>/api/v1/ingest with a bearer token."""

    def __init__(self, url: str, token: str, spool: Spool, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/") + "/api/v1/ingest"
        self.token = token
        self.spool = spool
        self.timeout = timeout
        self.sent = 0
        self.refused = False
        self._warned: set[str] = set()

    def _once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.error(msg, *args)

    def flush(self) -> int:
        """Send pending snapshots in order until one fails; return how many went."""
        n = 0
        for path in self.spool.pending():
            body = path.read_bytes()
            req = urllib.request.Request(self.url, data=body, method="POST", headers={
                "Authorization": f"Bearer {self.token}", "Content-Encoding": "gzip",
                "Content-Type": "application/json",
                "X-Slabscope-Spool-Dropped": str(self.spool.dropped)})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    json.loads(resp.read() or b"{}")
            except urllib.error.HTTPError as err:
                detail = err.read()[:300].decode("utf-8", "replace")
                if err.code in (401, 403):
                    self.refused = True
                    self._once("refused", "server refused the token (%s %s): snapshots stay "
                               "in %s until the token is fixed", err.code, detail, self.spool.dir)
                    return n
                if err.code in (413, 422):
                    log.error("server rejected %s (%s %s): kept in rejected/", path.name,
                              err.code, detail)
                    self.spool.reject(path)
                    continue
                self._once(f"http{err.code}", "server answered %s: will retry", err.code)
                return n
            except (urllib.error.URLError, OSError) as err:
                self._once("down", "server unreachable (%s): spooling to %s", err,
                           self.spool.dir)
                return n
            path.unlink(missing_ok=True)
            n += 1
            self.sent += 1
            if self.refused or self._warned:
                log.info("server reachable again: sending the spool")
                self._warned.clear()
                self.refused = False
        return n


def new_snapshot_id() -> str:
    """A unique id for one snapshot (the server's idempotency key)."""
    return uuid.uuid4().hex


class PushSink:
    """Each snapshot: encoded (tables column by column), gzipped, spooled, then sent.

    The spool is the backlog, so only a failing disk makes a SinkError. No SQLAlchemy here.
    """

    def __init__(self, spool: Spool, pusher: Pusher, heartbeat: Path | None = None) -> None:
        self.spool = spool
        self.pusher = pusher
        self.heartbeat = heartbeat

    def write(self, snap: Snapshot) -> None:
        """Spool one snapshot and send what is pending."""
        sid = new_snapshot_id()
        z = zlib.compressobj(5, zlib.DEFLATED, 31)  # 31: the gzip container
        parts = [z.compress(chunk.encode()) for chunk in encode_snapshot(
            snap, {"snapshot_id": sid, "spool_dropped_total": self.spool.dropped})]
        parts.append(z.flush())
        try:
            self.spool.put(sid, b"".join(parts))
        except OSError as err:
            raise SinkError(f"cannot write the spool {self.spool.dir}: {err}") from err
        del parts
        self.pusher.flush()
        if self.heartbeat is not None:
            self.heartbeat.touch()  # the container health check looks at it

    def close(self) -> None:
        """One last send of the spool."""
        self.pusher.flush()
        log.info("push: %d sent, %d pending, %d dropped", self.pusher.sent,
                 len(self.spool.pending()), self.spool.dropped)
