"""uvicorn's h11 protocol with deadlines for reading a request (slow clients, slowloris).

uvicorn 0.54 closes an idle keep-alive connection (timeout_keep_alive) but has no limit on
the time a client takes to send a request: a connection that sends its headers one byte at a
time, or never finishes them, is held open for ever. Here each request's headers must arrive
within SLABSCOPE_WEB_HEADER_TIMEOUT_SECONDS of the connection being ready for it (opened, or
the previous response sent), and its body within SLABSCOPE_WEB_BODY_TIMEOUT_SECONDS of the
headers; otherwise the connection is closed (with a 408 when no response has started).
Keep-alive and pipelining are uvicorn's own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.config import get_settings

log = logging.getLogger("slabscope.web")
_MESSAGE = b"request not received in time\n"
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                   b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
                   % (len(_MESSAGE), _MESSAGE))


class TimedH11Protocol(H11Protocol):
    """H11Protocol whose request headers and body have deadlines (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout = settings.web_header_timeout_seconds
        self.body_timeout = settings.web_body_timeout_seconds
        self._deadline: asyncio.TimerHandle | None = None
        self._reading: str | None = None  # "headers", "body", or None (nothing to wait for)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._reading = None

    def _follow(self) -> None:
        """Arm, keep or cancel the deadline for what the client owes us now."""
        if self.transport is None or self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        reading = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if reading == self._reading:
            return  # a deadline runs from the start of a part, not from its last byte
        self._disarm()
        if reading is not None:
            seconds = self.header_timeout if reading == "headers" else self.body_timeout
            self._reading = reading
            self._deadline = self.loop.call_later(seconds, self._expired, reading)

    def _expired(self, reading: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info("closing the connection of %s: request %s not received in time", client,
                 reading)
        cycle = self.cycle if reading == "body" else None
        if cycle is None or not cycle.response_started:  # nothing sent for this request yet
            self.transport.write(REQUEST_TIMEOUT)
            if cycle is not None:
                cycle.response_started = True  # the app's own answer, if any, is not sent
        self.transport.close()


def cannot_listen(host: str, port: int) -> str | None:
    """Why a server could not listen on host:port (None: it can), asked before uvicorn, whose
    own answer is a traceback."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        return str(err.strerror or err)
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as err:
            return str(err.strerror or err)
    return None
