"""Alert rules over host summaries: plain thresholds a user sets in settings."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.growth import MEMCG_ID_MAX
from app.domain.views import HostSummary

# Where dying memcgs hold no IDs (4.8+) and live growth is not tracked, the memcg_id_limit
# rule fires on the level: live memcgs using this share of the ID space or more. An
# assumption (no kernel figure): 90 % leaves ~6,500 mkdirs of room.
LIVE_LEVEL_SHARE = 0.9


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Thresholds (SLABSCOPE_ALERT_* settings)."""

    dying_max: int = 1000
    growth_per_day_max: float = 500.0
    days_to_limit_min: float = 30.0
    wasted_bytes_max: int = 1 << 30


@dataclass(frozen=True, slots=True)
class Alert:
    """One rule that fires for one host."""

    host: str
    rule: str
    severity: str  # "warning" or "critical"
    value: float
    threshold: float
    message: str


def evaluate(hosts: list[HostSummary], rules: AlertRules) -> list[Alert]:
    """Every alert that fires now, most severe first."""
    out: list[Alert] = []
    for h in hosts:
        if h.stale:
            out.append(Alert(h.name, "stopped_reporting", "critical", 0, 0,
                             f"{h.name} stopped reporting: last scrape "
                             f"{h.last_scrape_at.isoformat() if h.last_scrape_at else 'never'}"))
        if h.memcg_dying is not None and h.memcg_dying > rules.dying_max:
            out.append(Alert(h.name, "dying_memcgs", "warning", h.memcg_dying, rules.dying_max,
                             f"{h.name} has {h.memcg_dying} dying memcgs "
                             f"(threshold {rules.dying_max})"))
        growth = h.dying_growth_per_day_24h
        if growth is not None and growth > rules.growth_per_day_max:
            out.append(Alert(h.name, "dying_growth", "warning", growth, rules.growth_per_day_max,
                             f"{h.name}: dying memcgs grow by {growth:,.0f} a day "
                             f"(threshold {rules.growth_per_day_max:,.0f})"))
        out.extend(_id_limit(h, rules))
        if h.wasted_bytes is not None and h.wasted_bytes > rules.wasted_bytes_max:
            out.append(Alert(h.name, "wasted_memory", "warning", h.wasted_bytes,
                             rules.wasted_bytes_max,
                             f"{h.name}: dying memcgs cost {h.wasted_bytes / 2**20:,.0f} MiB "
                             f"(threshold {rules.wasted_bytes_max / 2**20:,.0f} MiB)"))
    return sorted(out, key=lambda a: (a.severity != "critical", a.host, a.rule))


def _id_limit(h: HostSummary, rules: AlertRules) -> list[Alert]:
    """The memcg_id_limit rule: mkdir fails with ENOSPC when every memcg ID is held.

    Where dying memcgs hold IDs (before 4.8, or an unknown kernel) it fires on the days to
    the limit at the dying growth. Since 4.8 (73f576c04b94) only live memcgs hold IDs, and
    their growth is not tracked: it fires on the live count alone, at LIVE_LEVEL_SHARE of
    the limit, and says so; dying memcgs alone never fire it.
    """
    if h.dying_hold_ids:
        days = h.days_to_memcg_id_limit
        if days is None or days >= rules.days_to_limit_min:
            return []
        text = (f"{h.name} is at the {MEMCG_ID_MAX} memcg-ID limit: mkdir fails with ENOSPC"
                if days == 0 else
                f"{h.name} reaches the {MEMCG_ID_MAX} memcg-ID limit in {days:,.1f} days at "
                "this rate: mkdir will fail with ENOSPC")
        return [Alert(h.name, "memcg_id_limit", "critical", days, rules.days_to_limit_min,
                      text)]
    level = int(LIVE_LEVEL_SHARE * MEMCG_ID_MAX)
    if h.memcg_live is None or not 0 <= h.memcg_live < 1 << 63 or h.memcg_live < level:
        return []
    return [Alert(h.name, "memcg_id_limit", "critical", h.memcg_live, level,
                  f"{h.name} has {h.memcg_live:,} live memcgs of the {MEMCG_ID_MAX} memcg IDs "
                  f"(threshold {level:,}; live growth is not tracked, so on the level alone): "
                  "mkdir fails with ENOSPC at the limit")]
