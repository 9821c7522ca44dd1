"""Which kernels' dying memcgs count against the 65535 memcg IDs, the days to that limit, and
the memcg_id_limit alert (app/domain/growth.py, app/domain/alerts.py).

Before 4.8 each dying memcg kept its ID until freed; since 4.8 (73f576c04b94) the ID is
released at offline (kernel-notes.md 2(a) "Other pins", 3.9)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.alerts import LIVE_LEVEL_SHARE, AlertRules, evaluate
from app.domain.growth import (
    ID_RECYCLED_SINCE,
    MEMCG_ID_MAX,
    Growth,
    dying_hold_ids_for_release,
    memcg_id_limit,
)
from app.domain.views import HostSummary
from app.simulation import engine

T0 = datetime(2026, 11, 30, tzinfo=UTC)
DAY = timedelta(days=1)


def per_day(rate: float | None) -> Growth:
    """A 24 h growth figure with the evidence for it (or none: `rate` None)."""
    return Growth(rate, DAY, DAY, 48, rate is not None, "")


def test_the_engine_and_the_views_share_the_fact() -> None:
    assert ID_RECYCLED_SINCE == engine.ID_RECYCLED_SINCE == (4, 8)
    assert MEMCG_ID_MAX == engine.MEMCG_ID_MAX == 65_535


@pytest.mark.parametrize(("release", "holds"), [
    ("3.10.0-1160.el7.x86_64", True),  # RHEL 7: moby#29638, kubernetes#61937
    ("4.6.0", True),
    ("4.7.10", True),
    ("4.8.0", False),
    ("4.19.0-27-amd64", False),
    ("5.2.21", False),
    ("6.18.44-fc-v657", False),  # this lab's VM
    ("10.0", False),
])
def test_dying_memcgs_hold_ids_before_4_8(release: str, holds: bool) -> None:
    got = dying_hold_ids_for_release(release)
    assert got.holds is holds and got.note == ""


@pytest.mark.parametrize("release", ["", "vendor-kernel", "v6.18", "6-18", "  "])
def test_an_unparsable_release_takes_the_worst_case_and_says_so(release: str) -> None:
    got = dying_hold_ids_for_release(release)
    assert got.holds is True
    assert got.note == (f"kernel release {release!r} does not parse: counted as before 4.8, "
                        "where dying memcgs keep their memcg IDs")


def test_days_to_the_limit_before_4_8_count_live_and_dying() -> None:
    got = memcg_id_limit("4.6.0", 535, 10_535, per_day(1000.0))
    assert got.dying_hold_ids is True and got.note == ""
    assert got.days == pytest.approx((65_535 - 10_535) / 1000)
    # No evidence, or no growth: no date.
    assert memcg_id_limit("4.6.0", 535, 10_535, per_day(None)).days is None
    assert memcg_id_limit("4.6.0", 535, 10_535, per_day(-5.0)).days is None
    assert memcg_id_limit("4.6.0", 535, None, per_day(1000.0)).days is None
    # Past the limit (a count read mid-ENOSPC): zero days, not negative.
    assert memcg_id_limit("4.6.0", 535, 70_000, per_day(1000.0)).days == 0.0
    # At or past it, the days are zero with or without growth or its evidence: mkdir fails
    # now (a flat 66,000 was no date, no note and no alert).
    for g in (per_day(None), per_day(0.0), per_day(-5.0)):
        full = memcg_id_limit("4.6.0", 1_000, 66_000, g)
        assert full.days == 0.0 and full.note == (
            "66,000 memcgs hold IDs: at the 65535 limit, mkdir fails with ENOSPC now")
    assert memcg_id_limit("4.6.0", 1_000, 65_534, per_day(None)).days is None


def test_since_4_8_no_days_from_dying_growth_and_a_note() -> None:
    got = memcg_id_limit("6.18.44-fc-v657", 51, 60_051, per_day(50_000.0))
    assert got.days is None and got.dying_hold_ids is False
    assert got.note == ("memcg IDs are recycled at offline since 4.8 (73f576c04b94): dying "
                        "memcgs cost memory, not IDs; 51 live of 65535")
    assert memcg_id_limit("4.8.0", 12_345, None, per_day(1.0)).note.endswith(
        "12,345 live of 65535")
    assert memcg_id_limit("4.8.0", None, None, per_day(1.0)).note.endswith(
        "unknown live of 65535")


def test_an_unparsable_release_is_dated_as_before_4_8_with_its_note() -> None:
    got = memcg_id_limit("vendor-kernel", 35, 535, per_day(100.0))
    assert got.days == pytest.approx(650.0) and got.dying_hold_ids is True
    assert "'vendor-kernel' does not parse" in got.note


def summary(release: str, live: int | None, dying: int, rate: float | None) -> HostSummary:
    """A host's fleet row as app/services/hosts.py builds it, from the same functions."""
    total = None if live is None else live + dying
    ids = memcg_id_limit(release, live, total, per_day(rate))
    return HostSummary(
        name=f"h-{release}", kernel_release=release, era="objcg-kmem", cgroup_layout="v2",
        cpus=2, last_scrape_at=T0, stale=False, memcg_live=live, memcg_dying=dying,
        memcg_total=total, dying_growth_per_day_24h=rate, dying_growth_per_day_7d=None,
        days_to_memcg_id_limit=ids.days, slab_bytes=None, sreclaimable_bytes=None,
        sunreclaim_bytes=None, percpu_bytes=None, dying_cost_bytes_each=24_552,
        wasted_bytes=None, cost_model="6.10+", removed_total=0,
        dying_hold_ids=ids.dying_hold_ids, id_limit_note=ids.note)


# Only the ID-limit rule can fire: the other thresholds out of reach.
RULES = AlertRules(dying_max=1 << 40, growth_per_day_max=1e12, days_to_limit_min=30.0,
                   wasted_bytes_max=1 << 62)


def rules_fired(h: HostSummary) -> list[tuple[str, float, float, str]]:
    return [(a.rule, a.value, a.threshold, a.message) for a in evaluate([h], RULES)]


def test_the_alert_before_4_8_fires_on_the_days() -> None:
    # 60,000 dying memcgs growing 1,000 a day: the last 5,475 IDs go in ~5.5 days.
    (got,) = rules_fired(summary("4.6.0", 60, 60_000, 1000.0))
    assert got[:3] == ("memcg_id_limit", pytest.approx(5.475), 30.0)
    assert got[3] == ("h-4.6.0 reaches the 65535 memcg-ID limit in 5.5 days at this rate: "
                      "mkdir will fail with ENOSPC")
    assert rules_fired(summary("4.6.0", 60, 60_000, 100.0)) == []  # 54.75 days: not yet
    assert rules_fired(summary("4.6.0", 60, 60_000, None)) == []  # no evidence yet
    # At the limit, flat: it fires, with zero days.
    (full,) = rules_fired(summary("4.6.0", 1_000, 65_000, None))
    assert full[:2] == ("memcg_id_limit", 0.0)
    assert full[3] == "h-4.6.0 is at the 65535 memcg-ID limit: mkdir fails with ENOSPC"
    # An unparsable release: the worst case, as before 4.8.
    assert [r[0] for r in rules_fired(summary("vendor", 60, 60_000, 1000.0))] == [
        "memcg_id_limit"]


def test_the_alert_since_4_8_ignores_dying_and_fires_on_live_near_the_limit() -> None:
    # The same dying memcgs and growth: they hold no ID, so no alert from them.
    assert rules_fired(summary("6.18.44", 60, 60_000, 1000.0)) == []
    assert rules_fired(summary("4.8.0", 60, 10_000_000, 1e6)) == []
    level = int(LIVE_LEVEL_SHARE * MEMCG_ID_MAX)
    assert level == 58_981
    assert rules_fired(summary("6.18.44", level - 1, 0, None)) == []
    (got,) = rules_fired(summary("6.18.44", level, 0, None))
    assert got == ("memcg_id_limit", level, level,
                   "h-6.18.44 has 58,981 live memcgs of the 65535 memcg IDs (threshold 58,981; "
                   "live growth is not tracked, so on the level alone): mkdir fails with "
                   "ENOSPC at the limit")
    assert [r[0] for r in rules_fired(summary("6.18.44", MEMCG_ID_MAX, 5, 10.0))] == [
        "memcg_id_limit"]
    # Live unknown, or a wrapped counter (>= 2^63): nothing to alert on.
    assert rules_fired(summary("6.18.44", None, 0, None)) == []
    h = replace(summary("6.18.44", 0, 0, None), memcg_live=(1 << 64) - 5)
    assert rules_fired(h) == []
