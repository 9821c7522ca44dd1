"""Churn from kernfs ids and num_cgroups (app/domain/churn.py)."""

from __future__ import annotations

import pytest

from app.domain.churn import Churn, Listing, NumBase, churn, stride_of

S = stride_of(32)  # a v1 memory cgroup here: its directory and 32 control files


def _counts(c: Churn | None) -> Churn | None:
    """The four counts alone (what the store keeps), without the carried baseline."""
    return None if c is None else Churn(c.created, c.removed, c.freed, c.exact)


def test_hidden_cgroups_are_counted_by_the_ids_they_took() -> None:
    # 40 jobs made and removed between ticks, then one that stays: 41 made, 40 removed;
    # 30 of the removed were freed at once (num_cgroups rose by 41 - 30).
    before = Listing(newest_id=4754, visible=10, num_cgroups=12)
    now = Listing(newest_id=4754 + 41 * S, visible=11, num_cgroups=12 + 11)
    assert _counts(churn(before, now, S)) == Churn(created=41, removed=40, freed=30,
                                                    exact=True)


def test_removals_of_old_cgroups_and_no_creation() -> None:
    before = Listing(4000, 20, 30)
    now = Listing(4000, 17, 30)  # 3 removed, none freed yet (they are dying)
    assert _counts(churn(before, now, S)) == Churn(0, 3, 0, True)


def test_ids_taken_by_files_alone_flag_the_interval() -> None:
    got = churn(Listing(1000, 5), Listing(1000 + 2 * S + 7, 7), S)
    assert _counts(got) == Churn(2, 0, None, False)


def test_a_reboot_or_wrap_gives_no_count() -> None:
    assert churn(Listing(90_000, 50), Listing(1_200, 40), S) is None


def test_stride_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stride"):
        churn(Listing(1, 1), Listing(2, 1), 0)


def test_ids_that_lag_behind_num_cgroups_give_no_freed_and_carry_the_baseline() -> None:
    """The tester's burst: 200 cgroups made and removed within ~2 ms each, then nothing.

    num_cgroups rose by 200 at once; the ids counted only the 3 cgroups listed since (the
    burst's ids are counted when a later directory is seen). The next interval, a cgroup
    that stays appears 55 s later: the ids count the 200 and it (201), 200 removed, and
    num_cgroups fell by 2 (3 freed, 1 made). Before: freed 0 (clamped from -197), then 203
    freed of 201 made. Now: unknown, then freed over the span the 201 and the 3 cover."""
    a = Listing(newest_id=10_000, visible=40, num_cgroups=400)
    b = Listing(newest_id=10_000 + 3 * S, visible=41, num_cgroups=600)
    first = churn(a, b, S)
    assert first is not None
    assert (first.created, first.removed, first.freed, first.exact, first.lagging) == (
        3, 2, None, False, True)
    assert first.base == NumBase(400, 3)  # the baseline stays where the ids were complete
    c = Listing(newest_id=b.newest_id + 201 * S, visible=42, num_cgroups=598)
    second = churn(b, c, S, first.base)
    assert second is not None
    # 204 counted since num_cgroups was 400, which rose by 198: 6 freed over both intervals.
    assert (second.created, second.removed, second.freed, second.exact) == (201, 200, 6, True)
    assert second.base == NumBase(598)
    assert second.freed is not None and second.freed <= first.base.created + second.created
    # Freed summed over the intervals balances num_cgroups against what the ids counted.
    assert c.num_cgroups is not None and a.num_cgroups is not None
    assert (first.created + second.created) - second.freed == c.num_cgroups - a.num_cgroups


def test_a_lag_that_lasts_several_intervals_keeps_one_baseline() -> None:
    a = Listing(5_000, 10, 100)
    b = Listing(5_000, 10, 150)  # 50 made and removed, no later directory yet
    c = Listing(5_000 + S, 11, 160)  # one made and listed: the ids count 1 of 60
    one = churn(a, b, S)
    assert one is not None and one.lagging and one.base == NumBase(100, 0)
    two = churn(b, c, S, one.base)
    assert two is not None and two.lagging and two.freed is None
    assert two.base == NumBase(100, 1)
    d = Listing(5_000 + 62 * S, 12, 158)  # the ids catch up: 60 more counted and a stayer
    three = churn(c, d, S, two.base)
    assert three is not None and not three.lagging
    assert (three.created, three.freed, three.exact) == (61, 62 - 58, True)


def test_without_num_cgroups_nothing_lags() -> None:
    got = churn(Listing(1, 3), Listing(1 + S, 4), S, NumBase(10, 2))
    assert got is not None and got.freed is None and got.exact and not got.lagging
    assert got.base == NumBase(10, 3)  # carried on to where num_cgroups is read again
    # A hierarchy whose memcgs num_cgroups does not count: no baseline at all.
    got = churn(Listing(1, 3), Listing(1 + S, 4), S)
    assert got is not None and got.freed is None and got.base is None


def test_an_interval_without_num_cgroups_carries_the_baseline_on() -> None:
    """num_cgroups unread (it moved while the hierarchy was listed): freed unknown there,
    and the next interval's freed spans both, so the sum still balances."""
    a = Listing(7_000, 5, 50)
    b = Listing(7_000 + 4 * S, 5, None)  # 4 made, 4 removed
    one = churn(a, b, S)
    assert one is not None and one.freed is None and one.exact and one.base == NumBase(50, 4)
    c = Listing(7_000 + 6 * S, 7, 53)  # 2 more made and kept; num_cgroups 50 -> 53
    two = churn(b, c, S, one.base)
    assert two is not None and (two.created, two.freed) == (2, 6 - 3)
