"""Issue 10's acceptance test: two hours of history with a burst, written through the
collector's own write path into a real database (SQLite and PostgreSQL). It shows no growth
alert in the first hour; a projection that starts at the last observation and never passes
the 65535 memcg-ID limit; and a warning when the fit is poor."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import store
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.domain.eras import era_for_release
from app.domain.samples import MemcgCount, RemovedCgroup
from app.main import create_app
from app.simulation.engine import dying_hold_ids
from app.simulation.eras import ERAS as SIM_ERAS
from tests.seed import snapshot

NOW = datetime.now(UTC).replace(microsecond=0)
END = NOW - timedelta(seconds=30)
MINUTES = 120
LIVE = 60
PER_MINUTE = 10  # cgroups removed a minute, each leaving 64 KiB of page cache and slab
BURST_AT, BURST = 20, 2000  # 2,000 cgroups removed in one minute
GROWTH_RULES = {"dying_growth", "memcg_id_limit"}
# "burst" and "steady" run this VM's 6.18, where dying memcgs hold no memcg ID (73f576c04b94):
# their dying growth dates no ID limit. "old" has burst's history on a kernel before 4.8,
# where each dying memcg keeps its ID: its growth dates the limit, and alerts on it.
PRE_4_8 = "4.6.0"


def dying_at(minute: int, burst: bool) -> int:
    """Half of the removed cgroups stay dying (+5 a minute); the burst's 2,000 stay for ten
    minutes (then a drop_caches frees them)."""
    return 300 + 5 * minute + (BURST if burst and BURST_AT <= minute < BURST_AT + 10 else 0)


def _write(sessions: sessionmaker[Session], host: str, minutes: range, burst: bool,
           release: str = "") -> None:
    """Scrapes of `host` at the given minutes (minute 0 is two hours before END), each with
    the cgroups removed since the one before, as the collector sends them; on kernel
    `release` (and its era), or this VM's."""
    for k in minutes:
        at = END - timedelta(minutes=MINUTES - k)
        n = PER_MINUTE if k else 0
        n += BURST if burst and k == BURST_AT else 0
        removed = tuple(
            RemovedCgroup("unified", f"/jobs.slice/job-{k}-{j}.scope",
                          at - timedelta(minutes=1), at,
                          {"file": 65536, "shmem": 0, "slab": 19_200, "kernel_stack": 0},
                          70_000, stat_read_at=at - timedelta(minutes=1))
            for j in range(n))
        d = dying_at(k, burst)
        snap = snapshot(host, k, at, 0, 0)
        if release:
            snap = replace(snap, host=replace(snap.host, kernel_release=release,
                                              era=era_for_release(release)))
        with sessions.begin() as s:
            store.write_snapshot(s, replace(snap, memcg=MemcgCount(d + LIVE, LIVE, d, "test"),
                                            removed=removed))


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def client(db_url: str, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    # Thresholds a burst read as a rate would cross at once: 5,000 a day and 30 days.
    with TestClient(create_app(Settings(database_url=db_url, alert_growth_per_day_max=5000,
                                        alert_dying_max=1_000_000,
                                        alert_days_to_limit_min=30))) as c:
        yield c


def _growth_alerts(client: TestClient, host: str) -> list[str]:
    return [a["rule"] for a in client.get("/api/v1/alerts").json()["alerts"]
            if a["host"] == host and a["rule"] in GROWTH_RULES]


def test_two_hours_with_a_burst(client: TestClient, sessions: sessionmaker[Session]) -> None:
    # The first hour, checked as it comes in: before, inside and after the burst.
    done = 0
    for upto in (10, BURST_AT + 5, 59):
        _write(sessions, "burst", range(done, upto + 1), burst=True)
        _write(sessions, "old", range(done, upto + 1), burst=True, release=PRE_4_8)
        done = upto + 1
        by = {x["name"]: x for x in client.get("/api/v1/hosts").json()["items"]}
        for name in ("burst", "old"):
            h = by[name]
            assert h["memcg_dying"] == dying_at(upto, True)
            assert h["dying_growth_per_day_24h"] is None and h["days_to_memcg_id_limit"] is None
            assert h["growth_note"] == f"collecting, {upto} min so far (growth from 60 min)"
            assert _growth_alerts(client, name) == []
        fleet = client.get("/").text
        assert f"collecting, {upto} min so far" in fleet
    # The second hour, and a host without the burst beside it.
    _write(sessions, "burst", range(done, MINUTES + 1), burst=True)
    _write(sessions, "old", range(done, MINUTES + 1), burst=True, release=PRE_4_8)
    _write(sessions, "steady", range(MINUTES + 1), burst=False)
    by = {x["name"]: x for x in client.get("/api/v1/hosts").json()["items"]}
    # Now there is evidence: +5 a minute, which the burst does not move (Theil-Sen).
    for name in ("burst", "old"):
        assert by[name]["dying_growth_per_day_24h"] == pytest.approx(7200, rel=0.05), name
    # Before 4.8, ~9 days to the ID limit at that rate: both growth rules fire.
    old = by["old"]
    assert old["days_to_memcg_id_limit"] == pytest.approx(
        (65_535 - dying_at(MINUTES, True) - LIVE) / old["dying_growth_per_day_24h"])
    assert set(_growth_alerts(client, "old")) == GROWTH_RULES
    # On 6.18 the dying memcgs hold no ID: no date, and only the growth rule fires.
    h = by["burst"]
    assert h["days_to_memcg_id_limit"] is None
    assert h["id_limit_note"].endswith(f"{LIVE} live of 65535")
    assert _growth_alerts(client, "burst") == ["dying_growth"]

    d = client.get("/api/v1/hosts/burst/projection?days=30").json()
    last = dying_at(MINUTES, True)
    assert d["observed"]["dying"][-1] == last
    assert d["from_observation"]["dying"] == last and d["from_observation"]["live"] == LIVE
    assert d["from_observation"]["seconds"] == d["observed"]["seconds"][-1]
    for era, p in d["projection"].items():
        assert p["seconds"][0] == d["observed"]["seconds"][-1], era
        assert p["dying"][0] == last, era  # not a re-run from the first observation
        # Dying memcgs hold memcg IDs before 4.8 (pre-5.3 stands for those kernels): there
        # they never pass the limit. Since 4.8 the ID is recycled at offline (73f576c04b94)
        # and they may pass 65535 (v4 5/7 here), costing memory, not IDs.
        assert p["dying_hold_ids"] == dying_hold_ids(SIM_ERAS[era], (6, 18)) == \
            (era == "pre-5.3"), era
        if p["dying_hold_ids"]:
            assert max(p["dying"]) <= 65_535 - LIVE, era
    # 14,400 removals a day, each leaving 100 dentries: before 5.3 a dentry pins its memcg,
    # and the curve stops at the limit on a dated day; 5.13+ never gets near it.
    pre = d["projection"]["pre-5.3"]
    assert max(pre["dying"]) == 65_535 - LIVE
    enospc = datetime.fromisoformat(pre["enospc_at"])
    assert END < enospc < END + timedelta(days=30)
    assert d["projection"]["objcg-kmem"]["enospc_at"] is None
    # The burst is not a rate: 10 a minute, not 10 a minute plus 2,000 over two hours.
    fit = d["fit"]
    assert fit["removed_per_day"] == pytest.approx(PER_MINUTE * 1440, rel=0.02)
    assert fit["removal_rate_source"] == "seen"
    assert any("burst of 2,010 removals" in w for w in fit["words"])
    # The dying curve's burst is no curve the model can follow: the fit says so.
    assert "large_error" in [f["code"] for f in fit["flags"]]
    assert fit["rmse"] > 0.25 * fit["mean_level"]
    bt = d["backtest"]
    assert bt["better"] == ("model" if bt["mae"] < bt["baseline_mae"] else "carry-forward"
                            if bt["mae"] > bt["baseline_mae"] else "tie")

    # Without the burst, the same workload is fitted without a warning.
    steady = client.get("/api/v1/hosts/steady/projection?days=30").json()
    assert steady["fit"]["flags"] == []
    assert steady["projection"]["objcg-kmem"]["dying"][0] == dying_at(MINUTES, False)

    # The page: the warning, the start, the ENOSPC date on the chart and in the table.
    page = client.get("/hosts/burst/projection?days=30").text
    assert "data-fit-flags" in page and 'data-flag="large_error"' in page
    assert f"last observation: {last:,} dying memcgs" in page
    assert "none can pass the 65,535 memcg-ID limit" in page
    figures = [json.loads(x) for x in re.findall(
        r'<script type="application/json">(.*?)</script>', page, re.S)]
    dying = next(f for f in figures if f["layout"]["title"]["text"].startswith("Dying"))
    marks = {t["name"]: t for t in dying["data"] if t["name"].startswith("ENOSPC")}
    assert any("ID limit" in t["name"] for t in dying["data"])
    # pre-5.3 and v4 5/7 pin alike here: one line, both named; 5.13+ has none.
    (name, mark), = marks.items()
    assert name.startswith("ENOSPC pre-5.3") and "objcg" not in name
    assert mark["x"][0] == mark["x"][1] == int(enospc.timestamp() * 1000)
    assert re.search(r'data-enospc="pre-5.3"><time', page)
    assert 'data-enospc="objcg-kmem">not from dying memcgs: IDs recycled at offline (4.8+)' in page
    assert client.get("/hosts/steady/projection?days=30").text.count("data-fit-flags") == 0
