"""POST /api/v1/ingest: collectors push their snapshots (gzip JSON), one token per host.

Body: {"snapshot_id": "<uuid>", "snapshot": <collect --format json>} gzip-compressed, with
`Authorization: Bearer <token>`. A token writes only its own host. The snapshot id makes
ingest idempotent: a retry of a stored snapshot answers 200 "duplicate" and stores nothing.
Limits: 4 MiB compressed and 32 MiB once decompressed (413), the snapshot schema (422).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import threading
import zlib
from collections import Counter
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from app.api.routes.alerts import post_webhook
from app.db import store, views
from app.deps import rules_of
from app.domain.alerts import evaluate
from app.domain.snapshot_json import snapshot_from_dict

router = APIRouter(prefix="/api/v1", tags=["ingest"])
log = logging.getLogger("slabscope.ingest")
INGEST_MAX_COMPRESSED = 4 * 1024 * 1024
INGEST_MAX_JSON = 32 * 1024 * 1024
SNAPSHOT_ID_MAX = 64


class IngestCounters:
    """The server's own ingest counters (exported at /metrics)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_outcome: Counter[str] = Counter()
        self.spool_dropped: dict[str, int] = {}

    def add(self, outcome: str) -> None:
        """Count one request by its outcome."""
        with self._lock:
            self.by_outcome[outcome] += 1

    def dropped(self, host: str, total: int) -> None:
        """Remember what a host's collector says it dropped from its spool, in all."""
        with self._lock:
            self.spool_dropped[host] = max(total, self.spool_dropped.get(host, 0))


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def _decompress(raw: bytes, encoding: str) -> bytes:
    if encoding != "gzip":
        return raw
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, INGEST_MAX_JSON + 1)
    except zlib.error as err:
        raise HTTPException(422, f"body is not valid gzip: {err}") from err
    if len(out) > INGEST_MAX_JSON or d.unconsumed_tail:
        raise HTTPException(413, f"snapshot is over {INGEST_MAX_JSON} bytes once decompressed")
    if not d.eof:
        raise HTTPException(422, "body is not valid gzip: truncated or corrupt stream")
    return out


@router.post("/ingest")
async def ingest(request: Request) -> dict[str, Any]:
    """Store one pushed snapshot of the token's host (idempotent by snapshot_id)."""
    counters: IngestCounters = request.app.state.ingest
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer ") or len(auth) > 300:
        counters.add("unauthorized")
        raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)")
    raw = await request.body()
    if len(raw) > INGEST_MAX_COMPRESSED:
        counters.add("too_large")
        raise HTTPException(413, f"body of {len(raw)} bytes is over {INGEST_MAX_COMPRESSED}")
    try:
        body = json.loads(_decompress(raw, request.headers.get("content-encoding", "")))
    except HTTPException:
        counters.add("invalid")
        raise
    except (ValueError, UnicodeDecodeError) as err:
        counters.add("invalid")
        raise HTTPException(422, f"body is not JSON: {err}") from err
    return await run_in_threadpool(_store, request, counters, auth[7:].strip(), body)


def _store(request: Request, counters: IngestCounters, token: str,
           body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("snapshot"), dict):
        counters.add("invalid")
        raise HTTPException(422, 'body must be {"snapshot_id": ..., "snapshot": {...}}')
    sid = body.get("snapshot_id")
    if not isinstance(sid, str) or not 8 <= len(sid) <= SNAPSHOT_ID_MAX:
        counters.add("invalid")
        raise HTTPException(422, f"snapshot_id must be a string of 8 to {SNAPSHOT_ID_MAX} "
                                 "characters")
    try:
        snap = snapshot_from_dict(body["snapshot"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        counters.add("invalid")
        raise HTTPException(422, f"snapshot does not match slabscope.snapshot/1: "
                                 f"{type(err).__name__}: {err}") from err
    sessions = request.app.state.sessions
    with sessions.begin() as s:
        host = store.host_for_token(s, token_hash(token))
    if host is None:
        counters.add("forbidden")
        raise HTTPException(403, "unknown or revoked token")
    if snap.host.hostname != host:
        counters.add("forbidden")
        raise HTTPException(403, f"this token writes only host {host!r}, not "
                                 f"{snap.host.hostname!r}")
    # The collector's count of snapshots it dropped from a full spool: a header set when it
    # sends (always current), or the body field of older senders.
    header = request.headers.get("x-slabscope-spool-dropped", "")
    dropped = int(header) if header.isdigit() else body.get("spool_dropped_total")
    if isinstance(dropped, int) and dropped >= 0:
        counters.dropped(host, dropped)
    try:
        with sessions.begin() as s:
            scrape_id = store.write_snapshot(s, snap, snapshot_id=sid)
    except (store.SnapshotConflict, IntegrityError):
        counters.add("duplicate")
        return {"status": "duplicate", "snapshot_id": sid}
    counters.add("stored")
    settings = request.app.state.settings
    if settings.alert_webhook_url:
        _alert_on_change(request, host)
    return {"status": "stored", "snapshot_id": sid, "scrape_id": scrape_id}


def _alert_on_change(request: Request, host: str) -> None:
    """Post the host's alerts that were not firing at its previous ingest."""
    settings = request.app.state.settings
    with request.app.state.sessions() as s:
        d = views.host_detail(s, host, now=views.utcnow(),
                              stale_after=timedelta(seconds=settings.stale_after_seconds))
    if d is None:
        return
    fired = evaluate([d.summary], rules_of(settings))
    state: dict[str, set[str]] = request.app.state.alert_state
    before = state.get(host, set())
    new = [a for a in fired if a.rule not in before]
    state[host] = {a.rule for a in fired}
    if new:
        post_webhook(settings.alert_webhook_url, new)


def gzip_body(snapshot_id: str, snapshot: dict[str, Any], spool_dropped: int = 0) -> bytes:
    """What a collector sends (also used by the tests and the load bench)."""
    return gzip.compress(json.dumps({"snapshot_id": snapshot_id, "snapshot": snapshot,
                                     "spool_dropped_total": spool_dropped}).encode(), 5)
