"""Push mode: every snapshot goes to a bounded on-disk spool, then to the server, in order.

Each tick's snapshot is written to the spool first (one gzip file, renamed into place), then
everything pending is sent oldest first. 2xx ("stored" or "duplicate": the server is
idempotent by snapshot id) removes a file. A refused token stops sending and keeps the spool
(nothing is lost while someone fixes the token). An invalid snapshot (413/422) moves to
`rejected/`, never resent and never deleted. An unreachable server stops this round; the
next tick tries again. A 5xx is retried with backoff, and a file the server keeps failing on
while it stores newer ones moves to `deferred/` (it never blocks the host's newer snapshots).
Past `max_files` the oldest snapshots are dropped, counted (sent to the server with every
push as `X-Slabscope-Spool-Dropped`, exported at /metrics) and logged. A snapshot a full
disk would not take is counted too (`unspooled_total`, sent as X-Slabscope-Spool-Unspooled).
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
from collections.abc import Callable
from pathlib import Path

from app.domain.samples import Snapshot
from app.domain.snapshot_json import encode_snapshot

log = logging.getLogger("slabscope.push")
_COUNTER_WIDTH = 21  # a u64 in decimal and a newline's worth of padding


class Spool:
    """A directory of pending snapshots, oldest first, bounded by count.

    A full or failing disk never stops the collector: a snapshot that cannot be written is
    counted (`unspooled`, persisted like `dropped`, sent as X-Slabscope-Spool-Unspooled),
    logged, and its partial file removed; the next tick tries again.
    """

    def __init__(self, directory: str, max_files: int) -> None:
        self.dir = Path(directory)
        self.max_files = max_files
        self.unspooled = 0
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            for sub in ("rejected", "deferred"):
                (self.dir / sub).mkdir(exist_ok=True)
        except OSError as err:  # full disk or read-only: put() will count what it loses
            log.error("cannot prepare the spool %s: %s", self.dir, err)
        self._dropped_file = self.dir / "dropped_total"
        self._unspooled_file = self.dir / "unspooled_total"
        self.dropped = self._read_counter(self._dropped_file)
        self.unspooled = self._read_counter(self._unspooled_file)
        self._clean_tmp()
        # Written now, while there may be room: later updates overwrite them in place.
        self._write_counter(self._dropped_file, self.dropped)
        self._write_counter(self._unspooled_file, self.unspooled)

    @staticmethod
    def _read_counter(path: Path) -> int:
        """A persisted counter; a missing, empty or garbled file counts from 0 (and says so)."""
        try:
            text = path.read_text(errors="replace").strip()
        except FileNotFoundError:
            return 0
        except OSError as err:
            log.error("cannot read %s (%s): counting from 0", path, err)
            return 0
        if text.isdigit() and len(text) <= 20:
            return int(text)
        log.error("%s holds %r, not a count (written when the disk was full?): counting "
                  "from 0", path, text[:40])
        return 0

    def _write_counter(self, path: Path, value: int) -> None:
        """Persist a counter; a full disk leaves the old value, never an empty file."""
        text = str(value).ljust(_COUNTER_WIDTH).encode()
        try:
            # In place over a file already that long: no new block, so a full disk takes it.
            with open(path, "r+b") as f:
                if os.fstat(f.fileno()).st_size == _COUNTER_WIDTH:
                    f.write(text)
                    return
        except OSError:
            pass
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_bytes(text)
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            log.error("cannot persist %s=%d: %s", path.name, value, err)

    def _clean_tmp(self) -> None:
        """Remove the partial files of writes a crash or a full disk interrupted."""
        try:
            stale = list(self.dir.glob("*.tmp"))
        except OSError:
            return
        for p in stale:
            try:
                p.unlink()
            except OSError as err:
                log.error("cannot remove the stale %s: %s", p, err)
        if stale:
            log.warning("removed %d unfinished spool file(s) (*.tmp)", len(stale))

    def put(self, snapshot_id: str, body: bytes) -> Path:
        """Write one snapshot durably; drop (and count) the oldest past the bound.

        Raises OSError when the snapshot could not be written (nothing partial stays).
        """
        name = f"{time.time_ns():020d}-{snapshot_id}.json.gz"
        tmp = self.dir / (name + ".tmp")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)  # it may have failed at start
            with open(tmp, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            path = self.dir / name
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        pending = self.pending()
        while len(pending) > self.max_files:
            oldest = pending.pop(0)
            oldest.unlink(missing_ok=True)
            self.dropped += 1
            self._write_counter(self._dropped_file, self.dropped)
            log.error("spool full (%d snapshots): dropped the oldest, %s (%d dropped in all)",
                      self.max_files, oldest.name, self.dropped)
        return path

    def count_unspooled(self, err: OSError) -> None:
        """Count (and log) one snapshot the disk would not take."""
        self.unspooled += 1
        self._write_counter(self._unspooled_file, self.unspooled)
        log.error("cannot write to the spool %s (%s): snapshot lost (%d unspooled in all)",
                  self.dir, err.strerror or err, self.unspooled)

    def pending(self) -> list[Path]:
        """Pending snapshots, oldest first."""
        try:
            return sorted(p for p in self.dir.glob("*.json.gz") if p.is_file())
        except OSError:
            return []

    def deferred(self) -> list[Path]:
        """Snapshots set aside after repeated 5xx, oldest first (retried, never dropped)."""
        try:
            return sorted(p for p in (self.dir / "deferred").glob("*.json.gz") if p.is_file())
        except OSError:
            return []

    def reject(self, path: Path) -> None:
        """Keep a snapshot the server refused as invalid, out of the way."""
        self._move(path, "rejected")

    def defer(self, path: Path) -> None:
        """Keep a snapshot the server keeps failing on (5xx), out of the way of newer ones."""
        self._move(path, "deferred")

    def _move(self, path: Path, sub: str) -> None:
        (self.dir / sub).mkdir(exist_ok=True)
        os.replace(path, self.dir / sub / path.name)


class Pusher:
    """Sends spooled snapshots to POST <url>/api/v1/ingest with a bearer token.

    A 5xx is retried with backoff (doubling from `backoff_seconds`, at most
    `backoff_max_seconds`; ticks inside it send nothing). When the head file has failed
    `max_failures` times in a row, the next file is tried: if it is stored, the server is up
    and the head is poison, so it moves to `deferred/` (counted, logged) and sending goes on.
    A deferred file is not given up: once the spool is caught up, the oldest deferred one is
    sent again every `deferred_retry_seconds` (a 5xx outage that happened to last
    `max_failures` answers must not lose a good snapshot), until it is stored or refused.
    """

    def __init__(self, url: str, token: str, spool: Spool, timeout: float = 10.0, *,
                 max_failures: int = 5, backoff_seconds: float = 30.0,
                 backoff_max_seconds: float = 900.0, deferred_retry_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url.rstrip("/") + "/api/v1/ingest"
        self.token = token
        self.spool = spool
        self.timeout = timeout
        self.sent = 0
        self.deferred = 0
        self.refused = False
        self.max_failures = max_failures
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.clock = clock
        self._head: str | None = None  # the file the 5xx answers were for
        self._head_failures = 0
        self._retry_at = 0.0
        self.deferred_retry_seconds = deferred_retry_seconds
        self._deferred_at = 0.0  # when the next deferred file may be sent again
        self._warned: set[str] = set()

    def _once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.error(msg, *args)

    def _post(self, body: bytes) -> None:
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Authorization": f"Bearer {self.token}", "Content-Encoding": "gzip",
            "Content-Type": "application/json",
            "X-Slabscope-Spool-Dropped": str(self.spool.dropped),
            "X-Slabscope-Spool-Unspooled": str(self.spool.unspooled)})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            json.loads(resp.read() or b"{}")

    def flush(self) -> int:
        """Send pending snapshots in order until one fails; return how many went."""
        if self.clock() < self._retry_at:
            return 0  # backing off after a 5xx
        n = 0
        poison: Path | None = None  # the head that keeps failing, while a newer one is tried
        for path in self.spool.pending():
            try:
                body = path.read_bytes()
            except OSError:
                continue  # removed meanwhile, or unreadable: the next flush sees it again
            try:
                self._post(body)
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
                    self._move(self.spool.reject, path)
                    continue
                if poison is None and self._failed(path, err.code) >= self.max_failures:
                    poison = path
                    continue  # is it this file, or the server? a newer one tells
                return n
            except (urllib.error.URLError, OSError) as err:
                self._once("down", "server unreachable (%s): spooling to %s", err,
                           self.spool.dir)
                return n
            path.unlink(missing_ok=True)
            n += 1
            self.sent += 1
            if poison is not None:
                self._defer(poison)
                poison = None
            self._head, self._head_failures, self._retry_at = None, 0, 0.0
            if self.refused or self._warned:
                log.info("server reachable again: sending the spool")
                self._warned.clear()
                self.refused = False
        if poison is None:  # caught up: give the oldest deferred snapshot another chance
            n += self._retry_deferred()
        return n

    def _retry_deferred(self) -> int:
        """Send the oldest deferred snapshot again, at most every deferred_retry_seconds."""
        if self.clock() < self._deferred_at:
            return 0
        waiting = self.spool.deferred()
        if not waiting:
            return 0
        self._deferred_at = self.clock() + self.deferred_retry_seconds
        path = waiting[0]
        try:
            self._post(path.read_bytes())
        except urllib.error.HTTPError as err:
            if err.code in (413, 422):
                log.error("server rejected deferred %s (%s): kept in rejected/", path.name,
                          err.code)
                self._move(self.spool.reject, path)
            return 0  # a 5xx or a refused token: it waits for the next retry
        except (urllib.error.URLError, OSError):
            return 0
        path.unlink(missing_ok=True)
        self.sent += 1
        self._deferred_at = 0.0  # stored: the next one at once, at the next flush
        log.info("deferred %s stored on a later try", path.name)
        return 1

    def _failed(self, path: Path, code: int) -> int:
        """Count one more 5xx for this head file and set the backoff; the count so far."""
        if self._head != path.name:
            self._head, self._head_failures = path.name, 0
        self._head_failures += 1
        delay = min(self.backoff_max_seconds,
                    self.backoff_seconds * 2 ** min(self._head_failures - 1, 30))
        self._retry_at = self.clock() + delay
        log.error("server answered %s for %s (%d time(s) in a row): retry in %.0fs", code,
                  path.name, self._head_failures, delay)
        return self._head_failures

    def _defer(self, path: Path) -> None:
        self._move(self.spool.defer, path)
        self.deferred += 1
        self._deferred_at = self.clock() + self.deferred_retry_seconds
        log.error("server fails on %s but stores newer snapshots: moved it to deferred/ "
                  "(%d deferred in all)", path.name, self.deferred)

    @staticmethod
    def _move(how: Callable[[Path], None], path: Path) -> None:
        try:
            how(path)
        except OSError as err:
            log.error("cannot move %s out of the spool: %s", path.name, err)


def new_snapshot_id() -> str:
    """A unique id for one snapshot (the server's idempotency key)."""
    return uuid.uuid4().hex


class PushSink:
    """Each snapshot: encoded (tables column by column), gzipped, spooled, then sent.

    The spool is the backlog; a snapshot the disk will not take is counted, never raised
    (the collector keeps running and recovers when space comes back). No SQLAlchemy here.
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
        body = b"".join(parts)
        del parts
        try:
            self.spool.put(sid, body)
        except OSError:
            self.pusher.flush()  # sending frees space: one more try before counting it lost
            try:
                self.spool.put(sid, body)
            except OSError as err:
                self.spool.count_unspooled(err)
        self.pusher.flush()
        if self.heartbeat is not None:
            try:
                self.heartbeat.touch()  # the container health check looks at it
            except OSError as err:
                log.error("cannot touch the heartbeat %s: %s", self.heartbeat, err)

    def close(self) -> None:
        """One last send of the spool."""
        self.pusher.flush()
        log.info("push: %d sent, %d pending, %d dropped, %d unspooled, %d deferred",
                 self.pusher.sent, len(self.spool.pending()), self.spool.dropped,
                 self.spool.unspooled, self.pusher.deferred)
