"""Churn from kernfs ids and num_cgroups (app/domain/churn.py)."""

from __future__ import annotations

import pytest

from app.domain.churn import Churn, Listing, churn, stride_of

S = stride_of(32)  # a v1 memory cgroup here: its directory and 32 control files


def test_hidden_cgroups_are_counted_by_the_ids_they_took() -> None:
    # 40 jobs made and removed between ticks, then one that stays: 41 made, 40 removed;
    # 30 of the removed were freed at once (num_cgroups rose by 41 - 30).
    before = Listing(newest_id=4754, visible=10, num_cgroups=12)
    now = Listing(newest_id=4754 + 41 * S, visible=11, num_cgroups=12 + 11)
    assert churn(before, now, S) == Churn(created=41, removed=40, freed=30, exact=True)


def test_removals_of_old_cgroups_and_no_creation() -> None:
    before = Listing(4000, 20, 30)
    now = Listing(4000, 17, 30)  # 3 removed, none freed yet (they are dying)
    assert churn(before, now, S) == Churn(0, 3, 0, True)


def test_ids_taken_by_files_alone_flag_the_interval() -> None:
    got = churn(Listing(1000, 5), Listing(1000 + 2 * S + 7, 7), S)
    assert got == Churn(2, 0, None, False)


def test_a_reboot_or_wrap_gives_no_count() -> None:
    assert churn(Listing(90_000, 50), Listing(1_200, 40), S) is None


def test_stride_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stride"):
        churn(Listing(1, 1), Listing(2, 1), 0)
