"""Helpers of the stateless web tier tests: snapshots, pushes, a webhook receiver."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime
from typing import Any

from app.api.routes.ingest import gzip_body
from app.domain.samples import HostIdentity, MemcgCount, Snapshot
from app.domain.snapshot_json import snapshot_to_dict


def snapshot(host: str, dying: int, taken_at: datetime) -> dict[str, Any]:
    """A small snapshot of a host with this many dying memcgs, in the wire format."""
    return snapshot_to_dict(Snapshot(
        taken_at=taken_at, duration_seconds=0.01,
        host=HostIdentity(host, "0" * 32, "1" * 32, "6.18.0", "objcg-kmem", "release", 2, 1,
                          4096, "v2"),
        memcg=MemcgCount(dying + 10, 10, dying, "cgroup.stat"), proc_cgroups=(),
        meminfo={"MemTotal": 4 << 30, "Slab": 200 << 20, "SReclaimable": 100 << 20,
                 "SUnreclaim": 100 << 20, "Percpu": 8 << 20},
        vmstat={"nr_slab_reclaimable": 25600}, caches=(), new_cgroups=(), series=None,
        full=None, kmem_slabinfo=(), memcg_caches=(), memcg_slabinfo=(), removed=(), errors=()))


def push(base: str, token: str | None, body: bytes, dropped: int | None = None) -> int:
    """POST a gzip body to /api/v1/ingest; the HTTP status."""
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if dropped is not None:
        headers["X-Slabscope-Spool-Dropped"] = str(dropped)
    req = urllib.request.Request(base + "/api/v1/ingest", data=body, method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as err:
        err.close()
        return int(err.code)


def body(sid: str, host: str, dying: int, taken_at: datetime) -> bytes:
    """The gzip body a collector sends."""
    return gzip_body(sid, snapshot(host, dying, taken_at))


def fetch(url: str) -> tuple[int, str]:
    """GET a URL: status and text (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status), str(r.read().decode())
    except urllib.error.HTTPError as err:
        with err:
            return int(err.code), str(err.read().decode())


def ingest_counts(metrics: str) -> dict[str, float]:
    """slabscope_ingest_requests_total by outcome, from /metrics text."""
    return {line.split('"')[1]: float(line.split()[-1]) for line in metrics.splitlines()
            if line.startswith("slabscope_ingest_requests_total{")}


def spool_dropped(metrics: str) -> dict[str, float]:
    """slabscope_collector_spool_dropped_total by host, from /metrics text."""
    return {line.split('"')[1]: float(line.split()[-1]) for line in metrics.splitlines()
            if line.startswith("slabscope_collector_spool_dropped_total{")}


class Receiver:
    """A webhook receiver on loopback that keeps every body it takes (after `fail` 500s)."""

    def __init__(self, fail: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        lock = threading.Lock()
        bodies, refused = self.bodies, self.refused

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                got = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    ok = len(refused) >= fail
                    (bodies if ok else refused).append(got)
                self.send_response(204 if ok else 500)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def pairs(self) -> Counter[tuple[str, str]]:
        """How many times each (host, rule) was posted."""
        return Counter((a["host"], a["rule"]) for b in list(self.bodies) for a in b["alerts"])

    def close(self) -> None:
        """Stop serving and release the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
