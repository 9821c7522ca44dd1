"""Pure plotly figure builders: series in, figure dicts out (rendered by static/js/app.js).

Times go out as ISO 8601 UTC strings; the browser turns them into Date objects so plotly
draws them in the viewer's time zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

COLORS = ("#c2410c", "#0f766e", "#1d4ed8", "#7c3aed", "#be123c", "#4d7c0f")


def line(title: str, traces: list[tuple[str, list[datetime], list[float | None]]], *,
         unit: str = "count", stacked: bool = False) -> dict[str, Any]:
    """A time-series chart; `unit` "bytes" gives binary-prefixed ticks."""
    data = []
    for i, (name, times, values) in enumerate(traces):
        trace: dict[str, Any] = {
            "type": "scatter", "mode": "lines", "name": name,
            "x": [t.isoformat() for t in times], "y": values,
            "line": {"width": 2, "color": COLORS[i % len(COLORS)]},
            "hovertemplate": "%{y:,.0f}<extra>" + name + "</extra>" if unit == "count"
            else "%{y:.3s}B<extra>" + name + "</extra>",
        }
        if stacked:
            trace["stackgroup"] = "one"
        data.append(trace)
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 14}, "x": 0, "xanchor": "left"},
        "margin": {"l": 60, "r": 16, "t": 36, "b": 36}, "height": 260,
        "legend": {"orientation": "h", "y": -0.2},
        "xaxis": {"type": "date"},
        "yaxis": {"rangemode": "tozero", "tickformat": ".3s" if unit == "bytes" else ",d",
                  "ticksuffix": "B" if unit == "bytes" else ""},
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
    }
    return {"data": data, "layout": layout}


def points(fig: dict[str, Any]) -> int:
    """How many points the first trace of a figure holds (what the browser tests check)."""
    return len(fig["data"][0]["x"]) if fig["data"] else 0
