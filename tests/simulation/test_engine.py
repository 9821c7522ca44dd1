"""The lifecycle model: mechanisms, events, invariants, and the per-object reference.

The selftests by era are in test_selftests.py."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.simulation.engine import simulate
from app.simulation.eras import ERAS
from app.simulation.scenarios import PRESETS
from app.simulation.workload import (
    DENTRY,
    EXT4_INODE,
    KMALLOC_192,
    Event,
    JobClass,
    Kind,
    Leftover,
    Pressure,
    Workload,
)
from tests.simulation.reference import simulate_reference

DAY = 86_400.0


def test_dead_cgroups_timeline() -> None:
    r = simulate(PRESETS["test_kmem_dead_cgroups"], ["pre-5.3", "5.3"])
    pre, post = r.eras["pre-5.3"], r.eras["5.3"]
    assert max(pre.dying) == 30 and pre.dying[-1] == 30  # the dentries never go
    assert pre.dying_by_pin["slab"][-1] == 30
    assert max(post.dying) <= 30 and post.dying[-1] == 0
    assert post.zombie_caches[-1] == pytest.approx(30.0)  # reparented, pinning the parent
    assert post.parent_refs[-1] == pytest.approx(30.0)
    assert pre.memcg_refs[-1] == pytest.approx(30 * 5)  # 100 dentries: 5 pages each


def test_same_seed_same_result_and_seed_matters() -> None:
    w = PRESETS["kubernetes-cronjobs"]
    a, b, c = simulate(w, seed=7), simulate(w, seed=7), simulate(w, seed=8)
    assert a.eras["pre-5.3"].dying == b.eras["pre-5.3"].dying
    assert a.eras["pre-5.3"].dying != c.eras["pre-5.3"].dying


def test_eras_in_order_on_cronjobs() -> None:
    r = simulate(PRESETS["kubernetes-cronjobs"]).eras
    last = {e: v.dying[-1] for e, v in r.items()}
    assert last["pre-5.3"] == last["v4-5/7"] > last["5.3"] == last["objcg"] \
        == last["objcg-kmem"] > 0 == last["lru-reparent"]
    assert r["v4-5/7"].zombie_caches[-1] < r["pre-5.3"].zombie_caches[-1]
    assert r["objcg"].zombie_caches[-1] == 0 and r["objcg"].sysfs_dirs[-1] == 0
    # per-memcg caches waste whole slab pages; shared caches only hold the objects
    assert r["pre-5.3"].leftover_slab_bytes[-1] > 2 * r["objcg"].leftover_slab_bytes[-1]
    assert r["v4-5/7"].cache_refs[-1] > 0 and r["pre-5.3"].cache_refs[-1] == 0


def test_kernel_stacks_pin_until_5_13() -> None:
    r = simulate(PRESETS["threads-moved-away"]).eras
    at_30min = 30
    assert r["objcg"].dying[at_30min] > 300  # 500 threads, mean life 1 h
    assert r["objcg-kmem"].dying[at_30min] == 0


def test_tmpfs_survives_drop_caches_until_deleted() -> None:
    r = simulate(PRESETS["tmpfs-left-behind"], ["objcg-kmem"]).eras["objcg-kmem"]
    hour = 3600.0
    before, after_drop = r.dying[int(7 * DAY / hour) - 1], r.dying[int(7 * DAY / hour) + 1]
    assert after_drop >= before > 2000  # drop_caches 3 frees page cache, not tmpfs
    pc = r.dying_by_pin["pagecache"]
    # only cgroups created in the hour after the drop have page cache again (~500/24)
    assert pc[int(7 * DAY / hour) - 1] > 1000 and pc[int(7 * DAY / hour) + 1] < 50
    after_delete = r.dying[int(10 * DAY / hour) + 1]
    assert after_delete < 0.65 * before  # only cgroups created after the delete remain


def _stochastic() -> Workload:
    return Workload("stochastic", (JobClass("job", 400, 120.0, (
        Leftover(Kind.SLAB, 40, DENTRY), Leftover(Kind.SLAB, 10, EXT4_INODE),
        Leftover(Kind.PAGECACHE, 6))),),
        Pressure(slab_per_day=6.0, pagecache_per_day=4.0), duration_seconds=2 * DAY,
        step_seconds=3600.0)


SERIES = {"dying": 3.0, "zombie_caches": 3.0, "memcg_refs": 30.0,
          "dying_cost_bytes": 3 * 80_000.0}  # absolute slack: ~3 memcgs' worth


def _agree(w: Workload, era: str, seeds: int = 12) -> dict[str, float]:
    """Mean curves over seeds, fast engine vs per-object reference: within 5 % of the peak
    (plus a few memcgs' worth) at every point, for every series; returns the peaks."""
    fast = [simulate(w, [era], seed=s).eras[era] for s in range(seeds)]
    ref = [simulate_reference(w, era, seed=100 + s) for s in range(seeds)]
    peaks = {}
    for name, slack in SERIES.items():
        f = np.mean([getattr(e, name) for e in fast], axis=0)
        r = np.mean([getattr(e, name) for e in ref], axis=0)
        tolerance = 0.05 * max(r.max(), 1) + slack
        assert np.max(np.abs(f - r)) <= tolerance, (era, name, f.round(1), r.round(1))
        peaks[name] = float(r.max())
    return peaks


@pytest.mark.parametrize("era", ["pre-5.3", "v4-5/7", "5.3", "objcg-kmem"])
def test_fast_engine_agrees_with_the_per_object_reference(era: str) -> None:
    """Dying memcgs, zombie caches, css refs on dying memcgs and their cost."""
    peaks = _agree(_stochastic(), era)
    assert peaks["dying"] > 20  # a real signal, not two empty curves
    assert peaks["memcg_refs"] > 20
    if era != "objcg-kmem":
        assert peaks["zombie_caches"] > 20


def _mechanisms() -> Workload:
    """Half-dirty page cache, a sync and drop_caches, and shared dentries and dir blocks."""
    return Workload("mechanisms", (JobClass("job", 400, 120.0, (
        Leftover(Kind.SLAB, 30, DENTRY), Leftover(Kind.PAGECACHE, 6, dirty_share=0.5)),
        shared_leftovers=(Leftover(Kind.SLAB, 200, EXT4_INODE),
                          Leftover(Kind.PAGECACHE, 3))),),
        Pressure(slab_per_day=6.0, pagecache_per_day=4.0),
        (Event(DAY / 2, "drop_caches", 1), Event(DAY / 2 + 600, "sync"),
         Event(DAY, "drop_caches", 3)), duration_seconds=2 * DAY, step_seconds=3600.0)


@pytest.mark.parametrize("era", ["pre-5.3", "5.3", "objcg-kmem"])
def test_reference_agrees_on_dirty_pages_sync_and_shared_objects(era: str) -> None:
    peaks = _agree(_mechanisms(), era)
    assert peaks["dying"] > 20


def test_reference_agrees_on_the_id_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference checks the limit exactly at each mkdir; the engine per step. With a
    limit of 40 (patched into both) and page cache that only drop_caches frees: 40 cgroups,
    ENOSPC at the 40th (780 s), the drop at 2010 s frees them, 40 more (2020-2800 s)."""
    import app.simulation.engine as engine
    import tests.simulation.reference as reference

    monkeypatch.setattr(engine, "MEMCG_ID_MAX", 40)
    monkeypatch.setattr(reference, "ID_MAX", 40)
    w = Workload("flood", (JobClass("job", 0, 60.0, (Leftover(Kind.PAGECACHE, 2),),
                                    period_seconds=20.0, count=200),),
                 Pressure(pagecache_per_day=0.0), (Event(2010.0, "drop_caches", 1),),
                 duration_seconds=4000.0, step_seconds=50.0)
    fast = simulate(w, ["pre-5.3"]).eras["pre-5.3"]
    ref = simulate_reference(w, "pre-5.3", seed=1)
    assert max(np.array(fast.live) + np.array(fast.dying)) == 40 == ref.max_ids_held
    assert fast.enospc_seconds == ref.enospc_seconds == 39 * 20.0
    assert fast.created_total == ref.created == 80
    assert fast.refused_total == ref.refused == 120
    assert fast.dying == ref.dying


leftovers = st.lists(st.one_of(
    st.builds(Leftover, st.just(Kind.SLAB), st.integers(1, 60),
              st.sampled_from([DENTRY, EXT4_INODE, KMALLOC_192])),
    st.builds(Leftover, st.sampled_from([Kind.PAGECACHE, Kind.SHMEM]), st.integers(1, 20),
              dirty_share=st.floats(0, 1)),
    st.builds(Leftover, st.just(Kind.KSTACK), st.integers(1, 3),
              mean_life_seconds=st.floats(60, 7200))), max_size=4)
workloads = st.builds(
    lambda cls, pressure, events: Workload("h", tuple(cls), pressure, tuple(events),
                                           duration_seconds=DAY / 4, step_seconds=900.0),
    st.lists(st.builds(JobClass, st.sampled_from(["a", "b"]), st.floats(0, 400),
                       st.floats(0, 3600), leftovers.map(tuple),
                       shared_leftovers=leftovers.map(lambda x: tuple(x[:2]))),
             min_size=1, max_size=2),
    st.builds(Pressure, st.floats(0, 20), st.floats(0, 20)),
    st.lists(st.builds(Event, st.floats(0, DAY / 4), st.sampled_from(["drop_caches",
                                                                      "delete_files",
                                                                      "sync"]),
                       st.integers(1, 3)), max_size=3))


@settings(max_examples=40, deadline=None)
@given(w=workloads, seed=st.integers(0, 1000))
def test_properties_of_the_fast_engine(w: Workload, seed: int) -> None:
    r = simulate(w, seed=seed)
    for e in r.eras.values():
        for series in (e.live, e.dying, e.dying_in_release, *e.dying_by_pin.values()):
            assert min(series) >= 0
        for name in ("zombie_caches", "sysfs_dirs", "cache_refs", "memcg_refs",
                     "parent_refs", "leftover_slab_bytes"):
            assert min(getattr(e, name)) >= -1e-6, name
        for k in range(len(e.dying)):
            assert e.dying_in_release[k] <= e.dying[k]
            assert all(v[k] <= e.dying[k] for v in e.dying_by_pin.values())
            assert e.live[k] + e.dying[k] <= e.created_total
            assert e.dying_cost_bytes[k] >= e.dying[k] * e.memcg_cost_bytes - 1e-6
        assert e.freed_total + e.never_freed <= e.created_total
        assert e.refused_total == 0 and e.enospc_seconds is None  # far below 65535
    # Nothing can keep more memcgs dying than the era before it pinned.
    d = {n: np.array(v.dying) for n, v in r.eras.items()}
    assert (d["lru-reparent"] <= d["objcg-kmem"]).all()
    assert (d["objcg-kmem"] <= d["objcg"]).all()


@settings(max_examples=25, deadline=None)
@given(w=workloads, seed=st.integers(0, 1000), era=st.sampled_from(list(ERAS)))
def test_reference_invariants_hold(w: Workload, seed: int, era: str) -> None:
    small = replace(w, classes=tuple(replace(c, per_day=min(c.per_day, 60.0))
                                     for c in w.classes))
    r = simulate_reference(small, era, seed)  # raises InvariantViolation on any breach
    assert r.pages_charged >= r.pages_freed >= 0
