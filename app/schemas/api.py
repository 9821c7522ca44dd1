"""JSON shapes: pages of items, and the envelopes around views (app/domain/views.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

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


# Every error, validation included, is {"detail": "<sentence>"}: one shape for clients to read,
# declared here so /openapi.json says what the server sends (not FastAPI's default list).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "Invalid request: `detail` says which value and why"},
}


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
