"""Spool and pusher faults: a full disk, garbled counters, stale files, poison snapshots.

The full disk is real (a 64 kB tmpfs mounted for the test, root only); the server is a small
http.server in this process on 127.0.0.1 whose answer per snapshot id the test chooses.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.collector.daemon import Daemon
from app.collector.push import Pusher, PushSink, Spool
from app.collector.scrape import Collector, CollectorOptions
from tests.conftest import ROOT, require

FIXTURE = ROOT / "tests/fixtures/host-6.18"


class Ingest:
    """A fake ingest: stores snapshot ids in order; `answers[id]` overrides the 200."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.answers: dict[str, int] = {}
        self.headers: list[dict[str, str]] = []
        ingest = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sid = json.loads(gzip.decompress(body))["snapshot_id"]
                ingest.headers.append(dict(self.headers))
                code = ingest.answers.get(sid, 200)
                if code == 200:
                    ingest.stored.append(sid)
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever)

    def close(self) -> None:
        self.httpd.shutdown()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.httpd.server_close()


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    srv = Ingest()
    srv.thread.start()
    yield srv
    srv.close()


def body(sid: str) -> bytes:
    return gzip.compress(json.dumps({"snapshot_id": sid}).encode())


def put(spool: Spool, sid: str) -> None:
    spool.put(sid, body(sid))


# -- item 7: poison snapshots ---------------------------------------------------------------

def test_422_moves_to_rejected_and_newer_ones_go(ingest: Ingest, tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "spool"), 50)
    for sid in ("a", "b", "c"):
        put(spool, sid)
    ingest.answers["a"] = 422
    assert Pusher(ingest.url, "t", spool, timeout=5).flush() == 2
    assert ingest.stored == ["b", "c"]
    assert [p.name.split("-")[1] for p in (tmp_path / "spool/rejected").iterdir()] == [
        "a.json.gz"]


@pytest.mark.parametrize("code", [500, 503])
def test_5xx_head_backs_off_then_is_deferred_and_newer_ones_go(
        ingest: Ingest, tmp_path: Path, code: int) -> None:
    spool = Spool(str(tmp_path / "spool"), 50)
    for sid in [f"s{i}" for i in range(10)]:
        put(spool, sid)
    ingest.answers["s0"] = code
    now = [0.0]
    p = Pusher(ingest.url, "t", spool, timeout=5, max_failures=3, backoff_seconds=10,
               clock=lambda: now[0])
    sent = []
    for _ in range(3):  # three failures of the head, each followed by a backoff
        sent.append(p.flush())
        assert p.flush() == 0  # inside the backoff: nothing is even tried
        now[0] += 1000
    assert sum(sent) == 9
    assert ingest.stored == [f"s{i}" for i in range(1, 10)]
    assert p.deferred == 1 and spool.pending() == []
    assert [x.name.split("-")[1] for x in (tmp_path / "spool/deferred").iterdir()] == [
        "s0.json.gz"]
    # The head was tried once per round, never more: 3 tries, then 9 stores.
    assert len(ingest.headers) == 12


def test_a_deferred_snapshot_is_sent_again_once_the_server_takes_it(
        ingest: Ingest, tmp_path: Path) -> None:
    # A 503 outage that lasts exactly max_failures answers of the head, then a healthy
    # server: the head was deferred as poison, and must still be stored (it was lost).
    spool = Spool(str(tmp_path / "spool"), 50)
    for sid in ("s0", "s1", "s2"):
        put(spool, sid)
    ingest.answers["s0"] = 503
    now = [0.0]
    p = Pusher(ingest.url, "t", spool, timeout=5, max_failures=2, backoff_seconds=1,
               deferred_retry_seconds=300, clock=lambda: now[0])
    for _ in range(2):
        p.flush()
        now[0] += 10
    assert p.deferred == 1 and ingest.stored == ["s1", "s2"]
    del ingest.answers["s0"]  # the outage is over
    assert p.flush() == 0  # the retry waits its interval
    now[0] += 300
    assert p.flush() == 1 and ingest.stored == ["s1", "s2", "s0"]
    assert spool.deferred() == [] and spool.pending() == []
    # A deferred snapshot the server then refuses as invalid goes to rejected/, once.
    put(spool, "s3")
    ingest.answers["s3"] = 503
    for _ in range(2):
        p.flush()
        now[0] += 10
    put(spool, "s4")
    assert p.flush() == 1 and p.deferred == 2  # s4 stored, s3 deferred
    ingest.answers["s3"] = 422
    now[0] += 300
    assert p.flush() == 0 and spool.deferred() == []
    assert [x.name.split("-")[1] for x in (tmp_path / "spool/rejected").iterdir()] == [
        "s3.json.gz"]


def test_5xx_for_everything_defers_nothing(ingest: Ingest, tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "spool"), 50)
    for sid in ("a", "b", "c"):
        put(spool, sid)
        ingest.answers[sid] = 503
    now = [0.0]
    p = Pusher(ingest.url, "t", spool, timeout=5, max_failures=2, backoff_seconds=1,
               clock=lambda: now[0])
    for _ in range(6):
        assert p.flush() == 0
        now[0] += 10_000
    assert p.deferred == 0 and len(spool.pending()) == 3  # a server outage is not poison
    ingest.answers.clear()
    assert p.flush() == 3 and ingest.stored == ["a", "b", "c"]


# -- item 6: spool faults -----------------------------------------------------------------

@pytest.mark.parametrize("content", ["", "garbage\n", "\x00\xff", "12x"])
def test_garbled_counters_do_not_stop_the_start(tmp_path: Path, content: str) -> None:
    d = tmp_path / "spool"
    d.mkdir()
    (d / "dropped_total").write_text(content)
    (d / "unspooled_total").write_text(content)
    spool = Spool(str(d), 5)
    assert (spool.dropped, spool.unspooled) == (0, 0)


def test_counters_survive_a_restart(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), 1)
    put(spool, "a")
    put(spool, "b")
    spool.count_unspooled(OSError(28, "No space left on device"))
    again = Spool(str(tmp_path), 1)
    assert (again.dropped, again.unspooled) == (1, 1)


def test_stale_tmp_files_are_removed_at_start(tmp_path: Path) -> None:
    (tmp_path / "0001-x.json.gz.tmp").write_bytes(b"")
    (tmp_path / "0002-y.json.gz.tmp").write_bytes(b"partial")
    (tmp_path / "0003-z.json.gz").write_bytes(body("z"))
    spool = Spool(str(tmp_path), 5)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "0003-z.json.gz", "dropped_total", "unspooled_total"]
    assert [p.name for p in spool.pending()] == ["0003-z.json.gz"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 kB tmpfs (root only)."""
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    d = tmp_path / "disk"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


def test_full_disk_keeps_the_collector_running_and_recovers(
        small_disk: Path, tmp_path: Path, ingest: Ingest) -> None:
    root = tmp_path / "host"
    shutil.copytree(FIXTURE, root, symlinks=True)
    collector = Collector(CollectorOptions(proc_root=str(root / "proc"),
                                           sys_root=str(root / "sys")))
    spool_dir = small_disk / "spool"
    spool = Spool(str(spool_dir), 1000)
    pusher = Pusher("http://127.0.0.1:9", "t", spool, timeout=2)  # nobody listens: spool
    sink = PushSink(spool, pusher, spool_dir / "heartbeat")
    # Fill the disk so that no snapshot fits (a filler file takes what is left).
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"x" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    Daemon(collector, sink, 0, max_ticks=3).run()  # returns: no crash
    assert spool.unspooled == 3
    assert list(spool_dir.glob("*.tmp")) == [] and spool.pending() == []
    # It starts again on the full disk (the counter file kept its last good value).
    spool = Spool(str(spool_dir), 1000)
    assert spool.unspooled == 3  # counted in place: the full disk took it
    # Space comes back: the next snapshots are spooled and sent.
    filler.unlink()
    pusher = Pusher(ingest.url, "t", spool, timeout=5)
    Daemon(collector, PushSink(spool, pusher), 0, max_ticks=2).run()
    assert len(ingest.stored) == 2 and spool.pending() == []
    assert ingest.headers[-1]["X-Slabscope-Spool-Unspooled"] == str(spool.unspooled)
