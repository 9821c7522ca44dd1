"""Growth figures that need evidence: a robust slope over the window the label names.

A growth rate from two points minutes apart turned a burst into "+384k a day". Here:

- no figure at all until the history spans `min_history` (default 1 h);
- the slope is Theil-Sen (the median of the slopes between every pair of points), which
  a burst or a few odd samples do not move;
- a figure labelled "24 h" is fitted on the last 24 h and only when the history covers
  most of it (`COVER`); otherwise it is reported with the span it really has, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from app.domain.eras import UnknownRelease, parse_release

COVER = 0.9  # a window counts as covered when the points span 90 % of it
MAX_POINTS = 400  # thinned evenly beyond this: the median of 80,000 slopes is plenty


@dataclass(frozen=True, slots=True)
class Growth:
    """A slope per day, fitted over `span` of history inside a `window`."""

    per_day: float | None  # None: not enough history
    window: timedelta
    span: timedelta  # the history the fit had
    points: int
    covered: bool  # the history covers the window (else the figure is over `span`)
    note: str  # what to show beside or instead of the figure

    @property
    def shown(self) -> bool:
        return self.per_day is not None


def theil_sen(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The median of the pairwise slopes (x distinct pairs only); 0 for fewer than 2."""
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    if len(x) > MAX_POINTS:
        keep = np.linspace(0, len(x) - 1, MAX_POINTS).round().astype(int)
        x, y = x[keep], y[keep]
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    ok = dx != 0
    if not ok.any():
        return 0.0
    return float(np.median((y[j] - y[i])[ok] / dx[ok]))


def growth(points: Sequence[tuple[datetime, float]], now: datetime, window: timedelta,
           min_history: timedelta = timedelta(hours=1),
           history: timedelta | None = None) -> Growth:
    """Growth per day of `points` over the `window` ending at `now`.

    `history` is how long the host has been watched, where the points (bucket means, say)
    do not show it exactly; by default the span of the points.
    """
    inside = sorted(p for p in points if now - window <= p[0] <= now)
    if len(inside) < 2:
        return Growth(None, window, timedelta(0), len(inside), False,
                      "collecting: no history yet")
    span = inside[-1][0] - inside[0][0] if history is None else min(history, window)
    if span < min_history:
        minutes = int(span.total_seconds() // 60)
        need = int(min_history.total_seconds() // 60)
        return Growth(None, window, span, len(inside), False,
                      f"collecting, {minutes} min so far (growth from {need} min)")
    t0 = inside[0][0]
    slope = theil_sen([(t - t0).total_seconds() for t, _ in inside], [v for _, v in inside])
    covered = span >= window * COVER
    note = "" if covered else f"over the {_human(span)} there is, not {_human(window)}"
    return Growth(slope * 86_400.0, window, span, len(inside), covered, note)


def _human(d: timedelta) -> str:
    s = d.total_seconds()
    if s >= 2 * 86_400:
        return f"{s / 86_400:.0f} d"
    if s >= 3600:
        return f"{s / 3600:.0f} h"
    return f"{s / 60:.0f} min"


# The memcg ID space: MEM_CGROUP_ID_MAX (include/linux/memcontrol.h), 16 bits; mkdir fails
# with ENOSPC when every ID is held (kernel-notes.md 3.9; moby#29638, kubernetes#61937).
MEMCG_ID_MAX = 65_535
# Since 4.8 the private memcg ID is released at offline: mem_cgroup_css_offline() ends with
# mem_cgroup_id_put(); only swap-out records keep an offline memcg's ID
# (mem_cgroup_id_get_online). Commit 73f576c04b94, "mm: memcontrol: fix cgroup creation
# failure after many small jobs" (kernel-notes.md 2(a) "Other pins", 3.9). The engine's
# ID_RECYCLED_SINCE (app/simulation/engine.py) is the same fact; tests/domain/test_idlimit.py
# holds them equal.
ID_RECYCLED_SINCE = (4, 8)
ID_COMMIT = "73f576c04b94"


def days_to_limit(total_now: int | None, g: Growth,
                  limit: int = MEMCG_ID_MAX) -> float | None:
    """Days until the memcg ID space runs out at growth `g`; None without evidence or growth."""
    if total_now is None or g.per_day is None or g.per_day <= 0:
        return None
    return max(0.0, (limit - total_now) / g.per_day)


@dataclass(frozen=True, slots=True)
class IdHold:
    """Whether a kernel's dying memcgs keep their memcg ID, and why (one line, or "")."""

    holds: bool
    note: str


def dying_hold_ids_for_release(release: str) -> IdHold:
    """Whether dying memcgs count against the 65535 memcg IDs on kernel `release`.

    Before 4.8 each dying memcg kept its ID until freed, so live + dying memcgs shared the ID
    space; since 4.8 (73f576c04b94) the ID is recycled at offline and dying memcgs cost
    memory, not IDs. A release that does not parse takes the worst case (holding IDs) and
    says so.
    """
    try:
        version = parse_release(release)
    except UnknownRelease:
        return IdHold(True, f"kernel release {release!r} does not parse: counted as before "
                            f"4.8, where dying memcgs keep their memcg IDs")
    return IdHold(version < ID_RECYCLED_SINCE, "")


@dataclass(frozen=True, slots=True)
class IdLimit:
    """The memcg-ID limit of one host: days to it (None where none is dated), and why."""

    days: float | None
    dying_hold_ids: bool
    note: str  # "" where the days figure says it all


def memcg_id_limit(release: str, live: int | None, total: int | None, g: Growth) -> IdLimit:
    """Days to the memcg-ID limit of a host on kernel `release`, from dying growth `g`.

    Where dying memcgs hold IDs (before 4.8, or an unknown kernel) live + dying (`total`)
    count against MEMCG_ID_MAX and the days follow the dying growth. Since 4.8 dying memcgs
    hold none: the days are None (dying growth cannot exhaust the IDs; live growth is not
    tracked) and the note says why, with the live count.
    """
    hold = dying_hold_ids_for_release(release)
    if hold.holds:
        if total is not None and total >= MEMCG_ID_MAX:
            # At the limit already: mkdir fails now, whatever the growth or its evidence.
            note = f"{total:,} memcgs hold IDs: at the {MEMCG_ID_MAX} limit, mkdir fails " \
                   "with ENOSPC now"
            return IdLimit(0.0, True, f"{note}; {hold.note}" if hold.note else note)
        return IdLimit(days_to_limit(total, g), True, hold.note)
    shown = f"{live:,}" if live is not None else "unknown"
    return IdLimit(None, False,
                   f"memcg IDs are recycled at offline since 4.8 ({ID_COMMIT}): dying memcgs "
                   f"cost memory, not IDs; {shown} live of {MEMCG_ID_MAX}")
