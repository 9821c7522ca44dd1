"""Real-browser tests: Debian's chromium driven by Playwright against a live server.

Every page loads with no console error, charts hold the expected points, the range picker
changes them, the cgroup tree unfolds, and a cgroup named <img src=x onerror=alert(1)> is
text that runs nothing. Screenshots land in tests/artifacts/ for a reviewer.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from tests.conftest import ROOT, require
from tests.seed import HOSTILE

CHROMIUM = os.environ.get("SLABSCOPE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(seeded_sqlite_url: str) -> Iterator[str]:
    seeded_url = seeded_sqlite_url
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(Settings(database_url=seeded_url)), host="127.0.0.1",
                            port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists(),
            f"chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


class Watched:
    """A page with its console errors, page errors and dialogs recorded."""

    def __init__(self, browser: Any) -> None:
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 1000},
                                       timezone_id="Asia/Tokyo")
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    w = Watched(browser)
    yield w
    w.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def plotted(page: Any, chart: str) -> int:
    """Points plotly really drew in a chart's first trace."""
    return int(page.evaluate(
        "id => { const el = document.getElementById('chart-' + id);"
        " if (!el || !el.data) return -1; const t = el.data[0];"
        " return t.x ? t.x.length : t.link.value.length }", chart))


@pytest.mark.parametrize("path", ["/", "/hosts/host-0", "/hosts/host-0/caches/dentry",
                                  "/hosts/host-0/cgroups", "/hosts/no-such-host"])
def test_every_page_loads_without_console_errors(server: str, watched: Watched,
                                                 path: str) -> None:
    r = watched.page.goto(server + path, wait_until="networkidle")
    missing = "no-such" in path
    assert r is not None and r.status == (404 if missing else 200)
    # The 404 page's only message is chromium reporting that very 404 of the document.
    expected = ["Failed to load resource: the server responded with a status of 404 "
                "(Not Found)"] if missing else []
    assert watched.errors == expected
    shot(watched.page, "page" + path.replace("/", "_") if path != "/" else "page_fleet")


def test_charts_points_and_range_picker(server: str, watched: Watched) -> None:
    page = watched.page
    page.goto(server + "/hosts/host-0", wait_until="networkidle")
    assert plotted(page, "memcgs") == 30 and plotted(page, "slab") == 30
    # times are shown in the browser's zone (Asia/Tokyo here), not UTC
    assert page.evaluate("document.querySelector('time').textContent") != \
        page.evaluate("document.querySelector('time').getAttribute('datetime')")
    # The x-axis spans the chosen range (24 h), not only the 29 minutes of data; bytes are
    # in binary units.
    xr = page.evaluate("document.getElementById('chart-memcgs').layout.xaxis.range"
                       ".map(d => new Date(d).getTime())")
    twin = page.request.get(server + "/hosts/host-0?format=json").json()["range"]
    from datetime import datetime
    want = [datetime.fromisoformat(twin[k].replace("Z", "+00:00")).timestamp() * 1000
            for k in ("since", "until")]
    assert [round(v) for v in xr] == [round(v) for v in want]
    assert xr[1] - xr[0] == 24 * 3600 * 1000
    suffix = page.evaluate("document.getElementById('chart-slab').layout.yaxis.ticksuffix")
    assert suffix in (" KiB", " MiB", " GiB")
    ticks = page.evaluate("Array.from(document.querySelectorAll('#chart-slab .ytick text'))"
                          ".map(t => t.textContent)")
    assert ticks and all(t.endswith(suffix.strip()) for t in ticks), ticks
    assert not any(t.endswith(("MB", "kB", "GB")) for t in ticks)
    page.click("a[data-preset='1h']")
    page.wait_for_load_state("networkidle")
    assert "range=1h" in page.url and plotted(page, "memcgs") == 30
    # custom: the last ten minutes, typed in local time, sent as UTC
    until = page.input_value("input[data-local='until']")
    page.evaluate("""() => {
        const u = document.querySelector("input[data-local='until']");
        const s = document.querySelector("input[data-local='since']");
        const d = new Date(u.value); d.setMinutes(d.getMinutes() - 10);
        const off = d.getTimezoneOffset() * 60000;
        s.value = new Date(d - off).toISOString().slice(0, 19);
    }""")
    assert until
    page.click("form[data-range-form] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "since=" in page.url and "until=" in page.url
    assert plotted(page, "memcgs") == 11
    assert watched.errors == []
    shot(page, "host_custom_range")


def test_cgroup_tree_unfolds(server: str, watched: Watched) -> None:
    page = watched.page
    page.goto(server + "/hosts/host-0/cgroups", wait_until="networkidle")
    unit = "tr[data-id='unified:/system.slice/unit-0.service']"
    child = "tr[data-id='unified:/system.slice/unit-0.service/child-0']"
    assert not page.is_visible(unit) and not page.is_visible(child)
    page.click("tr[data-id='unified:/system.slice']")
    assert page.is_visible(unit) and not page.is_visible(child)
    page.click(unit)
    assert page.is_visible(child)
    page.click("tr[data-id='unified:/system.slice']")  # fold again: the whole subtree hides
    assert not page.is_visible(unit) and not page.is_visible(child)
    assert watched.errors == []


def test_hostile_cgroup_name_is_text(server: str, watched: Watched) -> None:
    page = watched.page
    page.goto(server + "/hosts/host-0/cgroups", wait_until="networkidle")
    page.click("tr[data-id='unified:/system.slice']")
    cell = page.locator("span.cg", has_text="onerror")
    assert cell.count() == 1 and cell.inner_text() == HOSTILE
    assert page.locator("img").count() == 0
    page.wait_for_timeout(300)
    assert watched.dialogs == [] and watched.errors == []
    shot(page, "cgroups_hostile_name")


@pytest.mark.parametrize("path", ["/simulate", "/simulate?scenario=test_kmem_dead_cgroups",
                                  "/hosts/host-0/projection", "/hosts/host-0/refcounts",
                                  "/hosts/host-0/refcounts?era=objcg-kmem"])
def test_model_pages_load_without_console_errors(server: str, watched: Watched,
                                                 path: str) -> None:
    r = watched.page.goto(server + path, wait_until="networkidle")
    assert r is not None and r.status == 200
    watched.page.wait_for_timeout(300)
    assert watched.errors == []
    name = path.strip("/").replace("/", "_").replace("?", "_").replace("=", "_")
    shot(watched.page, "model_" + name)


def test_simulate_runs_every_era_and_steps_the_protocol(server: str, watched: Watched) -> None:
    page = watched.page
    page.goto(server + "/simulate?scenario=kubernetes-cronjobs", wait_until="networkidle")
    # Selectors, not wait_for_function: its string predicate is an in-page eval, which the
    # pages' Content-Security-Policy (script-src 'self') refuses, as it should.
    page.wait_for_selector("#chart-dying.js-plotly-plot")  # Plotly drew it: it has points
    assert plotted(page, "dying") == 721  # 30 days, hourly
    traces = page.evaluate("document.getElementById('chart-dying').data.length")
    assert traces == 6
    # Days from the start, not calendar dates; each era in its own fixed colour.
    axis = page.evaluate("(() => { const l = document.getElementById('chart-dying').layout;"
                         " return [l.xaxis.type, l.xaxis.title.text]; })()")
    assert axis == ["linear", "days from the start"]
    assert page.evaluate("document.getElementById('chart-dying').data[0].x.slice(-1)[0]") == 30
    colours = page.evaluate("Array.from(document.getElementById('chart-dying').data)"
                            ".map(t => [t.name, t.line.color])")
    from app.web.charts import ERA_COLORS
    assert dict(colours) == ERA_COLORS
    # edit the workload: two days only, two eras
    page.evaluate("""() => {
        const t = document.getElementById('workload');
        const w = JSON.parse(t.value); w.days = 2; t.value = JSON.stringify(w);
        document.querySelectorAll("input[name=era]").forEach((c, i) => { c.checked = i < 2; });
    }""")
    page.click("#run")
    page.wait_for_selector("#status:has-text('2 eras')")
    assert plotted(page, "dying") == 49
    # a bad workload shows the API's 422 message, and nothing breaks
    page.evaluate("() => { const t = document.getElementById('workload');"
                  " const w = JSON.parse(t.value); w.step_seconds = 1;"
                  " t.value = JSON.stringify(w); }")
    page.click("#run")
    page.wait_for_selector("#error:not([hidden])")
    assert "the limit is 2000" in page.inner_text("#error")
    # protocol: v4 as posted shows its violations, found by the RCU checker; v5 is clean
    assert "sleeping function called from invalid context" in page.inner_text("#violations")
    assert page.inner_text("#p-summary").startswith("The memcg is never released")
    for _ in range(6):
        page.click("#next")
    assert page.inner_text("#step-pos").startswith("step 7 of")
    page.select_option("#variant", "v5")
    page.wait_for_selector("#violations:has-text('no invariant violated')")
    assert page.inner_text("#p-summary").startswith("The memcg is released")
    # which knobs are sourced and which assumed, one click away
    assert not page.is_visible("#knobs")
    page.click("#knob-sources summary")
    assert page.is_visible("#knobs tr[data-status='assumption']")
    assert page.locator("#knobs tr[data-status='source']").count() > 20
    assert watched.errors == [] or all("422" in e for e in watched.errors)
    shot(page, "simulate_protocol_v5")


def test_refcounts_sankey_and_projection(server: str, watched: Watched) -> None:
    page = watched.page
    page.goto(server + "/hosts/host-0/refcounts?era=v4-5/7", wait_until="networkidle")
    assert plotted(page, "sankey") > 3
    assert "page -> kmem_cache -> mem_cgroup" in page.inner_text("main")
    # Links are drawn in their source's colour, not white on the page's background.
    fills = page.evaluate("Array.from(document.querySelectorAll('#chart-sankey path.sankey-link'"
                          ")).map(p => getComputedStyle(p).fill)")
    assert fills and all(f.startswith("rgb") and f not in ("rgb(255, 255, 255)",
                                                            "rgba(0, 0, 0, 0)") for f in fills)
    assert len(set(fills)) > 1, fills
    page.click("a[data-era='pre-5.3']")
    page.wait_for_load_state("networkidle")
    assert "page -> mem_cgroup -> kmem_cache" in page.inner_text("main")
    page.goto(server + "/hosts/host-0/projection?days=7", wait_until="networkidle")
    assert page.evaluate("document.getElementById('chart-dying').data.length") == 7
    assert "removed per day" in page.inner_text("#fit-words")
    # Every era's drawn curve starts at the last observation (host-0's last count: 39).
    firsts = page.evaluate("Array.from(document.getElementById('chart-dying').data)"
                           ".map(t => t.y[0])")
    assert firsts[1:] == [39] * 6
    # The same fixed colour per era as /simulate; the host's own era drawn wider.
    drawn = page.evaluate("Array.from(document.getElementById('chart-dying').data)"
                          ".slice(0, 7).map(t => [t.name, t.line.color, t.line.width])")
    from app.web.charts import ERA_COLORS, OBSERVED_COLOR
    assert drawn[0] == ["observed", OBSERVED_COLOR, 2]
    assert {n.replace(" (this host)", ""): c for n, c, _ in drawn[1:]} == ERA_COLORS
    assert [n for n, _, w in drawn if w == 4] == ["objcg-kmem (this host)"]
    assert "last observation: 39 dying memcgs" in page.inner_text("#from-observation")
    assert "than carrying the last value forward" in page.inner_text("#backtest-verdict")
    assert watched.errors == []


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_render_offline(server: str, watched: Watched, path: str) -> None:
    # Swagger UI and ReDoc come from static/vendor: no request leaves the server (they were
    # blank offline, loading from a CDN).
    page = watched.page
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto(server + path, wait_until="networkidle")
    if path == "/docs":
        page.wait_for_selector(".opblock", timeout=20_000)
        assert page.locator(".opblock").count() >= 10  # the API's operations, drawn
    else:
        page.wait_for_selector("h1", timeout=20_000)
        assert "slabscope" in page.inner_text("h1")
    outside = [u for u in asked if not (u.startswith(server) or u.startswith("blob:")
                                        or u.startswith("data:"))]
    assert outside == [], outside
    assert any("/static/vendor/" in u for u in asked)
    shot(page, "docs" if path == "/docs" else "redoc")
    assert watched.errors == []


PAGES = ["/", "/hosts/host-0", "/hosts/host-0/caches/dentry", "/hosts/host-0/cgroups",
         "/hosts/host-0/projection?days=7", "/hosts/host-0/refcounts", "/simulate"]


def _luminance(rgb: str) -> float:
    r, g, b = (int(x) for x in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("path", PAGES)
def test_dark_mode_follows_the_system(server: str, browser: Any, path: str) -> None:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="dark")
    try:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + path, wait_until="networkidle")
        bg = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        ink = page.evaluate("getComputedStyle(document.body).color")
        assert _luminance(bg) < 60 < 160 < _luminance(ink), (bg, ink)
        # Chart text is light on the dark page too.
        fills = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot .xtick "
                              "text, .js-plotly-plot .ytick text')).map(t => t.style.fill ||"
                              " getComputedStyle(t).fill)")
        assert all(_luminance(f) > 160 for f in fills if f.startswith("rgb")), fills[:5]
        if path == "/hosts/host-0":
            shot(page, "dark_host")
        assert errors == []
    finally:
        ctx.close()


@pytest.mark.parametrize("path", PAGES)
def test_a_390px_phone_never_scrolls_sideways(server: str, browser: Any, path: str) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = ctx.new_page()
        page.goto(server + path, wait_until="networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
        if path == "/hosts/host-0":
            shot(page, "phone_host")
    finally:
        ctx.close()
