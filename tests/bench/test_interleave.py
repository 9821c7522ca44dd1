"""bench/_interleave.py: both sides of a ratio in one loop, rotating order, median ratio."""

from __future__ import annotations

import math

from bench._interleave import interleave, median_ratio, pct


def test_every_case_runs_once_per_round_in_rotating_order() -> None:
    calls: list[str] = []

    def case(name: str, cost: float):  # type: ignore[no-untyped-def]
        def run() -> float:
            calls.append(name)
            return cost
        return run

    got = interleave({"a": case("a", 1.0), "b": case("b", 2.0), "c": case("c", 3.0)}, 4)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert got == {"a": [1.0] * 4, "b": [2.0] * 4, "c": [3.0] * 4}


def test_median_ratio_is_the_median_of_per_round_ratios() -> None:
    # Rounds 2x, 3x, 10x: the median per-round ratio is 3, not the ratio of medians (2.5).
    assert median_ratio([2.0, 6.0, 10.0], [1.0, 2.0, 1.0]) == 3.0


def test_median_ratio_skips_zero_baselines_and_is_nan_without_rounds() -> None:
    assert median_ratio([4.0, 5.0], [0.0, 2.0]) == 2.5
    assert math.isnan(median_ratio([1.0], [0.0]))


def test_pct_is_nearest_rank() -> None:
    xs = [float(i) for i in range(1, 101)]
    assert pct(xs, 0.5) == 51.0
    assert pct(xs, 0.99) == 100.0
    assert math.isnan(pct([], 0.5))
