"""Pages render the seeded data, their JSON twins carry the same, errors are pages too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.web.templating import human_bytes, human_count, sparkline
from tests.seed import HOSTILE


@pytest.fixture(scope="module")
def client(seeded_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=seeded_url))) as c:
        yield c


def test_humanised_numbers() -> None:
    assert human_bytes(1536) == "1.5 KiB" and human_bytes(3 * 1024**3) == "3.0 GiB"
    assert human_bytes(None) == "\u2013" and human_bytes(512) == "512 B"
    assert human_count(1234) == "1.2k" and human_count(2_500_000) == "2.5M"
    assert human_count(7) == "7" and human_count(-1500) == "-1.5k"
    assert sparkline([1.0]) == "" and sparkline([0.0, 1.0]).startswith("0.0,22.0 120.0,2.0")


def test_fleet_page_and_twin(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    html = r.text
    assert html.index("host-2") < html.index("host-1") < html.index("host-0")
    assert "stopped reporting" in html and 'data-stale-banner' in html
    assert "<polyline" in html
    twin = client.get("/?format=json").json()
    assert [h["name"] for h in twin["hosts"]] == ["host-2", "host-1", "host-0"]
    assert twin["hosts"][0]["memcg_dying"] == 117


def test_host_page_points_follow_the_range(client: TestClient) -> None:
    d = client.get("/hosts/host-0?range=1h&format=json").json()
    assert d["points"] == {"memcgs": 30, "slab": 30, "percpu": 30, "pins": 30}
    assert d["range"]["preset"] == "1h" and d["removed_total"] == 6
    since = d["range"]["until"].replace("Z", "+00:00")
    from datetime import datetime, timedelta
    until = datetime.fromisoformat(since)
    custom = client.get("/hosts/host-0", params={
        "since": (until - timedelta(minutes=10)).isoformat(), "until": until.isoformat(),
        "format": "json"}).json()
    assert custom["points"]["memcgs"] == 11 and custom["range"]["preset"] is None
    html = client.get("/hosts/host-0?range=1h").text
    assert 'id="chart-memcgs"' in html and 'data-points="30"' in html
    assert "/static/vendor/plotly.min.js" in html and "cdn" not in html.lower()
    assert "dentry" in html  # in the top caches
    # Top subtrees: the estimated charge is shown beside the measured (it read "0 B" alone)
    top = html[html.index('id="top-subtrees"'):html.index("</table>", html.index(
        'id="top-subtrees"'))]
    assert "<small data-estimated>+ " in top and " est.</small>" in top


def test_cache_page(client: TestClient) -> None:
    d = client.get("/hosts/host-0/caches/dentry?range=1h&format=json").json()
    assert d["geometry"]["object_size_bytes"] == 192 and d["geometry"]["objs_per_slab"] == 21
    assert d["points"]["objects"] == 30
    util = d["figures"]["utilisation"]["data"][0]["y"]
    assert all(0 < u <= 1 for u in util)
    assert client.get("/hosts/host-0/caches/no-such-cache").status_code == 404


def test_cgroups_page_escapes_hostile_names(client: TestClient) -> None:
    html = client.get("/hosts/host-0/cgroups").text
    assert HOSTILE not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    twin = client.get("/hosts/host-0/cgroups?format=json").json()
    assert any(n["name"] == HOSTILE for n in twin["nodes"])


def test_error_pages(client: TestClient) -> None:
    r = client.get("/hosts/nope")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    assert "no host named" in r.text and "slabscope doctor" in r.text
    r = client.get("/hosts/host-0?range=9y")
    assert r.status_code == 422 and "range must be one of" in r.text
    assert client.get("/hosts/nope?format=json").json()["detail"].startswith("no host named")


def test_empty_fleet_says_what_to_do(sqlite_url: str) -> None:
    from app.db.migrate import upgrade
    upgrade(sqlite_url)
    with TestClient(create_app(Settings(database_url=sqlite_url))) as c:
        html = c.get("/").text
    assert "No hosts yet" in html and "slabscope doctor" in html


def test_simulate_page_shows_which_knobs_are_sourced(client: TestClient) -> None:
    d = client.get("/simulate?scenario=threads-moved-away&format=json").json()
    by_name = {k["name"]: k for k in d["knobs"]}
    assert by_name["threads-moved-away: classes[0].count"]["status"] == "source"
    assert by_name["threads-moved-away: classes[0].lifetime_seconds"]["status"] == "assumption"
    assert not any(n.startswith("kubernetes-cronjobs: ") for n in by_name)  # this preset only
    assert {k["status"] for k in d["knobs"]} == {"source", "assumption"}
    html = client.get("/simulate?scenario=threads-moved-away").text
    sourced = sum(k["status"] == "source" for k in d["knobs"])
    assert f"{sourced} from a source, {len(d['knobs']) - sourced} assumptions" in html
    assert html.count('<tr data-status="assumption">') == len(d["knobs"]) - sourced
    # the selftest grid comes from running the steps: its cells say what the checks read
    dead = next(o for o in d["selftests"]
                if o["test"] == "test_kmem_dead_cgroups" and o["era"] == "pre-5.3")
    assert not dead["passes"] and dead["why"].startswith("nr_dying_descendants 30, 30")
