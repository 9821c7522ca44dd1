#!/usr/bin/env python3
"""Fault injection: bad inputs to a real server and a real collector, and faults under a push.

Counts how many bad inputs were tried, how many of them got a 5xx, crashed (the connection
dropped with no answer, the server process died, or `collect --once` raised or exited
non-zero) or hung (no answer within the bound), and how many snapshots a real push collector
lost or stored twice while the server was killed, stopped, answered 503 (a proxy in front of
it), or its database restarted. The target for every figure is 0: the exit status is 1 when
one is not (so this can gate).

Real parts: `slabscope serve` (bench/_fleetrun.Server) on a SQLite file, and on a private
PostgreSQL cluster (bench/_pgcluster.Cluster; --pg, the default where initdb is installed);
`python -m app.cli collect --once` on the broken roots of tests/collector/faultroots.py;
the collector's own Spool, Pusher and PushSink (app/collector/push.py) for the push.

Inputs (each counted once, per database for the server's):
  ingest: garbage bodies, truncated and trailing-garbage gzip, gzip bombs, deep nesting, huge
    headers, oversized bodies, every leaf of a real snapshot replaced by each wrong-typed
    value, future/naive/invalid timestamps, hostile host names, unknown/absent tokens,
    unfinished-header connections (held open past the bound = hung), concurrent duplicates;
  POST /api/v1/simulations: oversized and hostile bodies;
  GET routes (from /openapi.json, and the pages): hostile path and query values;
  collector: every fault root, through `collect --once`.

Usage: python bench/faults.py [--quick] [--pg | --no-pg]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import glob
import gzip
import http.server
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select

from app.api.routes.ingest import token_hash
from app.collector import push
from app.collector.push import Pusher, PushSink, Spool
from app.collector.scrape import Collector, CollectorOptions
from app.db import fleetstate
from app.db import models as m
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.domain.snapshot_json import snapshot_to_dict
from bench._fleetrun import Server
from tests.collector import faultroots

ROOT = Path(__file__).resolve().parent.parent
WRONG: list[tuple[str, Any]] = [("string", "x"), ("float", 1.5), ("bool", True),
                                ("null", None), ("negative", -1), ("2**64", 2**64),
                                ("2**70", 2**70), ("huge string", "x" * 100_000)]


# -- tallies -------------------------------------------------------------------------------

@dataclass
class Group:
    tried: int = 0
    err5xx: int = 0
    crashed: int = 0
    hung: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


class Tally:
    """Per group (e.g. 'sqlite ingest: gzip'): inputs tried and how each ended."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self.lock = threading.Lock()

    def add(self, group: str, name: str, outcome: int | str) -> None:
        """One input: an HTTP status, or 'dropped', 'hang', 'crash', 'ok'."""
        with self.lock:
            g = self.groups.setdefault(group, Group())
            g.tried += 1
            g.codes[str(outcome)] += 1
            bad = None
            if isinstance(outcome, int) and outcome >= 500:
                g.err5xx += 1
                bad = str(outcome)
            elif outcome in ("dropped", "crash"):
                g.crashed += 1
                bad = str(outcome)
            elif outcome == "hang":
                g.hung += 1
                bad = "hang"
            if bad is not None:
                g.failures.append(f"{name}: {bad}")

    def totals(self) -> tuple[int, int, int, int]:
        gs = self.groups.values()
        return (sum(g.tried for g in gs), sum(g.err5xx for g in gs),
                sum(g.crashed for g in gs), sum(g.hung for g in gs))


# -- a raw HTTP client: any bytes on the wire, early answers read, drops and hangs told apart --

def send(port: int, method: str, target: bytes | str, headers: dict[str, str] | None = None,
         body: bytes = b"", timeout: float = 20.0, raw_headers: bytes = b"") -> int | str:
    """The status code, or 'dropped' (closed with no answer) or 'hang' (none in `timeout`)."""
    t = target if isinstance(target, bytes) else target.encode()
    h = {"Host": "127.0.0.1", "Connection": "close", **(headers or {})}
    if body or method == "POST":
        h.setdefault("Content-Length", str(len(body)))
    head = method.encode() + b" " + t + b" HTTP/1.1\r\n" + b"".join(
        f"{k}: {v}\r\n".encode("latin-1", "replace") for k, v in h.items()) + raw_headers
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    deadline = time.monotonic() + timeout

    def send() -> None:
        with contextlib.suppress(OSError):
            s.sendall(head + b"\r\n")
            view = memoryview(body)
            for i in range(0, len(view), 1 << 20):
                s.sendall(view[i:i + (1 << 20)])

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    got = b""
    try:
        while b"\r\n" not in got:
            left = deadline - time.monotonic()
            if left <= 0:
                return "hang"
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return "hang"
            except OSError:
                chunk = b""
            if not chunk:
                return "dropped"
            got += chunk
        parts = got.split(b" ", 2)
        try:
            return int(parts[1])
        except (IndexError, ValueError):
            return "dropped"
    finally:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()


# -- the snapshot everything is made from ---------------------------------------------------

def base_snapshot(tmp: Path) -> dict[str, Any]:
    """A real snapshot of the host-6.18 capture with new and removed cgroups, tables on."""
    root = faultroots.copy_host(tmp / "base-host")
    now = [0.0]

    def clock() -> float:
        now[0] += 100_000.0  # every cadence due at every tick
        return now[0]

    c = Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys")),
                  clock=clock)
    c.collect()
    shutil.copytree(root / faultroots.MEM / faultroots.CHILD,
                    root / faultroots.MEM / "process_api/bench-new")
    shutil.rmtree(root / faultroots.MEM / faultroots.CHILD)
    d = snapshot_to_dict(c.collect())
    assert d["new_cgroups"] and d["removed"] and d["series"] and d["full"]
    return d


def body_of(snap: dict[str, Any], sid: str | None = None) -> bytes:
    return gzip.compress(json.dumps({"snapshot_id": sid or uuid.uuid4().hex,
                                     "snapshot": snap, "spool_dropped_total": 0}).encode(), 5)


def fresh(base: dict[str, Any], host: str) -> dict[str, Any]:
    s = copy.deepcopy(base)
    s["taken_at"] = datetime.now(UTC).isoformat()
    s["host"]["name"] = host
    return s


def leaves(x: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every leaf; of a list, its first element's (the others share the shape)."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from leaves(v, (*path, k))
    elif isinstance(x, list):
        if x:
            yield from leaves(x[0], (*path, 0))
    else:
        yield path


def set_at(x: Any, path: tuple[Any, ...], value: Any) -> None:
    for k in path[:-1]:
        x = x[k]
    x[path[-1]] = value


def gzip_stream(prefix: bytes, fill: bytes, n: int, suffix: bytes) -> bytes:
    """gzip of prefix + fill*n + suffix, compressed without building the raw text."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(prefix)]
    block = fill * max(1, (1 << 20) // len(fill))
    per = (1 << 20) // len(fill)
    done = 0
    while done < n:
        k = min(per, n - done)
        out.append(z.compress(block if k == per else fill * k))
        done += k
    out += [z.compress(suffix), z.flush()]
    return b"".join(out)


# -- the server side --------------------------------------------------------------------------

class Bench:
    def __init__(self, kind: str, url: str, quick: bool, tally: Tally, tmp: Path,
                 base: dict[str, Any], pg: Any = None) -> None:
        self.kind, self.url, self.quick, self.tally, self.tmp = kind, url, quick, tally, tmp
        self.base = base
        self.pg = pg
        self.timeout = 10.0 if quick else 30.0
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)
        self.server = Server(url, 1)
        self.port = self.server.port
        self.dup_ids: list[str] = []  # concurrent duplicates: each must be stored once

    def add_tokens(self, hosts: list[str]) -> None:
        with self.sessions.begin() as s:
            for h in hosts:
                fleetstate.add_token(s, h, token_hash(f"token-{h}-0123456789"),
                                     datetime.now(UTC))

    def auth(self, host: str) -> dict[str, str]:
        return {"Authorization": f"Bearer token-{host}-0123456789", "Content-Encoding": "gzip",
                "Content-Type": "application/json"}

    def alive(self, group: str) -> None:
        """A server process that died is a crash of the group that killed it; restart it."""
        p = self.server.proc
        if p is not None and p.poll() is not None:
            self.tally.add(f"{self.kind} {group}", "server process", "crash")
            self.server.start()

    def run(self, group: str, cases: list[tuple[str, Callable[[], int | str]]],
            workers: int = 4) -> None:
        g = f"{self.kind} {group}"

        def one(case: tuple[str, Callable[[], int | str]]) -> None:
            name, fn = case
            try:
                out = fn()
            except OSError as err:
                out = "dropped" if not isinstance(err, TimeoutError) else "hang"
            self.tally.add(g, name, out)

        t = time.monotonic()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, cases))
        self.alive(group)
        print(f"  {g}: {len(cases)} inputs, {time.monotonic() - t:.1f} s", file=sys.stderr)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Callable[[], int | str]:
        return lambda: send(self.port, "POST", path, headers, body, self.timeout)

    # -- ingest ------------------------------------------------------------------------
    def ingest(self) -> None:
        host = "faults-host"
        self.add_tokens([host, "..", "<script>alert(1)</script>", "é ü", "a" * 255, " ",
                         "dup-host"])
        a = self.auth(host)
        valid = body_of(fresh(self.base, host))
        raw = gzip.decompress(valid)
        big = 2 if self.quick else 8  # MiB of JSON in the bomb's raw text, in hundreds
        garbage = [
            ("empty", b""), ("text", b"garbage"), ("binary", bytes(range(256)) * 64),
            ("json null", b"null"), ("json []", b"[]"), ("json {}", b"{}"),
            ("json string", b'"x"'), ("half json", raw[: len(raw) // 2]),
            ("non-UTF-8 json", b'{"snapshot_id": "\xff\xfe"}'),
            ("NUL in json", raw.replace(b'"schema"', b'"sch\x00ema"', 1)),
        ]
        cases: list[tuple[str, Callable[[], int | str]]] = []
        for name, data in garbage:
            cases.append((f"gzip of {name}", self.post("/api/v1/ingest", gzip.compress(data),
                                                       a)))
            cases.append((f"plain {name} said gzip", self.post("/api/v1/ingest", data, a)))
            cases.append((f"plain {name}", self.post("/api/v1/ingest", data, {
                k: v for k, v in a.items() if k != "Content-Encoding"})))
        for cut in (1, 10, 18, len(valid) // 2, len(valid) - 4, len(valid) - 1):
            cases.append((f"gzip truncated at {cut}", self.post("/api/v1/ingest",
                                                                valid[:cut], a)))
        for tail in (b"x", b"\x00" * 100, valid, gzip.compress(b"garbage")):
            cases.append((f"gzip + {len(tail)} trailing bytes", self.post(
                "/api/v1/ingest", body_of(fresh(self.base, host)) + tail, a)))
        cases.append(("gzip with a bad CRC", self.post(
            "/api/v1/ingest", valid[:-8] + b"\0\0\0\0" + valid[-4:], a)))
        self.run("ingest: garbage and gzip", cases)

        bombs = [
            ("zeros in a string", gzip_stream(b'{"snapshot_id": "', b"0", big * 100 << 20,
                                              b'"}')),
            ("{}, x many", gzip_stream(b"[", b"{},", big * 30 << 20, b"{}]")),
            ("[ x 100,000", gzip.compress(b"[" * 100_000)),
            ("{\"a\": x 100,000", gzip.compress(b'{"a":' * 100_000)),
            ("zeros after a valid body", gzip_stream(raw[:-1], b" ", big * 100 << 20, b"}")),
        ]
        cases = [(f"gzip bomb: {n}", self.post("/api/v1/ingest", d, a)) for n, d in bombs]
        cases += [("plain [ x 100,000", self.post("/api/v1/ingest", b"[" * 100_000, {
            k: v for k, v in a.items() if k != "Content-Encoding"}))]
        for d in (900, 5000, 100_000):
            text = json.dumps({"snapshot_id": uuid.uuid4().hex, "spool_dropped_total": 0,
                               "snapshot": {**fresh(self.base, host), "caches": "@@"}})
            deep = text.replace('"@@"', "[" * d + "]" * d).encode()
            cases.append((f"{d} nested lists as caches", self.post(
                "/api/v1/ingest", gzip.compress(deep), a)))
        cases += [("oversized body 64 MiB", self.post("/api/v1/ingest",
                                                      os.urandom(64 << 20), a))]
        self.run("ingest: bombs, nesting, size", cases, workers=2)

        hdr = [
            ("64 kB header value", {**a, "X-Junk": "x" * 65536}),
            ("1,000 headers", a, b"".join(f"X-H{i}: {i}\r\n".encode() for i in range(1000))),
            ("64 kB Authorization", {**a, "Authorization": "Bearer " + "x" * 65536}),
            ("4,000-digit spool-dropped", {**a, "X-Slabscope-Spool-Dropped": "9" * 4000}),
            ("negative spool-dropped", {**a, "X-Slabscope-Spool-Dropped": "-5"}),
            ("non-numeric spool-dropped", {**a, "X-Slabscope-Spool-Dropped": "1e9"}),
            ("4,000-digit spool-unspooled", {**a, "X-Slabscope-Spool-Unspooled": "9" * 4000}),
            ("Content-Length lies (longer)", {**a, "Content-Length": "10"}),
            ("Content-Length negative", {**a, "Content-Length": "-1"}),
            ("Content-Encoding br", {**a, "Content-Encoding": "br"}),
            ("Content-Encoding gzip, gzip", {**a, "Content-Encoding": "gzip, gzip"}),
        ]
        cases = []
        for item in hdr:
            name, headers = item[0], item[1]
            extra = item[2] if len(item) > 2 else b""  # type: ignore[misc]
            data = body_of(fresh(self.base, host))
            cases.append((name, lambda h=headers, d=data, x=extra: send(
                self.port, "POST", "/api/v1/ingest", h, d, self.timeout, x)))
        cases.append(("GET /metrics after the hostile headers", lambda: send(
            self.port, "GET", "/metrics", timeout=self.timeout)))
        self.run("ingest: headers", cases, workers=1)

        snap = fresh(self.base, host)
        paths = list(leaves(snap))
        if self.quick:
            paths = paths[::40]
        cases = []
        for p in paths:
            for wname, value in WRONG:
                s = copy.deepcopy(snap)
                set_at(s, p, value)
                s["taken_at"] = datetime.now(UTC).isoformat() if p != ("taken_at",) else value
                label = "/".join(map(str, p))
                cases.append((f"{label} = {wname}", self.post("/api/v1/ingest", body_of(s), a)))
        for key in ("snapshot_id", "spool_dropped_total"):
            for wname, value in WRONG:
                d = {"snapshot_id": uuid.uuid4().hex, "snapshot": fresh(self.base, host),
                     "spool_dropped_total": 0, key: value}
                cases.append((f"envelope {key} = {wname}", self.post(
                    "/api/v1/ingest", gzip.compress(json.dumps(d).encode()), a)))
        self.run("ingest: wrong types", cases)

        cases = []
        for name, at in (("2099", "2099-01-01T00:00:00+00:00"), ("naive", "2026-11-30T12:00:00"),
                         ("year 1", "0001-01-01T00:00:00+00:00"),
                         ("year 9999 +14:00", "9999-12-31T23:59:59+14:00"),
                         ("not a date", "yesterday"), ("month 13", "2026-13-45T00:00:00Z"),
                         ("epoch number", 1764500000), ("empty", "")):
            s = fresh(self.base, host)
            s["taken_at"] = at
            cases.append((f"taken_at {name}", self.post("/api/v1/ingest", body_of(s), a)))
        for name in ("..", "<script>alert(1)</script>", "é ü", "a" * 255, " "):
            cases.append((f"host {name[:20]!r} (its token)", self.post(
                "/api/v1/ingest", body_of(fresh(self.base, name)), self.auth(name))))
        for name in ("", "a/b", "x" * 10_000, "nul\x00", "\ud800", "../../etc"):
            s = fresh(self.base, name)
            data = gzip.compress(json.dumps({"snapshot_id": uuid.uuid4().hex, "snapshot": s,
                                             "spool_dropped_total": 0}).encode())
            cases.append((f"host {name[:20]!r} (another's token)", self.post(
                "/api/v1/ingest", data, a)))
        for name, auth in (("none", None), ("Bearer only", "Bearer"),
                           ("unknown", "Bearer nope-nope-nope-nope"),
                           ("Basic", "Basic dXNlcjpwYXNz"), ("10 kB", "Bearer " + "t" * 10_000),
                           ("non-ASCII", "Bearer tökén"), ("revoked-looking", "Bearer  ")):
            h = {k: v for k, v in a.items() if k != "Authorization"}
            if auth is not None:
                h["Authorization"] = auth
            cases.append((f"token {name}", self.post("/api/v1/ingest", valid, h)))
        self.run("ingest: timestamps, hosts, tokens", cases)

        # Concurrent duplicates: each id pushed 8 times at once; stored exactly once each.
        cases = []
        for _ in range(5 if self.quick else 20):
            sid = uuid.uuid4().hex
            self.dup_ids.append(sid)
            data = body_of(fresh(self.base, "dup-host"), sid)
            cases += [(f"duplicate {sid[:8]}", self.post("/api/v1/ingest", data,
                                                         self.auth("dup-host")))] * 8
        self.run("ingest: concurrent duplicates", cases, workers=16)

    # -- simulations -------------------------------------------------------------------------
    def simulations(self) -> None:
        h = {"Content-Type": "application/json"}
        leftover = {"kind": "slab", "amount": 1_000_000,
                    "cache": {"name": "x", "object_size_bytes": 8}}
        heavy = {"days": 365, "step_seconds": 15_768, "classes": [
            {"name": f"c{i}", "lifetime_seconds": 1, "count": 250_000,
             "leftovers": [leftover] * 120} for i in range(20)]}  # under the 256 kB bound
        cases: list[tuple[str, Callable[[], int | str]]] = [
            ("1 MiB of JSON", self.post("/api/v1/simulations",
                                        b'{"name": "' + b"x" * (1 << 20) + b'"}', h)),
            ("64 MiB body", self.post("/api/v1/simulations", os.urandom(64 << 20), h)),
            ("[ x 100,000", self.post("/api/v1/simulations", b"[" * 100_000, h)),
            ("gzip said, garbage", self.post("/api/v1/simulations", b"x",
                                             {**h, "Content-Encoding": "gzip"})),
            ("wrong types", self.post("/api/v1/simulations", json.dumps(
                {"days": "x", "classes": [{"name": None}]}).encode(), h)),
            ("NaN days", self.post("/api/v1/simulations",
                                   b'{"days": NaN, "classes": [{"name": "a", '
                                   b'"lifetime_seconds": 1}]}', h)),
            ("2**70 count", self.post("/api/v1/simulations", json.dumps(
                {"classes": [{"name": "a", "lifetime_seconds": 1, "count": 2**70}]}).encode(),
                h)),
            ("near the bounds (5M cgroups x 120 leftovers x 2000 points)", self.post(
                "/api/v1/simulations", json.dumps(heavy).encode(), h)),
        ]
        self.run("simulations", cases, workers=1)

    # -- GET routes ---------------------------------------------------------------------------
    def gets(self) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/openapi.json",
                                    timeout=30) as r:
            spec = json.loads(r.read())
        routes: list[tuple[str, list[str], list[str]]] = []
        for path, ops in spec["paths"].items():
            if "get" in ops:
                params = ops["get"].get("parameters", [])
                routes.append((path, [p["name"] for p in params if p["in"] == "path"],
                               [p["name"] for p in params if p["in"] == "query"]))
        routes += [("/", [], ["offset", "limit"]),
                   ("/hosts/{host}", ["host"], ["removed_offset", "since", "until"]),
                   ("/hosts/{host}/caches/{name}", ["host", "name"], ["since", "until"]),
                   ("/hosts/{host}/cgroups", ["host"], ["at"]),
                   ("/hosts/{host}/projection", ["host"], ["days"]),
                   ("/hosts/{host}/refcounts", ["host"], ["era"]),
                   ("/simulate", [], ["scenario"]), ("/metrics", [], [])]
        hostile = ["..", "%2e%2e", "..%2f..%2fetc%2fpasswd", "a%00b", "x" * 10_240, "%ff%fe",
                   "%c0%ae", "-1", "99999999999999999999999", "2026-11-30T12:00:00",
                   "2026-13-45T99:99:99", "nan", "-inf", "", "%0d%0aX-Injected:%201"]
        if self.quick:
            hostile = hostile[::2]
        valid = {"host": "faults-host", "name": "dentry"}
        cases: list[tuple[str, Callable[[], int | str]]] = []
        for path, pparams, qparams in routes:
            def target(over: str | None, value: str, path: str = path,
                       pparams: list[str] = pparams) -> str:
                t = path
                for p in pparams:
                    t = t.replace("{" + p + "}", value if p == over else valid.get(p, "x"))
                return t
            for p in pparams:
                for v in hostile:
                    cases.append((f"GET {path} {p}={v[:24]}", lambda t=target(p, v): send(
                        self.port, "GET", t, timeout=self.timeout)))
            for q in qparams:
                for v in hostile:
                    cases.append((f"GET {path} ?{q}={v[:24]}", lambda t=target(None, "") +
                                  f"?{q}={v}": send(self.port, "GET", t, timeout=self.timeout)))
        cases.append(("GET raw NUL in path", lambda: send(self.port, "GET",
                                                          b"/hosts/a\x00b", timeout=10)))
        cases.append(("GET raw non-UTF-8 path", lambda: send(self.port, "GET",
                                                             b"/hosts/\xff\xfe", timeout=10)))
        self.run("GET routes", cases, workers=8)

    # -- unfinished headers (opened first, checked last) ---------------------------------------
    def open_slow(self, n: int) -> list[socket.socket]:
        out = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(b"POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nX-Slow-" + str(i).encode())
            out.append(s)
        return out

    def check_slow(self, socks: list[socket.socket], opened: float, bound: float) -> None:
        """Each connection the server still holds open `bound` s after it opened is hung."""
        left = bound - (time.monotonic() - opened)
        if left > 0:
            time.sleep(left)
        for i, s in enumerate(socks):
            s.setblocking(False)
            try:
                got = s.recv(1024)
                out: int | str = "closed" if not got else int(got.split(b" ")[1])
            except BlockingIOError:
                out = "hang"
            except (OSError, ValueError, IndexError):
                out = "closed"
            self.tally.add(f"{self.kind} slow headers", f"unfinished headers #{i} held "
                           f"{bound:.0f} s", out)
            s.close()

    # -- the push under faults -----------------------------------------------------------------
    def push_under_faults(self, ticks: int) -> tuple[int, int, int, dict[str, int]]:
        """A real PushSink through a 503-injecting proxy while the server is killed and
        stopped (and PostgreSQL restarted); then made, stored, lost, duplicated."""
        host_root = faultroots.copy_host(self.tmp / f"push-host-{self.kind}")
        proxy = Proxy(self.port)
        spool = Spool(str(self.tmp / f"spool-{self.kind}"), 100_000)
        collector = Collector(CollectorOptions(
            proc_root=str(host_root / "proc"), sys_root=str(host_root / "sys"),
            hostname="push-host", walk_interval_seconds=0, series_interval_seconds=0))
        self.add_tokens(["push-host"])
        pusher = Pusher(proxy.url, "token-push-host-0123456789", spool, timeout=3.0,
                        backoff_seconds=0.05, backoff_max_seconds=0.5)
        sink = PushSink(spool, pusher)
        made: list[str] = []
        real_id = push.new_snapshot_id

        def new_id() -> str:
            sid = real_id()
            made.append(sid)
            return sid

        push.new_snapshot_id = new_id  # type: ignore[assignment]
        faults: dict[str, int] = Counter()
        mem = host_root / faultroots.MEM
        try:
            for k in range(ticks):
                # Cgroups come and go, so snapshots carry new and removed ones.
                (mem / f"job-{k}").mkdir()
                for f in ("memory.stat", "memory.usage_in_bytes", "memory.kmem.usage_in_bytes"):
                    shutil.copy(mem / "process_api" / f, mem / f"job-{k}" / f)
                if k >= 2:
                    shutil.rmtree(mem / f"job-{k - 2}")
                phase = k * 8 // ticks
                if k == ticks * 1 // 8:
                    self.server.proc.kill()  # type: ignore[union-attr]
                    self.server.proc.wait()  # type: ignore[union-attr]
                    faults["server killed (SIGKILL)"] += 1
                if k == ticks * 2 // 8:
                    self.server.start()
                if k == ticks * 3 // 8:
                    os.kill(self.server.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
                    faults["server stopped (SIGSTOP) 4 s"] += 1
                    threading.Timer(4.0, os.kill, (self.server.proc.pid,  # type: ignore
                                                   signal.SIGCONT)).start()
                if k == ticks * 5 // 8 and self.pg is not None:
                    threading.Thread(target=self.pg.restart).start()
                    faults["PostgreSQL restarted"] += 1
                proxy.mode = "faults" if phase in (0, 2, 4, 6, 7) else "pass"
                sink.write(collector.collect())
                time.sleep(0.02)
            proxy.mode = "faults"
            deadline = time.monotonic() + 120
            while spool.pending() and time.monotonic() < deadline:
                pusher.flush()
                time.sleep(0.1)
        finally:
            push.new_snapshot_id = real_id  # type: ignore[assignment]
            proxy.close()
        faults.update({f"proxy: {k}": v for k, v in proxy.injected.items()})
        faults["snapshots pushed"] = len(made)
        faults["concurrent-duplicate ids (ingest group)"] = len(self.dup_ids)
        faults["pending in the spool at the end"] = len(spool.pending())
        faults["rejected/ + deferred/"] = len(list((spool.dir / "rejected").iterdir())) + len(
            list((spool.dir / "deferred").iterdir()))
        made_all = made + self.dup_ids
        with self.sessions() as s:
            rows = s.execute(select(m.Scrape.snapshot_id, m.Scrape.taken_at, m.Host.name)
                             .join(m.Host, m.Host.id == m.Scrape.host_id)
                             .where(m.Host.name.in_(["push-host", "dup-host"]))).all()
        ids = Counter(r[0] for r in rows)
        times = Counter((r[2], r[1]) for r in rows)
        lost = len(set(made_all) - set(ids))
        dup = sum(n - 1 for n in ids.values() if n > 1) + sum(
            n - 1 for n in times.values() if n > 1)
        return len(made_all), lost, dup, dict(faults)

    def close(self) -> None:
        self.server.stop()
        self.engine.dispose()


class Proxy:
    """HTTP in front of the server: in 'faults' mode it answers 503 without forwarding, or
    forwards and then answers 503 (stored, but the sender is told it failed), or forwards and
    drops the answer; otherwise it forwards."""

    def __init__(self, upstream: int) -> None:
        self.mode = "pass"
        self.injected: Counter[str] = Counter()
        self.n = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                proxy.n += 1
                k = proxy.n
                if proxy.mode == "faults" and k % 5 == 1:
                    proxy.injected["503 before the server"] += 1
                    return self._answer(503, b'{"detail": "injected"}')
                try:
                    status, out = self._forward(data)
                except OSError:
                    return self._answer(502, b'{"detail": "upstream down"}')
                if proxy.mode == "faults" and k % 7 == 3:
                    proxy.injected["503 after the server answered"] += 1
                    return self._answer(503, b'{"detail": "injected after"}')
                if proxy.mode == "faults" and k % 11 == 5:
                    proxy.injected["answer dropped after the server answered"] += 1
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                return self._answer(status, out)

            def _forward(self, data: bytes) -> tuple[int, bytes]:
                import http.client
                c = http.client.HTTPConnection("127.0.0.1", upstream, timeout=10)
                try:
                    c.request("POST", self.path, data, {k: v for k, v in self.headers.items()
                                                        if k.lower() != "host"})
                    r = c.getresponse()
                    return r.status, r.read()
                finally:
                    c.close()

            def _answer(self, status: int, out: bytes) -> None:
                with contextlib.suppress(OSError):  # the Pusher gave up waiting
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)

            def log_message(self, *a: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# -- the collector side ------------------------------------------------------------------------

def collector_cases(tally: Tally, tmp: Path, bound: float) -> None:
    """`collect --once --format json` on each fault root: crash = non-zero exit, hang = bound."""

    def one(item: tuple[str, Callable[[Path], None]]) -> None:
        name, build = item
        root = faultroots.copy_host(tmp / f"fault-{abs(hash(name))}")
        build(root)
        cmd = [sys.executable, "-m", "app.cli", "collect", "--once", "--format", "json",
               "--proc-root", str(root / "proc"), "--sys-root", str(root / "sys")]
        try:
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=bound)
        except subprocess.TimeoutExpired:
            tally.add("collector: collect --once", name, "hang")
            return
        subprocess.run(["rm", "-rf", str(root)], check=False)
        ok = p.returncode == 0
        if ok:
            try:
                json.loads(p.stdout)
            except ValueError:
                ok = False
        tally.add("collector: collect --once", name,
                  "ok" if ok else "crash")
        if not ok:
            print(f"  {name}: exit {p.returncode}: {p.stderr.decode()[-300:]}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, faultroots.BUILDERS.items()))


# -- main --------------------------------------------------------------------------------------

def have_pg() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a sample of each kind, under ~60 s")
    ap.add_argument("--pg", action=argparse.BooleanOptionalAction, default=None,
                    help="also on PostgreSQL (default: when initdb is installed)")
    a = ap.parse_args()
    use_pg = have_pg() if a.pg is None else a.pg
    logging.getLogger("slabscope.push").setLevel(logging.CRITICAL)  # injected failures
    t0 = time.monotonic()
    tally = Tally()
    # tmpfs where there is one: 13 copies of a host and trees of 10,000 and 2,000 levels.
    tmp = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None,
                                prefix="slabscope-faults-"))
    base = base_snapshot(tmp)
    bound = 30.0 if a.quick else 60.0  # collect --once
    slow_bound = 12.0 if a.quick else 30.0  # unfinished headers held this long = hung
    pushes: list[tuple[str, int, int, int, dict[str, int]]] = []
    cthread = threading.Thread(target=collector_cases, args=(tally, tmp, bound))
    dbs: list[tuple[str, Callable[[], tuple[str, Any]]]] = [
        ("sqlite", lambda: (f"sqlite:///{tmp / 'faults.db'}", None))]
    if use_pg:
        def pg() -> tuple[str, Any]:
            from bench._pgcluster import Cluster
            c = Cluster()
            import psycopg
            with psycopg.connect(host="127.0.0.1", port=c.port, user="postgres",
                                 dbname="postgres", autocommit=True) as conn:
                conn.execute('CREATE DATABASE "faults"')
            return f"postgresql+psycopg://postgres@127.0.0.1:{c.port}/faults", c
        dbs.append(("postgresql", pg))
    try:
        for kind, make in dbs:
            url, cluster = make()
            upgrade(url)
            b = Bench(kind, url, a.quick, tally, tmp, base, cluster)
            if not cthread.is_alive() and cthread.ident is None:
                cthread.start()  # after the first server is up: its start is timed
            try:
                slow = b.open_slow(4 if a.quick else 16)
                opened = time.monotonic()
                b.ingest()
                b.gets()
                b.check_slow(slow, opened, slow_bound)
                b.simulations()
                made, lost, dup, faults = b.push_under_faults(40 if a.quick else 240)
                pushes.append((kind, made, lost, dup, faults))
            finally:
                b.close()
                if cluster is not None:
                    cluster.remove()
        cthread.join()
    finally:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)  # 2,000 levels: not rmtree

    print(f"\n{'group':<46}{'tried':>7}{'5xx':>6}{'crash':>7}{'hung':>6}   answers")
    for name, g in tally.groups.items():
        answers = ", ".join(f"{k}x{v}" for k, v in sorted(g.codes.items()))
        print(f"{name:<46}{g.tried:>7}{g.err5xx:>6}{g.crashed:>7}{g.hung:>6}   {answers[:90]}")
    tried, e5, crashed, hung = tally.totals()
    print(f"{'TOTAL bad inputs':<46}{tried:>7}{e5:>6}{crashed:>7}{hung:>6}")
    lost_all = dup_all = 0
    for kind, made, lost, dup, faults in pushes:
        lost_all += lost
        dup_all += dup
        print(f"\npush under faults ({kind}): {made} snapshot ids checked, {lost} lost, "
              f"{dup} duplicated; faults: " + ", ".join(f"{k} {v}" for k, v in faults.items()))
    print(f"\nTOTAL: {tried} bad inputs tried: {e5} gave 5xx, {crashed} crashed, {hung} hung; "
          f"snapshots {lost_all} lost, {dup_all} duplicated (target 0 each) "
          f"[{time.monotonic() - t0:.0f} s]")
    failures = [(n, f) for n, g in tally.groups.items() for f in g.failures]
    if failures:
        print("\nInputs that failed:")
        for n, f in failures:
            print(f"  {n}: {f}")
    return 1 if (e5 or crashed or hung or lost_all or dup_all) else 0


if __name__ == "__main__":
    sys.exit(main())
