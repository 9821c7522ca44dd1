"""JSON shapes: pages of items, the envelopes around views (app/domain/views.py), and every
error status a route can answer, declared so /openapi.json says what the server sends
(tests/api/test_schemathesis.py holds every response to it). The model's answers carry the
simulation's records, so they are in app/api/model_schemas.py: schemas import only the
domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.domain.alerts import Alert, AlertRules
from app.domain.views import (
    CacheView,
    CgroupView,
    HostDetail,
    HostSummary,
    RemovedView,
    SeriesView,
)


class ErrorOut(BaseModel):
    """Every error of the API: a status and a sentence that says what to do."""

    detail: str


_ERRORS = {
    400: "The body could not be read (not UTF-8 JSON)",
    401: "No bearer token (`Authorization: Bearer <token>`)",
    403: "Unknown or revoked token, or a snapshot of another host than the token's",
    404: "No such host, cache or scenario",
    409: "The host has too little history for this view yet",
    411: "No Content-Length",
    413: "The body is over the size limit (`detail` says which)",
    422: "Invalid request: `detail` says which value and why",
    503: "The database is unavailable or not migrated",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Declared error responses, each {"detail": "<sentence>"}."""
    return {c: {"model": ErrorOut, "description": _ERRORS[c]} for c in codes}


# Every error, validation included, is {"detail": "<sentence>"}: one shape for clients to read,
# declared here so /openapi.json says what the server sends (not FastAPI's default list).
ERROR_RESPONSES = errors(422)

# ?format=csv of the table routes: the 200 is JSON or CSV.
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "JSON by default; with format=csv, CSV with a header row",
    "content": {"text/csv": {"schema": {"type": "string"}}},
    "headers": {"Content-Disposition": {
        "description": "With format=csv: attachment; filename=... (RFC 5987 filename*)",
        "schema": {"type": "string"}}}}}


class HostPage(BaseModel):
    """A page of hosts, most dying memcgs first."""

    items: list[HostSummary]
    total: int
    limit: int
    offset: int
    cost_model: str = Field(description="how wasted_bytes is computed")


class HostOut(BaseModel):
    """One host in detail."""

    host: HostDetail


class SeriesOut(BaseModel):
    """One time series, downsampled in SQL to at most 2000 points."""

    series: SeriesView
    points: int


class CachePage(BaseModel):
    """The cache table of one scrape, sorted, one page of it."""

    at: datetime | None
    window_seconds: int
    sort: str
    order: str
    items: list[CacheView]
    total: int
    limit: int
    offset: int


class CgroupPage(BaseModel):
    """The cgroup trees of one scrape, depth first, one page of nodes."""

    at: datetime | None
    items: list[CgroupView]
    total: int
    limit: int
    offset: int


class RemovedPage(BaseModel):
    """Removed cgroups, newest first."""

    items: list[RemovedView]
    total: int
    limit: int
    offset: int


class ChurnBucketOut(BaseModel):
    """Cgroups made, removed and freed in one bucket, counted by the kernel (None: not
    counted then), and the removals the collector's listing saw. `freed` is None too where
    the ids lagged behind num_cgroups (a burst counted at the next cgroup made), and `exact`
    False then: the bucket that counts the burst gives freed over both (ChurnOut.note)."""

    at: datetime
    created: int | None
    removed: int | None
    freed: int | None
    seen: int
    exact: bool


class ChurnOut(BaseModel):
    """Counted churn of a host's memcg hierarchy over a range, bucketed."""

    hierarchy: str
    width_seconds: int
    totals: dict[str, int]
    buckets: list[ChurnBucketOut]
    note: str = ""  # when cgroups that lived less than a tick are counted


class AlertsOut(BaseModel):
    """Every alert that fires now, the rules, and whether a webhook is set."""

    alerts: list[Alert]
    rules: AlertRules
    webhook: bool


class IngestOut(BaseModel):
    """A pushed snapshot stored, or already stored (a retry): nothing is stored twice."""

    status: Literal["stored", "duplicate"]
    snapshot_id: str
    scrape_id: int | None = Field(default=None, description="only when stored")
