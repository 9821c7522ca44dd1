"""Alert rules over host summaries: plain thresholds a user sets in settings."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.views import HostSummary


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
        days = h.days_to_memcg_id_limit
        if days is not None and days < rules.days_to_limit_min:
            out.append(Alert(h.name, "memcg_id_limit", "critical", days, rules.days_to_limit_min,
                             f"{h.name} reaches the 65535 memcg-ID limit in {days:,.1f} days at "
                             "this rate: mkdir will fail with ENOSPC"))
        if h.wasted_bytes is not None and h.wasted_bytes > rules.wasted_bytes_max:
            out.append(Alert(h.name, "wasted_memory", "warning", h.wasted_bytes,
                             rules.wasted_bytes_max,
                             f"{h.name}: dying memcgs cost {h.wasted_bytes / 2**20:,.0f} MiB "
                             f"(threshold {rules.wasted_bytes_max / 2**20:,.0f} MiB)"))
    return sorted(out, key=lambda a: (a.severity != "critical", a.host, a.rule))
