"""POST /api/v1/ingest: collectors push their snapshots (gzip JSON), one token per host.

Body: {"snapshot_id": "<uuid>", "snapshot": <collect --format json>} gzip-compressed, with
`Authorization: Bearer <token>`, as defined once by app.fleet.wire.PushBody (strict types
and bounds; /docs shows it). A token writes only its own host. The snapshot id makes
ingest idempotent: a retry of a stored snapshot answers 200 "duplicate" and stores nothing.
Limits: 4 MiB compressed and 32 MiB once decompressed (413); the schema, JSON nesting, and a
taken_at at most INGEST_MAX_CLOCK_SKEW ahead of the server's clock (422, nothing stored).
The token is checked before the body is read; decompressing and parsing run in a worker
thread, never on the event loop (they cost CPU and memory an unauthenticated sender must not
be able to spend).
Outcome counters, spool drops and alert state are rows of the database (never of this
process), so any number of server processes answer as one.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import zlib
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.api.routes.alerts import post_webhook
from app.db import fleetstate, store
from app.deps import rules_of
from app.domain.alerts import evaluate
from app.domain.samples import Snapshot
from app.domain.snapshot_json import SCHEMA
from app.fleet import wire
from app.fleet.tokens import token_hash
from app.schemas.api import IngestOut, errors
from app.services import hosts as views

router = APIRouter(prefix="/api/v1", tags=["ingest"],
                   responses=errors(401, 403, 411, 413, 422, 503))
log = logging.getLogger("slabscope.ingest")
INGEST_MAX_COMPRESSED = 4 * 1024 * 1024
INGEST_MAX_JSON = 32 * 1024 * 1024
SNAPSHOT_ID_MAX = wire.SNAPSHOT_ID_MAX
INGEST_MAX_CLOCK_SKEW = wire.MAX_CLOCK_SKEW
COUNTER_MAX = (1 << 63) - 1  # a spool-dropped total a BIGINT column holds
_DIGITS = re.compile(r"[0-9]{1,19}")


class Refused(HTTPException):
    """An ingest request refused, with the outcome it is counted under at /metrics."""

    def __init__(self, outcome: str, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.outcome = outcome


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
    if d.unused_data:
        raise HTTPException(422, f"body is not valid gzip: {len(d.unused_data)} bytes after "
                                 "the end of the stream")
    return out


def _parse(raw: bytes, encoding: str) -> wire.PushBody:
    """Decompress, parse and validate a body (in a worker thread: it is the costly part).

    One pass of pydantic-core's JSON parser against the wire schema: wrong types, nulls where
    a value is required, values out of bounds and naive or future timestamps are a 422.
    """
    try:
        data = _decompress(raw, encoding)
    except HTTPException as err:
        raise Refused("invalid", err.status_code, str(err.detail)) from err
    try:
        return wire.parse_push(data, now=views.utcnow())
    except ValidationError as err:
        raise Refused("invalid", 422, _invalid(err)) from err


def _invalid(err: ValidationError) -> str:
    """The 422 detail of a body the wire schema refused."""
    first = err.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        if "recursion limit" in first["msg"]:
            # The parser's depth bound (a snapshot nests 5 deep).
            return "body is not JSON we accept: nested too deeply"
        return f"body is not JSON: {first['msg'].removeprefix('Invalid JSON: ')}"
    return f"body does not match the push schema ({SCHEMA}): {wire.validation_detail(err)}"


@router.post("/ingest", openapi_extra={"requestBody": {
    "required": True,
    "description": "A PushBody as JSON, gzip-compressed with `Content-Encoding: gzip` (as "
                   "collectors send it; plain JSON is accepted too). At most "
                   f"{INGEST_MAX_COMPRESSED} bytes as sent and {INGEST_MAX_JSON} decompressed. "
                   "`slabscope schema` prints the same JSON Schema.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PushBody"}}}}},
    response_model=IngestOut, response_model_exclude_unset=True)
async def ingest(request: Request) -> dict[str, Any]:
    """Store one pushed snapshot of the token's host (idempotent by snapshot_id)."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    try:
        token = _bearer(request)
        # The token first: an unknown sender costs one indexed lookup, never a decompression.
        host = await run_in_threadpool(_host_of, sessions, token)
        raw = await request.body()
        if len(raw) > INGEST_MAX_COMPRESSED:
            raise Refused("too_large", 413,
                          f"body of {len(raw)} bytes is over {INGEST_MAX_COMPRESSED}")
        body = await run_in_threadpool(_parse, raw, request.headers.get("content-encoding", ""))
    except Refused as err:
        await run_in_threadpool(_count, sessions, err.outcome)
        raise
    return await run_in_threadpool(_store_counted, request, host, body)


def _store_counted(request: Request, host: str, body: wire.PushBody) -> dict[str, Any]:
    """Store, count the outcome, evaluate the host's alerts: one worker thread for all."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    try:
        result, dropped = _store(request, host, body)
    except Refused as err:
        _count(sessions, err.outcome)
        raise
    if result["status"] == "duplicate":  # a stored snapshot is counted with its rows
        _count(sessions, "duplicate", host, dropped)
    if result["status"] == "stored" and request.app.state.settings.alert_webhook_url:
        _alert_on_change(request, host)
    return result


def _bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer ") or len(auth) > 300:
        raise Refused("unauthorized", 401,
                      "missing bearer token (Authorization: Bearer <token>)")
    return auth[7:].strip()


def _host_of(sessions: sessionmaker[Session], token: str) -> str:
    """The host a token writes (a 403 for an unknown or revoked token)."""
    with sessions.begin() as s:
        host = fleetstate.host_for_token(s, token_hash(token))
    if host is None:
        raise Refused("forbidden", 403, "unknown or revoked token")
    return host


def _dropped(header: str, field: Any) -> int | None:
    """The collector's spool-dropped total: the header (current) or the body field (older
    senders); None when absent or past what a counter holds (it never blocks a snapshot)."""
    if header:
        return int(header) if _DIGITS.fullmatch(header) and int(header) <= COUNTER_MAX else None
    if isinstance(field, int) and not isinstance(field, bool) and 0 <= field <= COUNTER_MAX:
        return field
    return None


def _count(sessions: sessionmaker[Session], outcome: str, host: str | None = None,
           dropped: int | None = None) -> None:
    """Count a request (and a host's spool drops) in a short transaction of its own."""
    try:
        with sessions.begin() as s:
            fleetstate.count_ingest(s, outcome)
            if host is not None and dropped is not None:
                fleetstate.record_spool_dropped(s, host, dropped)
    except SQLAlchemyError as err:
        # A database that is down counts nothing; the answer stays what it would have been.
        log.warning("ingest %s not counted: %s", outcome, str(err).splitlines()[0])


def _store(request: Request, host: str, body: wire.PushBody
           ) -> tuple[dict[str, Any], int | None]:
    sid = body.snapshot_id
    snap = wire.to_snapshot(body.snapshot)
    if snap.host.hostname != host:
        raise Refused("forbidden", 403, f"this token writes only host {host!r}, not "
                                        f"{snap.host.hostname!r}")
    if host in (".", ".."):
        # A URL path cannot carry it: a browser resolves /hosts/.. (even %2E%2E) to /.
        raise Refused("invalid", 422, f"host name {host!r} cannot be shown: rename the host")
    dropped = _dropped(request.headers.get("x-slabscope-spool-dropped", ""),
                       body.spool_dropped_total)
    scrape_id = _write(request.app.state.sessions, snap, sid, dropped)
    if scrape_id is None:
        return {"status": "duplicate", "snapshot_id": sid}, dropped
    return {"status": "stored", "snapshot_id": sid, "scrape_id": scrape_id}, dropped


def _write(sessions: sessionmaker[Session], snap: Snapshot, sid: str,
           dropped: int | None) -> int | None:
    """Store a snapshot; its scrape id, or None when this snapshot id is already stored.

    "stored" is counted in the transaction that stores the rows: counted if and only if stored.
    """
    tries = 3
    while True:
        try:
            with sessions.begin() as s:
                scrape_id = store.write_snapshot(s, snap, snapshot_id=sid)
                if dropped is not None:
                    fleetstate.record_spool_dropped(s, snap.host.hostname, dropped)
                fleetstate.count_ingest(s, "stored")  # last: the hot row is locked until commit
                return scrape_id
        except store.SnapshotConflict:
            return None
        except (DataError, OverflowError, ValueError) as err:
            # A value the wire format allows but a column cannot hold (an integer past
            # BIGINT on PostgreSQL or past INTEGER on SQLite): invalid data, never a 500.
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise Refused("invalid", 422, f"snapshot holds a value out of range: "
                                          f"{first[:300]}") from err
        except IntegrityError:
            # Either this very snapshot was stored meanwhile (another worker took a retry),
            # or a concurrent push of the host created a row this one meant to (the host, a
            # cache, a cgroup): then writing again finds it. Never answer "duplicate" for a
            # snapshot that is not stored: the collector would drop it.
            with sessions() as s:
                if fleetstate.has_snapshot(s, snap.host.hostname, sid):
                    return None
            tries -= 1
            if tries == 0:
                raise


def _alert_on_change(request: Request, host: str) -> None:
    """Post the host's alerts that were not firing before (or not taken by the webhook).

    The database picks the one server process that posts each.
    """
    settings = request.app.state.settings
    sessions: sessionmaker[Session] = request.app.state.sessions
    now = views.utcnow()
    try:
        with sessions() as s:
            summary = views.host_summary(
                s, host, now=now, stale_after=timedelta(seconds=settings.stale_after_seconds),
        min_history=timedelta(seconds=settings.growth_min_history_seconds))
        if summary is None:
            return
        fired = evaluate([summary], rules_of(settings))
        with sessions.begin() as s:
            won = fleetstate.claim_alerts(s, host, {a.rule for a in fired}, now, timedelta(
                seconds=settings.alert_webhook_retry_seconds))
    except SQLAlchemyError as err:
        # The snapshot is stored: a failed evaluation must not make the collector resend it.
        log.error("alerts of %s not evaluated: %s", host, str(err).splitlines()[0])
        return
    new = [a for a in fired if a.rule in won]
    if new:
        post_webhook(settings.alert_webhook_url, new,
                     on_sent=lambda: _notified(sessions, host, won, now))


def _notified(sessions: sessionmaker[Session], host: str, rules: set[str],
              claimed_at: datetime) -> None:
    try:
        with sessions.begin() as s:
            fleetstate.mark_notified(s, host, rules, claimed_at, views.utcnow())
    except SQLAlchemyError as err:
        log.warning("alerts of %s posted, not marked: %s", host, str(err).splitlines()[0])


def gzip_body(snapshot_id: str, snapshot: dict[str, Any], spool_dropped: int = 0) -> bytes:
    """What a collector sends (also used by the tests and the load bench)."""
    return gzip.compress(json.dumps({"snapshot_id": snapshot_id, "snapshot": snapshot,
                                     "spool_dropped_total": spool_dropped}).encode(), 5)
