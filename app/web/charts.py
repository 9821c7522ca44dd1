"""Pure plotly figure builders: series in, figure dicts out (rendered by static/js/app.js).

Times go out as milliseconds since the epoch (UTC); the browser turns them into Date objects
so plotly draws them in the viewer's time zone. Traces that share one list of times (all the
charts of a page come from one query) share one converted list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

COLORS = ("#c2410c", "#0f766e", "#1d4ed8", "#7c3aed", "#be123c", "#4d7c0f")


def line(title: str, traces: list[tuple[str, list[datetime], list[float | None]]], *,
         unit: str = "count", stacked: bool = False) -> dict[str, Any]:
    """A time-series chart; `unit` "bytes" gives binary-prefixed ticks."""
    data = []
    converted: dict[int, list[int]] = {}
    for i, (name, times, values) in enumerate(traces):
        x = converted.get(id(times))
        if x is None:
            x = converted[id(times)] = [int(t.timestamp() * 1000) for t in times]
        trace: dict[str, Any] = {
            # With few samples (a collector that just started) a bare line would be
            # invisible: show the points too.
            "type": "scatter", "mode": "lines+markers" if len(x) < 30 else "lines",
            "name": name, "x": x, "y": values,
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


def vline(fig: dict[str, Any], at: datetime, label: str, color: str, y_max: float) -> None:
    """Mark a moment on a time-series chart: a dashed vertical line from 0 to `y_max`,
    labelled at its top. A trace, not a layout shape, so its time is drawn in the viewer's
    time zone like every other point (app.js converts trace times only)."""
    x = int(at.timestamp() * 1000)
    fig["data"].append({
        "type": "scatter", "mode": "lines+text", "name": label, "x": [x, x],
        "y": [0, y_max], "text": ["", label], "textposition": "bottom right",
        "line": {"width": 1, "dash": "dash", "color": color}, "hoverinfo": "name",
        "showlegend": False})


def hline(fig: dict[str, Any], start: datetime, end: datetime, y: float, label: str) -> None:
    """A dotted horizontal line across [start, end] at `y` (a limit), labelled at its end."""
    x = [int(start.timestamp() * 1000), int(end.timestamp() * 1000)]
    fig["data"].append({
        "type": "scatter", "mode": "lines+text", "name": label, "x": x, "y": [y, y],
        "text": ["", label], "textposition": "bottom left",
        "line": {"width": 1, "dash": "dot", "color": "#6b7280"}, "hoverinfo": "name",
        "showlegend": False})


def per(step_seconds: int) -> str:
    """A chart's resolution in words: "per 44 s", "per 25 min", "per hour", "per 2 h"."""
    if step_seconds % 3600 == 0:
        n = step_seconds // 3600
        return "per hour" if n == 1 else f"per {n} h"
    if step_seconds % 60 == 0:
        return f"per {step_seconds // 60} min"
    return f"per {step_seconds} s"


def points(fig: dict[str, Any]) -> int:
    """How many points (or Sankey links) the first trace holds (what the browser tests check)."""
    if not fig["data"]:
        return 0
    first = fig["data"][0]
    return len(first["x"]) if "x" in first else len(first["link"]["value"])


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def sankey(title: str, nodes: list[str], links: list[tuple[int, int, float]]) -> dict[str, Any]:
    """A Sankey of references: node labels, and (source, target, references) links."""
    return {
        "data": [{
            "type": "sankey", "arrangement": "snap", "valueformat": ",.0f",
            "node": {"label": nodes, "pad": 14, "thickness": 14,
                     "color": [COLORS[i % len(COLORS)] for i in range(len(nodes))]},
            # Each link in its source's colour, translucent: plotly's default drew them all
            # white on white, so only the nodes showed.
            "link": {"source": [a for a, _, _ in links], "target": [b for _, b, _ in links],
                     "value": [v for _, _, v in links],
                     "color": [_rgba(COLORS[a % len(COLORS)], 0.45) for a, _, _ in links]},
        }],
        "layout": {"title": {"text": title, "font": {"size": 14}, "x": 0, "xanchor": "left"},
                   "margin": {"l": 10, "r": 10, "t": 36, "b": 10}, "height": 480,
                   "paper_bgcolor": "rgba(0,0,0,0)"},
    }
