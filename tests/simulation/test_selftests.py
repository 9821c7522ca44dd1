"""test_kmem.c run step by step in each era: outcomes follow the era facts, not names.

The published expectations (kernel-notes.md section 4, "Expected outcome by era", and 3.7
for the percpu key) are written down here from the notes, not from the model; everything
else flips one fact of an era record and checks the outcome and the values the C test's
checks read.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from app.domain.cost import FROM_6_10
from app.domain.eras import ERAS, Era, SlabPin
from app.simulation import selftests as st
from app.simulation.engine import simulate
from app.simulation.scenarios import PRESETS
from app.simulation.selftests import PAGE, THREAD_STACK, Kernel, max_vmstat_error, selftests

# kernel-notes.md 4: <= 5.2 fails (live dentries pin 30 memcgs), v4 5/7 alone fails (each
# child's dentry cache stays non-empty), 5.3+ and 5.9+ pass.
NOTES_DEAD_CGROUPS = {"pre-5.3": False, "v4-5/7": False, "5.3": True, "objcg": True,
                      "objcg-kmem": True, "lru-reparent": True}
NOTES_PERCPU_FROM = (5, 9)  # memory.stat `percpu` since 5.9 (772616b031f0)
NOTES_DELETION_FAILS = {"5.3"}  # stats reparent correctly only with the 5.3 follow-up fixes


def _grid(eras: list[str | Era] | None = None) -> dict[tuple[str, str], bool]:
    return {(o.test, o.era): o.passes for o in selftests(eras)}


def test_outcomes_match_the_kernel_notes_table() -> None:
    got = _grid()
    assert {e: got["test_kmem_dead_cgroups", e] for e in ERAS} == NOTES_DEAD_CGROUPS
    for name, era in ERAS.items():
        released_59 = era.since is not None and era.since >= NOTES_PERCPU_FROM
        assert got["test_percpu_basic", name] is released_59, name
        assert got["test_kmem_memcg_deletion", name] is (name not in NOTES_DELETION_FAILS)
        assert got["test_kmem_kernel_stacks", name] and got["test_kmem_basic", name]
        assert got["test_kmem_proc_kpagecgroup", name]


def _dead(era: Era, poll: str = "5.9-2025") -> tuple[bool, str]:
    return st.test_kmem_dead_cgroups(Kernel(era), poll)


def test_dead_cgroups_follows_what_pins_slab() -> None:
    # The facts, not the names: slab that stops pinning passes, slab that pins fails.
    assert _dead(replace(ERAS["pre-5.3"], slab_pin=SlabPin.NONE))[0]
    assert _dead(replace(ERAS["v4-5/7"], slab_pin=SlabPin.NONE))[0]
    ok, why = _dead(replace(ERAS["objcg-kmem"], slab_pin=SlabPin.PAGE))
    assert not ok and why.startswith("nr_dying_descendants 30, 30, 30, 30, 30")
    ok, why = _dead(ERAS["pre-5.3"])
    assert not ok and "30" in why and "never 0" in why


def test_dead_cgroups_poll_window_against_the_release_delay() -> None:
    # 5 reads 1 s apart see 0 only if the memcgs are freed within 4 s; 80 x 100 ms within
    # 7.9 s (the Dec 2025 version): a 6 s release fails the first and passes the second.
    slow = replace(ERAS["objcg-kmem"], release_delay_seconds=6.0)
    assert not _dead(slow)[0]
    assert _dead(slow, "Dec 2025+")[0]
    assert _dead(replace(slow, release_delay_seconds=3.0))[0]


def test_dead_cgroups_reads_the_engine() -> None:
    # The same children as the engine's preset: nothing of the 30 is freed without pressure.
    r = simulate(PRESETS["test_kmem_dead_cgroups"], [ERAS["pre-5.3"]]).eras["pre-5.3"]
    k = Kernel(ERAS["pre-5.3"])
    st.test_kmem_dead_cgroups(k)
    assert k.nr_dying_descendants("/kmem_dead_cgroups_test") == r.dying[-1] == 30


def test_deletion_drift_is_the_lost_per_cpu_slab_deltas() -> None:
    k = Kernel(ERAS["5.3"])
    ok, _ = st.test_kmem_memcg_deletion(k)
    stat = k.memory_stat("/kmem_memcg_deletion_test")
    # Each child: 2 threads a CPU x 100 dentries = 200 a CPU, 10 dentry pages of its cache
    # copy a CPU, under MEMCG_CHARGE_BATCH (32 pages): never folded, lost at reparenting.
    per_cpu_pages = math.ceil(200 / 21)
    assert k.memory_current("/kmem_memcg_deletion_test") == 100 * 2 * per_cpu_pages * PAGE
    assert stat["slab"] == 0 and not ok
    # The same era with the stat-flush follow-ups passes, to the byte.
    fixed = Kernel(replace(ERAS["5.3"], nonleaf_slab_stats_drift=False))
    assert st.test_kmem_memcg_deletion(fixed)[0]
    stat = fixed.memory_stat("/kmem_memcg_deletion_test")
    assert stat["slab"] == fixed.memory_current("/kmem_memcg_deletion_test")


def test_deletion_drift_needs_reparenting() -> None:
    # Drift happens when slab moves to the parent at offline: an era that does not reparent
    # keeps the child's deltas in the dying child, and memory.stat reads them.
    assert _grid([replace(ERAS["pre-5.3"], nonleaf_slab_stats_drift=True)])[
        "test_kmem_memcg_deletion", "pre-5.3"]
    assert not _grid([replace(ERAS["objcg"], nonleaf_slab_stats_drift=True)])[
        "test_kmem_memcg_deletion", "objcg"]


@pytest.mark.parametrize("name", list(ERAS))
def test_percpu_follows_its_fact_alone(name: str) -> None:
    era = ERAS[name]
    base = _grid([era])
    flipped = _grid([replace(era, memory_stat_percpu=not era.memory_stat_percpu)])
    assert {k for k in base if flipped[k] != base[k]} == {("test_percpu_basic", name)}


def test_percpu_charges_the_childrens_stats_to_the_parent() -> None:
    k = Kernel(ERAS["objcg-kmem"], cpus=4)
    ok, _ = st.test_percpu_basic(k)
    # 6.10+ sizes (kernel-notes.md 5.1: Averin's 4,692 B a CPU less Butt's savings, the
    # lruvec part per CPU and node): 1000 children, 4 CPUs, 1 node.
    per_child = (FROM_6_10.per_cpu + FROM_6_10.per_cpu_node) * 4
    assert per_child == (4_692 - 752 - (1280 - 960) + 432) * 4
    assert ok and k.memory_stat("/percpu_basic_test")["percpu"] == 1000 * per_child
    assert max_vmstat_error(4) == 4096 * 32 * 2 * 4


def test_basic_charges_pages_or_objects_by_era() -> None:
    pages = Kernel(ERAS["5.3"])
    assert st.test_kmem_basic(pages)[0]
    objects = Kernel(ERAS["objcg"])
    assert st.test_kmem_basic(objects)[0]
    # Per-memcg cache copies charge whole slab pages; obj_cgroups the objects' bytes.
    assert "slab 19,505,152 B" in st.test_kmem_basic(Kernel(ERAS["pre-5.3"]))[1]  # 4762 pages
    assert "slab 19,200,000 B" in st.test_kmem_basic(Kernel(ERAS["objcg"]))[1]  # 100000 x 192


def test_kernel_stacks_are_charged_per_thread() -> None:
    k = Kernel(ERAS["objcg-kmem"])
    k.mkdir("/t")
    k.spawn_threads("/t", 10)
    assert k.memory_stat("/t")["kernel_stack"] == 10 * THREAD_STACK == k.memory_current("/t")
    k.exit_threads("/t", 10)
    assert k.memory_stat("/t")["kernel_stack"] == 0 == k.memory_current("/t")


def test_memory_high_reclaims_after_rcu() -> None:
    k = Kernel(ERAS["objcg-kmem"])
    k.mkdir("/h")
    k.alloc_dcache("/h", 10_000)
    before = k.memory_current("/h")
    k.set_high("/h", 1 << 20)
    assert k.memory_current("/h") == before  # freed dentries are uncharged after RCU
    k.sleep(1.0)
    assert k.memory_current("/h") <= 1 << 20 < before
