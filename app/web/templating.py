"""The single Jinja2Templates instance and its filters (humanised numbers, URL parts)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlencode

import jinja2
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from app.web.charts import ERA_COLORS, OBSERVED_COLOR
from app.web.glossary import tooltip

MISSING = "\u2013"  # an en dash: shown where a value is unknown
TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"


UNDERFLOW = 1 << 63  # a kernel u64 this large is a small negative number printed unsigned


def _marked(n: float | None, text: str) -> str:
    """`text` as it is, or for a u64 of 2^63 or more a span whose title has the exact value
    and what it is: the cell shows the value, the tooltip says why it is absurd."""
    if isinstance(n, int) and not isinstance(n, bool) and UNDERFLOW <= n < 1 << 64:
        title = (f"{n} (as a signed 64-bit number {n - (1 << 64)}: "
                 "a kernel counter that went below 0)")
        return Markup('<span class="underflow" title="{}">{}</span>').format(title, text)
    return text


def human_bytes(n: float | None) -> str:
    """1536 -> '1.5 KiB'; None -> an en dash; 2^63 and more also marked (`_marked`)."""
    if n is None:
        return MISSING
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            return _marked(n, f"{sign}{value:.0f} {unit}" if unit == "B"
                           else f"{sign}{value:.1f} {unit}")
        value /= 1024
    return str(n)


def human_count(n: float | None, digits: int = 1) -> str:
    """1234 -> '1.2k', 2_500_000 -> '2.5M'; None -> an en dash; 2^63 and more also marked."""
    if n is None:
        return MISSING
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return _marked(n, f"{sign}{value / size:.{digits}f}{unit}")
    return f"{sign}{value:.0f}" if value == int(value) else f"{sign}{value:.{digits}f}"


def human_rate(n: float | None) -> str:
    """A signed per-day rate: '+12.3/d'."""
    if n is None:
        return MISSING
    return ("+" if n > 0 else "") + human_count(n) + "/d"


def iso(t: datetime | None) -> str:
    """ISO 8601 in UTC, for <time datetime=...> (the browser shows it in its own zone)."""
    return t.isoformat() if t is not None else ""


def urlq(part: str) -> str:
    """One path segment, percent-encoded (cgroup and cache names may hold anything)."""
    return quote(part, safe="")


def sparkline(values: list[float], width: int = 120, height: int = 24) -> str:
    """Points of an SVG polyline for a sparkline ('' when there is nothing to draw)."""
    if len(values) < 2:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}"
                    for i, v in enumerate(values))


# Characters that reorder or hide text (bidi overrides and isolates, marks, zero-width ones):
# in a hostile kernel_release or cgroup name, U+202E turned the rest of a table cell around.
# Shown as their code point instead; HTML escaping does not touch them.
_HIDDEN = {c: f"<U+{c:04X}>" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A),
                                        0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x061C,
                                        0xFEFF)}


def visible(value: object) -> object:
    """Every value a template prints: strings with their hidden characters shown (Markup,
    already built by the app, passes as it is)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return value.translate(_HIDDEN)
    return value


STATIC_DIR = TEMPLATES_DIR.parent / "static"


@lru_cache(maxsize=64)
def asset(path: str) -> str:
    """The URL of a static file with its content's fingerprint (`?v=`): served with an
    immutable Cache-Control, so a warm cache asks for nothing until the file changes.
    plotly.min.js comes from the installed plotly package: its version is the fingerprint."""
    if path == "vendor/plotly.min.js":
        from importlib.metadata import version
        return f"/static/{path}?v={version('plotly')}"
    digest = hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest()[:12]
    return f"/static/{quote(path)}?v={digest}"


templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True, finalize=visible))
def era_chip(name: str) -> Markup:
    """An era's name as a chip that says, on hover, what the era is, and links to it."""
    found = tooltip(name)
    if found is None:
        return Markup('<span class="era">{}</span>').format(name)
    key, text = found
    return Markup('<a class="era" href="/glossary#{}" title="{}">{}</a>').format(key, text,
                                                                                 name)


def term(name: str, shown: str | None = None) -> Markup:
    """A word of the glossary, with its line on hover and a link to its entry."""
    found = tooltip(name)
    if found is None:
        return Markup("{}").format(shown or name)
    key, text = found
    return Markup('<a class="term" href="/glossary#{}" title="{}">{}</a>').format(
        key, text, shown or name)


REFRESH_CHOICES = (30, 60, 300)  # what the header offers; any 5..3600 s works in the URL


def refresh_seconds(query: Mapping[str, str]) -> int | None:
    """The page's auto-refresh interval from `?refresh=N` (seconds, 5 to 3600), or None: off
    by default, and off for anything else."""
    raw = query.get("refresh", "")
    return int(raw) if raw.isdigit() and 5 <= int(raw) <= 3600 else None


def with_refresh(query: Mapping[str, str], path: str, seconds: int | None) -> str:
    """This page's URL with `refresh` set to `seconds` (None: removed), other parameters kept."""
    params = {k: v for k, v in query.items() if k != "refresh"}
    if seconds is not None:
        params["refresh"] = str(seconds)
    return path + ("?" + urlencode(params) if params else "")


templates.env.globals["asset"] = asset
templates.env.globals["refresh_seconds"] = refresh_seconds
templates.env.globals["with_refresh"] = with_refresh
templates.env.globals["REFRESH_CHOICES"] = REFRESH_CHOICES
templates.env.globals["utcnow"] = lambda: datetime.now(UTC)
templates.env.globals["term"] = term
templates.env.filters["era"] = era_chip
templates.env.globals["era_colours"] = {**ERA_COLORS, "observed": OBSERVED_COLOR}
templates.env.filters.update(bytes=human_bytes, count=human_count, rate=human_rate, iso=iso,
                             urlq=urlq, sparkline=sparkline)
