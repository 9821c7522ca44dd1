"""Slow clients are cut off: a real `slabscope serve` (1 and 2 workers) with short deadlines.

A connection that sends its request headers a byte at a time, or never finishes them, or
trickles its body, is closed (with a 408) after SLABSCOPE_WEB_HEADER_TIMEOUT_SECONDS /
SLABSCOPE_WEB_BODY_TIMEOUT_SECONDS; normal and keep-alive requests are untouched, and
hundreds of unfinished connections do not stop /healthz.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.migrate import upgrade
from tests.api.fleet import fetch
from tests.api.test_workers import Serve, until

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
SLACK = 4.0  # scheduling on a loaded 2-core machine; the default deadlines are 10 s and 60 s
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n\r\n"


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def server(request: pytest.FixtureRequest, sqlite_url: str, tmp_path: Path) -> Iterator[Serve]:
    upgrade(sqlite_url)
    env = dict(os.environ, SLABSCOPE_WEB_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
               SLABSCOPE_WEB_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
               SLABSCOPE_LOG_LEVEL="WARNING")
    with open(tmp_path / "serve.log", "wb") as log:
        srv = Serve(sqlite_url, request.param, env, log)
        try:
            until(srv.ready, f"{srv.base}/healthz")
            yield srv
        finally:
            srv.stop()


def connect(srv: Serve) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_all(s: socket.socket) -> bytes:
    """Everything the server sends until it closes (the socket's timeout fails the test)."""
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def trickle(s: socket.socket, data: bytes, every: float) -> float:
    """Send data a byte at a time; return seconds until the server closed (or all sent)."""
    start = time.monotonic()
    for b in data:
        try:
            s.sendall(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            break
        # Stop as soon as the server answers or closes: the socket becomes readable.
        if select.select([s], [], [], every)[0]:
            break
    return time.monotonic() - start


def test_headers_sent_a_byte_at_a_time_are_cut_off(server: Serve) -> None:
    with connect(server) as s:
        # One byte each 0.25 s: the whole request would take over 12 s.
        waited = trickle(s, REQUEST, 0.25)
        got = read_all(s)
    assert got.startswith(b"HTTP/1.1 408 Request Timeout"), got
    assert waited < HEADER_TIMEOUT + SLACK


def test_headers_never_finished_or_never_sent_are_cut_off(server: Serve) -> None:
    for sent in (b"GET /healthz HTTP/1.1\r\nHost", b""):
        with connect(server) as s:
            s.sendall(sent)
            start = time.monotonic()
            got = read_all(s)
            assert time.monotonic() - start < HEADER_TIMEOUT + SLACK
        assert got.startswith(b"HTTP/1.1 408 Request Timeout"), got


def test_a_body_sent_too_slowly_is_cut_off(server: Serve) -> None:
    with connect(server) as s:
        s.sendall(b"POST /api/v1/simulations HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{")
        waited = trickle(s, b" " * 199, 0.25)
        got = read_all(s)
    assert got.startswith(b"HTTP/1.1 408 Request Timeout"), got
    assert waited < BODY_TIMEOUT + SLACK


def test_normal_and_keep_alive_requests_still_work(server: Serve) -> None:
    with connect(server) as s:
        for _ in range(3):
            s.sendall(REQUEST)
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK"), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(body) < length:
                body += s.recv(65536)
            assert body == b'{"status":"ok","database":"ok"}'
            # Idle between requests for less than the deadline: the connection stays open.
            time.sleep(HEADER_TIMEOUT / 2)
    # A POST with its body is answered (an empty workload: the model's 422).
    req = urllib.request.Request(server.base + "/api/v1/simulations", data=b'{"classes": []}',
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 422 and b"classes" in err.value.read()


def test_hundreds_of_unfinished_connections_do_not_stop_healthz(server: Serve) -> None:
    socks = []
    try:
        for i in range(200):
            s = connect(server)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost" if i % 2 else b"")
            socks.append(s)
        assert fetch(server.base + "/healthz")[0] == 200
    finally:
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()
    assert fetch(server.base + "/healthz")[0] == 200
