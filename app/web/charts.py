"""Pure plotly figure builders: series in, figure dicts out (rendered by static/js/app.js).

Times go out as milliseconds since the epoch (UTC); the browser turns them into Date objects
so plotly draws them in the viewer's time zone. Traces that share one list of times (all the
charts of a page come from one query) share one converted list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.domain.eras import ERA_NAMES

COLORS = ("#c2410c", "#0f766e", "#1d4ed8", "#7c3aed", "#be123c", "#4d7c0f")
# One colour per era on every page and chart (static/js/simulate.js reads the same map from
# the page), and one for what was observed, which no era shares.
ERA_COLORS = dict(zip(ERA_NAMES, ("#b45309", "#db2777", "#1d4ed8", "#7c3aed", "#0f766e",
                                  "#65a30d"), strict=True))
OBSERVED_COLOR = "#111827"
IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def iec_unit(values: list[float | None]) -> tuple[str, float]:
    """The binary unit the largest value reads best in, and its size in bytes."""
    top = max((abs(v) for v in values if v is not None), default=0.0)
    k = 0
    while k < len(IEC) - 1 and top >= 1024 ** (k + 1):
        k += 1
    return IEC[k], float(1024 ** k)


def _color(name: str, i: int) -> str:
    if name == "observed":
        return OBSERVED_COLOR
    return ERA_COLORS.get(name, COLORS[i % len(COLORS)])


def line(title: str, traces: list[tuple[str, list[datetime], list[float | None]]], *,
         unit: str = "count", stacked: bool = False,
         span: tuple[datetime, datetime] | None = None,
         highlight: str | None = None) -> dict[str, Any]:
    """A time-series chart.

    `unit` "bytes" scales every trace to one binary unit (KiB, MiB, ...: plotly's own prefixes
    are SI); `span` sets the x-axis to the chosen range, whatever the data covers; an era
    name in `highlight` (the host's own) is drawn wider. Eras and "observed" keep their
    colours on every chart (ERA_COLORS).
    """
    data = []
    converted: dict[int, list[int]] = {}
    suffix, size = iec_unit([v for _, _, vals in traces for v in vals]) if unit == "bytes" \
        else ("", 1.0)
    for i, (name, times, values) in enumerate(traces):
        x = converted.get(id(times))
        if x is None:
            x = converted[id(times)] = [int(t.timestamp() * 1000) for t in times]
        y = values if size == 1.0 else [None if v is None else v / size for v in values]
        trace: dict[str, Any] = {
            # With few samples (a collector that just started) a bare line would be
            # invisible: show the points too.
            "type": "scatter", "mode": "lines+markers" if len(x) < 30 else "lines",
            "name": name + (" (this host)" if name == highlight else ""), "x": x, "y": y,
            "line": {"width": 4 if name == highlight else 2, "color": _color(name, i)},
            "hovertemplate": "%{y:,.0f}<extra>" + name + "</extra>" if unit == "count"
            else "%{y:,.1f} " + suffix + "<extra>" + name + "</extra>",
        }
        if stacked:
            trace["stackgroup"] = "one"
        data.append(trace)
    xaxis: dict[str, Any] = {"type": "date"}
    if span is not None:
        xaxis["range"] = [int(span[0].timestamp() * 1000), int(span[1].timestamp() * 1000)]
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 14}, "x": 0, "xanchor": "left"},
        "margin": {"l": 60, "r": 16, "t": 36, "b": 36}, "height": 260,
        "legend": {"orientation": "h", "y": -0.2},
        "xaxis": xaxis,
        "yaxis": {"rangemode": "tozero", "tickformat": ",d" if unit == "count" else ",.3~f",
                  "ticksuffix": " " + suffix if unit == "bytes" else ""},
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
