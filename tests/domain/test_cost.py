"""The cost of one dying memcg per era, at 2, 4 and 32 CPUs (kernel-notes.md 5.1)."""

from __future__ import annotations

import pytest

from app.domain.cost import (
    FROM_5_9,
    FROM_6_10,
    LAB_6_18,
    UP_TO_5_8,
    cache_copy_bytes,
    memcg_cost,
    model_for_era,
)


def test_up_to_5_8_is_gushchins_2019_measurement() -> None:
    # 1000 dying cgroups: Percpu +57,216 kB, Slab +17,060 kB at 32 CPUs: ~75 kB each.
    assert UP_TO_5_8.bytes(32) == 17_060 + 57_216_000 // 1000 == 74_276
    assert UP_TO_5_8.bytes(32) == pytest.approx(75_000, rel=0.02)
    assert UP_TO_5_8.bytes(2) == 17_060 + 2 * 1_788
    assert UP_TO_5_8.bytes(4) == 17_060 + 4 * 1_788


def test_5_9_is_averins_2022_measurement() -> None:
    # ~17 KB + 4,692 B per CPU on a 4-CPU, 1-node VM.
    for cpus in (2, 4, 32):
        assert FROM_5_9.bytes(cpus, 1) == 17 * 1024 + 4_692 * cpus
    assert FROM_5_9.bytes(4, 1) == 36_176


def test_6_10_is_5_9_less_butts_stats_savings() -> None:
    for cpus in (2, 4, 32):
        for nodes in (1, 2):
            saved = (1832 - 1352) + (1128 - 648) * nodes + (1280 - 960) * cpus \
                + (752 - 432) * cpus * nodes
            assert FROM_5_9.bytes(cpus, nodes) - FROM_6_10.bytes(cpus, nodes) == saved
    assert FROM_6_10.bytes(2, 1) == 24_552
    assert FROM_6_10.bytes(2, 2) > FROM_6_10.bytes(2, 1)  # per-node parts grow with nodes
    # This lab's 6.18 VM measured 16.6 kB at 2 CPUs: the published figure is an upper bound.
    assert LAB_6_18.bytes(2) == 16_630 < FROM_6_10.bytes(2)


def test_eras_and_releases_pick_their_generation() -> None:
    assert model_for_era("pre-5.3") is UP_TO_5_8 and model_for_era("5.3") is UP_TO_5_8
    assert model_for_era("objcg") is FROM_5_9 and model_for_era("objcg-kmem") is FROM_6_10
    assert memcg_cost("5.4.0-42-generic", 32, 1).per_memcg_bytes == 74_276
    assert memcg_cost("5.19.0", 4, 1).per_memcg_bytes == 36_176
    assert memcg_cost("6.18.44-fc", 2, 1).per_memcg_bytes == 24_552
    assert memcg_cost("garbage", 2, 1).per_memcg_bytes == 24_552
    # Each per-memcg cache copy (before 5.9) adds its struct, per-CPU part and half a slab.
    assert cache_copy_bytes(32) == 2_048 + 64 * 32 + 2_048
