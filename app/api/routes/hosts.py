"""/api/v1/hosts...: hosts, series, caches, cgroups and removed cgroups. JSON, or CSV."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from app.api.csvout import csv_response
from app.db import models as m
from app.db import queries as q
from app.deps import SessionDep, SettingsDep, When
from app.domain.cost import memcg_cost
from app.domain.timerange import RangeError, resolve
from app.domain.views import CacheView
from app.schemas.api import (
    CSV_RESPONSE,
    CachePage,
    CgroupPage,
    ChurnBucketOut,
    ChurnOut,
    HostOut,
    HostPage,
    RemovedPage,
    SeriesOut,
    errors,
)
from app.services import churnview
from app.services import hosts as views

router = APIRouter(prefix="/api/v1", tags=["hosts"], responses=errors(422, 503))
NOT_FOUND = errors(404)

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Fmt = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]
METRIC = re.compile("^(?:" + "|".join(q.SCRAPE_METRICS)
                    + r"|cache:[^:]{1,255}:(?:bytes|objects|active_objs|slabs))$")
CacheSort = Literal["bytes", "objects", "active_objs", "utilisation", "slabs", "growth_bytes",
                    "name", "object_size_bytes"]


def get_host(session: SessionDep, name: str) -> m.Host:
    """The host or NotFound (a 404) that names it."""
    return views.get_host(session, name)


@router.get("/hosts", response_model=HostPage, responses=CSV_RESPONSE)
def list_hosts(session: SessionDep, settings: SettingsDep, limit: Limit = 100,
               offset: Offset = 0, format: Fmt = "json") -> HostPage | Response:
    """Hosts, most dying memcgs first, with growth, waste and last scrape."""
    items, total = views.fleet(session, limit=limit, offset=offset, now=views.utcnow(),
                               stale_after=timedelta(seconds=settings.stale_after_seconds),
        min_history=timedelta(seconds=settings.growth_min_history_seconds))
    if format == "csv":
        return csv_response(items, "hosts")
    model = items[0].cost_model if items else memcg_cost("6.10", 1, 1).model
    return HostPage(items=items, total=total, limit=limit, offset=offset, cost_model=model)


@router.get("/hosts/{host}", response_model=HostOut, responses=NOT_FOUND)
def host_detail(host: str, session: SessionDep, settings: SettingsDep) -> HostOut:
    """One host: summary, identity, and the sources its latest scrape could read."""
    d = views.host_detail(session, host, now=views.utcnow(),
                          stale_after=timedelta(seconds=settings.stale_after_seconds),
        min_history=timedelta(seconds=settings.growth_min_history_seconds))
    return HostOut(host=d)


@router.get("/hosts/{host}/series", response_model=SeriesOut,
            responses={**NOT_FOUND, **CSV_RESPONSE})
def host_series(host: str, session: SessionDep,
                metric: Annotated[str, Query(max_length=300, description=(
                    "memcg_dying, memcg_live, memcg_total, slab_bytes, sreclaimable_bytes, "
                    "sunreclaim_bytes, percpu_bytes, kernel_stack_bytes, shmem_bytes, or "
                    "cache:<name>:bytes|objects|active_objs|slabs"))] = "memcg_dying",
                since: When = None, until: When = None,
                range: Annotated[str | None, Query(description="1h, 24h, 7d or 30d")] = None,
                step: Annotated[int | None, Query(ge=1, le=30 * 86_400,
                                                  description="bucket seconds")] = None,
                format: Fmt = "json") -> SeriesOut | Response:
    """A metric over time, averaged into buckets in SQL: never more than 2000 points."""
    h = get_host(session, host)
    if not METRIC.match(metric):
        raise HTTPException(422, f"unknown metric {metric!r}")
    try:
        tr = resolve(range, since, until, h.last_seen_at)
    except RangeError as err:
        raise HTTPException(422, str(err)) from err
    s = views.series(session, h.id, metric, tr.since, tr.until, step)
    if s is None:
        raise HTTPException(404, f"host {host!r} has no cache {metric.split(':')[1]!r}")
    if format == "csv":
        return csv_response([{"time": t, "value": v} for t, v in zip(s.times, s.values,
                                                                       strict=True)],
                            f"{host}-{metric}")
    return SeriesOut(series=s, points=len(s.times))


def _sort_key(sort: str):  # type: ignore[no-untyped-def]
    def key(c: CacheView) -> tuple[bool, object]:
        v = getattr(c, sort)
        return (v is None, v if v is not None else 0)
    return key


@router.get("/hosts/{host}/caches", response_model=CachePage,
            responses={**NOT_FOUND, **CSV_RESPONSE})
def host_caches(host: str, session: SessionDep, at: When = None,
                window: Annotated[int, Query(ge=60, le=30 * 86_400,
                                             description="growth window, seconds")] = 86_400,
                sort: Annotated[CacheSort, Query(description="the column to sort by")] = "bytes",
                order: Annotated[Literal["asc", "desc"], Query()] = "desc",
                limit: Limit = 100, offset: Offset = 0,
                format: Fmt = "json") -> CachePage | Response:
    """The cache table at a time: bytes, objects, utilisation, growth over a window."""
    h = get_host(session, host)
    items, when = views.caches(session, h.id, at, timedelta(seconds=window))
    items.sort(key=_sort_key(sort), reverse=order == "desc")
    if order == "desc":  # unknown values last either way
        items.sort(key=lambda c: getattr(c, sort) is None)
    page = items[offset:offset + limit]
    if format == "csv":
        return csv_response(page, f"{host}-caches")
    return CachePage(at=when, window_seconds=window, sort=sort, order=order, items=page,
                     total=len(items), limit=limit, offset=offset)


@router.get("/hosts/{host}/caches/{name:path}/series", response_model=SeriesOut,
            responses={**NOT_FOUND, **CSV_RESPONSE})
def cache_series(host: str, name: str, session: SessionDep,
                 what: Annotated[Literal["bytes", "objects", "active_objs", "slabs"],
                                 Query()] = "bytes",
                 since: When = None, until: When = None,
                 range: Annotated[str | None, Query()] = None,
                 step: Annotated[int | None, Query(ge=1, le=30 * 86_400)] = None,
                 format: Fmt = "json") -> SeriesOut | Response:
    """One cache over time (a name holding "/" is sent as %2F)."""
    return host_series(host, session, f"cache:{name}:{what}", since, until, range, step,
                       format)


@router.get("/hosts/{host}/cgroups", response_model=CgroupPage,
            responses={**NOT_FOUND, **CSV_RESPONSE})
def host_cgroups(host: str, session: SessionDep, at: When = None, limit: Limit = 1000,
                 offset: Offset = 0, format: Fmt = "json") -> CgroupPage | Response:
    """The cgroup trees with live and dying counts per subtree and memory.stat figures."""
    h = get_host(session, host)
    items, when = views.cgroups(session, h.id, at)
    page = items[offset:offset + limit]
    if format == "csv":
        return csv_response(page, f"{host}-cgroups")
    return CgroupPage(at=when, items=page, total=len(items), limit=limit, offset=offset)


@router.get("/hosts/{host}/removed", response_model=RemovedPage,
            responses={**NOT_FOUND, **CSV_RESPONSE})
def host_removed(host: str, session: SessionDep, since: When = None, until: When = None,
                 limit: Limit = 100, offset: Offset = 0,
                 format: Fmt = "json") -> RemovedPage | Response:
    """Cgroups that disappeared, newest first, and what they last had charged."""
    h = get_host(session, host)
    if since is not None and until is not None and since > until:
        raise HTTPException(422, f"since ({since.isoformat()}) must not be after until "
                                 f"({until.isoformat()})")
    items, total = views.removed(session, h, since, until, limit, offset)
    if format == "csv":
        return csv_response(items, f"{host}-removed")
    return RemovedPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/hosts/{host}/churn", response_model=ChurnOut,
            responses={**NOT_FOUND, **CSV_RESPONSE})
def host_churn(host: str, session: SessionDep, since: When = None, until: When = None,
               range: Annotated[str | None, Query(description="1h, 24h, 7d or 30d")] = None,
               format: Fmt = "json") -> ChurnOut | Response:
    """Cgroups made and removed per bucket, counted from the kernel's cgroup ids and
    /proc/cgroups (cgroups that lived less than a tick included), beside the removals the
    listing saw."""
    h = get_host(session, host)
    try:
        tr = resolve(range, since, until, h.last_seen_at)
    except RangeError as err:
        raise HTTPException(422, str(err)) from err
    v = churnview.churn_view(session, h, tr.since, tr.until)
    buckets = [ChurnBucketOut(at=t, created=c, removed=r, freed=f, seen=n, exact=e)
               for t, c, r, f, n, e in zip(v.times, v.created, v.removed, v.freed, v.seen,
                                           v.exact, strict=True)]
    if format == "csv":
        return csv_response([b.model_dump() for b in buckets], f"{host}-churn",
                            list(ChurnBucketOut.model_fields))
    return ChurnOut(hierarchy=v.hierarchy, width_seconds=v.width_seconds, totals=v.totals(),
                    buckets=buckets, note=churnview.CHURN_NOTE)
