"""Stored data and requests that broke pages and exports (issue 9 items 10 and 11)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from app.api import csvout
from app.api.csvout import csv_response
from app.api.routes.ingest import gzip_body
from app.config import Settings
from app.db import fleetstate, store
from app.db.migrate import upgrade
from app.domain.samples import CgroupSample
from app.fleet.tokens import token_hash
from app.main import create_app
from tests.api.test_ingest import push, snapshot
from tests.conftest import HOST
from tests.snapshots import host_snapshot

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SLASHED = "kmalloc-cg-192/odd"
NAMED = "h\u00f6st \"quoted\" \u4e2d"


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    upgrade(db_url)
    app = create_app(Settings(database_url=db_url))
    with TestClient(app) as c:
        yield c


def _push_host(c: TestClient, name: str, mutate: Any = None) -> None:
    token = "t-" + name.encode().hex()  # a header value is ASCII
    with c.app.state.sessions.begin() as s:  # type: ignore[attr-defined]
        fleetstate.add_token(s, name, token_hash(token), datetime.now(UTC))
    snap = snapshot(name)
    if mutate:
        mutate(snap)
    r = push(c, token, gzip_body("0123456789abcdef", snap))
    assert r.status_code == 200, r.text


def test_cgroup_paths_without_root_empty_or_1200_deep_render(client: TestClient) -> None:
    # 1,200 levels: past the recursion limit, within what a PostgreSQL index row holds.
    deep = "/x" * 1200
    cgs = tuple(CgroupSample("unified", p, {"anon": 4096}, 8192)
                for p in ("/", "job", "", "/job/a", deep))
    with client.app.state.sessions.begin() as s:  # type: ignore[attr-defined]
        store.write_snapshot(s, replace(host_snapshot(HOST, T0), new_cgroups=cgs))
    name = host_snapshot(HOST, T0).host.hostname
    page = client.get(f"/hosts/{quote(name, safe='')}/cgroups")
    assert page.status_code == 200 and '<span class="cg">x</span>' in page.text
    nodes = client.get(f"/hosts/{quote(name, safe='')}/cgroups?format=json").json()["nodes"]
    by_path = {n["path"]: n for n in nodes}
    assert by_path["/"]["live_descendants"] == 1202  # job, job/a, and the 1,200 of deep
    assert by_path["/job"]["live_descendants"] == 1 and by_path["/job/a"]["parent"] == "/job"
    assert by_path[deep]["depth"] == 1200 and by_path["/x"]["live_descendants"] == 1199
    api = client.get(f"/api/v1/hosts/{quote(name, safe='')}/cgroups")
    assert api.status_code == 200 and api.json()["total"] == 1203


def test_removed_refuses_since_after_until(client: TestClient) -> None:
    _push_host(client, "vm-a")
    r = client.get("/api/v1/hosts/vm-a/removed", params={
        "since": "2026-11-30T12:00:00Z", "until": "2026-11-30T11:00:00Z"})
    assert r.status_code == 422
    assert r.json() == {"detail": "since (2026-11-30T12:00:00+00:00) must not be after until "
                                  "(2026-11-30T11:00:00+00:00)"}
    ok = client.get("/api/v1/hosts/vm-a/removed", params={
        "since": "2026-11-30T11:00:00Z", "until": "2026-11-30T12:00:00Z"})
    assert ok.status_code == 200 and ok.json()["total"] == 0


@pytest.mark.parametrize("cell", ["\tcmd", "\rcmd", "|cmd", "=1+1", "+1", "-1", "@x"])
def test_csv_cells_that_start_a_formula_are_neutralised(cell: str) -> None:
    body = csv_response([{"name": cell, "n": 1}], "x").body
    rows = list(csv.reader(io.StringIO(bytes(body).decode())))
    assert rows == [["name", "n"], ["'" + cell, "1"]]


def test_content_disposition_carries_any_host_name() -> None:
    got = csvout.content_disposition(f"{NAMED}-caches.csv")
    assert got == ('attachment; filename="h_st _quoted_ _-caches.csv"; '
                   "filename*=UTF-8''h%C3%B6st%20%22quoted%22%20%E4%B8%AD-caches.csv")
    got.encode("latin-1")  # a header value an HTTP server can send


def test_csv_of_a_non_latin1_quoted_host(client: TestClient) -> None:
    _push_host(client, NAMED)
    r = client.get(f"/api/v1/hosts/{quote(NAMED, safe='')}/caches?format=csv")
    assert r.status_code == 200
    assert r.headers["content-disposition"].endswith(
        "filename*=UTF-8''h%C3%B6st%20%22quoted%22%20%E4%B8%AD-caches.csv")
    html = client.get("/").text  # the fleet page links the host, encoded
    assert f'href="/hosts/{quote(NAMED, safe="")}"' in html


def test_a_cache_name_with_a_slash_has_a_page_and_a_series(client: TestClient) -> None:
    def rename(snap: dict[str, Any]) -> None:
        snap["caches"][0]["name"] = SLASHED
    _push_host(client, "vm-a", rename)
    enc = quote(SLASHED, safe="")
    host = client.get("/hosts/vm-a").text
    assert f'href="/hosts/vm-a/caches/{enc}' in host
    page = client.get(f"/hosts/vm-a/caches/{enc}?format=json")
    assert page.status_code == 200 and page.json()["name"] == SLASHED
    series = client.get(f"/api/v1/hosts/vm-a/caches/{enc}/series?range=1h")
    assert series.status_code == 200 and series.json()["series"]["values"] == [98304.0]
    assert client.get(f"/hosts/vm-a/caches/{quote('no/such', safe='')}").status_code == 404


def test_pages_and_api_carry_csp_and_nosniff(client: TestClient) -> None:
    for path in ("/", "/api/v1/hosts", "/static/js/app.js", "/hosts/none", "/docs"):
        r = client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        csp = r.headers["content-security-policy"]
        assert "object-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
    page = client.get("/").headers["content-security-policy"]
    assert "script-src 'self';" in page and "unsafe-eval" not in page
    big = client.post("/api/v1/simulations", content=b"x" * 10,
                      headers={"Content-Length": "999999999"})
    assert big.status_code == 422 and big.headers["x-content-type-options"] == "nosniff"


def test_422_bodies_match_the_openapi_schema(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    refs = {op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
            for ops in spec["paths"].values() for op in ops.values() if "422" in op["responses"]}
    assert refs == {"#/components/schemas/ErrorOut"}
    assert spec["components"]["schemas"]["ErrorOut"]["properties"] == {
        "detail": {"type": "string", "title": "Detail"}}
    assert spec["components"]["schemas"]["ErrorOut"]["required"] == ["detail"]
    # A validation error (FastAPI's own) and a route's refusal have that one shape.
    for r in (client.get("/api/v1/hosts?limit=0"),
              client.get("/api/v1/hosts/x/series?metric=nope")):
        assert r.status_code in (404, 422) and isinstance(r.json()["detail"], str)
    bad = client.get("/api/v1/hosts?limit=0")
    assert bad.status_code == 422 and list(bad.json()) == ["detail"]
    assert bad.json()["detail"].startswith("limit: ")



@pytest.mark.parametrize("until", ["0001-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00",
                                   "0001-01-01T00:00:00"])
def test_a_range_at_the_edge_of_time_is_422_not_500(until: str, seeded_url: str) -> None:
    with TestClient(create_app(Settings(database_url=seeded_url))) as c:
        for path in ("/hosts/host-0", "/api/v1/hosts/host-0/series",
                     "/hosts/host-0/caches/dentry", "/api/v1/hosts/host-0/caches/dentry/series"):
            r = c.get(path, params={"until": until})
            assert r.status_code == 422, (path, until, r.status_code)
            assert "out of range" in r.text, r.text
