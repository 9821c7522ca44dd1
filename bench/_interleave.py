"""Interleaved measurement: every ratio's two sides run in the same loop, in one run.

A subject and its baseline measured minutes apart see a different machine (other helpers'
builds, page cache, CPU frequency). Here each round runs every case once, in an order that
rotates from round to round, and a ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping


def interleave(cases: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every case once per round (rotating order); each call returns its own cost."""
    names = list(cases)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            out[name].append(cases[name]())
    return out


def median_ratio(subject: list[float], baseline: list[float]) -> float:
    """The median of the per-round ratios subject / baseline (rounds with a zero skipped)."""
    ratios = [a / b for a, b in zip(subject, baseline, strict=True) if b > 0]
    return statistics.median(ratios) if ratios else float("nan")


def pct(xs: list[float], q: float) -> float:
    """The q-quantile of xs (nearest rank), NaN when empty."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")
