#!/usr/bin/env python3
"""Speed of the lifecycle model (issue 4 targets).

  * 30 days of a host with 10,000 new cgroups a day touching all 235 of this VM's slab caches
    (ten job classes, each leaving objects in its own 24 caches, some with page cache), in
    all six eras: target < 2 s.
  * The same workload cut to 10,000 cgroups, fast engine vs the per-object reference
    (tests/simulation/reference.py), all six eras, same process: target >= 100x.
  * A host's projection page (3 days of 60 s scrapes, fit + backtest + six eras for 30 days),
    rendered through the app in process: target < 500 ms.

The fast engine and the reference alternate in one loop: each round runs the fast engine
(all six eras) and the reference for one era, in alternating order.
`--no-reference` skips the reference (about ten minutes); `--quick` runs it on 1,000
cgroups instead of 10,000 and the projection page fewer times.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.collector.scrape import Collector, CollectorOptions
from app.simulation.engine import simulate
from app.simulation.eras import ERAS
from app.simulation.workload import CacheGeometry, JobClass, Kind, Leftover, Pressure, Workload
from tests.simulation.reference import simulate_reference

HOST = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "host-6.18"


def host_workload(per_day: float, days: float) -> Workload:
    caches = Collector(CollectorOptions(proc_root=str(HOST / "proc"),
                                        sys_root=str(HOST / "sys"))).collect().caches
    geo = [CacheGeometry(c.name, c.object_size_bytes, max(1, c.objs_per_slab), c.order or 0,
                         bool(c.reclaim_account)) for c in caches]
    assert len(geo) == 235
    classes = []
    for i in range(10):
        mine = geo[i::10]
        leaves = [Leftover(Kind.SLAB, 1 + (7 * j + i) % 12, g) for j, g in enumerate(mine)]
        if i % 3 == 0:
            leaves.append(Leftover(Kind.PAGECACHE, 8))
        classes.append(JobClass(f"class-{i}", per_day / 10, 60.0 + 30 * i, tuple(leaves)))
    return Workload("bench-host", tuple(classes), Pressure(slab_per_day=0.7,
                                                             pagecache_per_day=1.5),
                    duration_seconds=days * 86_400.0, step_seconds=3600.0)


def projection_page(reps: int = 15) -> tuple[float, float]:
    """p50 and p95 seconds of /hosts/<host>/projection on one host's 3 days in SQLite."""
    import tempfile
    from datetime import UTC, datetime

    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app
    from bench.pages import seed
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        url = f"sqlite:///{tmp}/projection.db"
        seed(url, 1, 3, datetime.now(UTC).replace(microsecond=0))
        with TestClient(create_app(Settings(database_url=url))) as c:
            assert c.get("/hosts/host-00/projection").status_code == 200
            samples = []
            for _ in range(reps):
                t = time.perf_counter()
                r = c.get("/hosts/host-00/projection")
                samples.append(time.perf_counter() - t)
                assert r.status_code == 200
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def speedup(w: Workload) -> tuple[int, float, float]:
    """Fast engine (all six eras in one call) vs the per-object reference (all six, one era
    per round), interleaved: round i times both, in alternating order. Returns (cgroups,
    median fast seconds, reference seconds summed over the eras)."""
    fast, ref, n = [], 0.0, 0
    for i, era in enumerate(ERAS):
        for which in (("ref", "fast") if i % 2 else ("fast", "ref")):
            t = time.perf_counter()
            if which == "fast":
                n = simulate(w, seed=2).eras["pre-5.3"].created_total
                fast.append(time.perf_counter() - t)
            else:
                simulate_reference(w, era, seed=2)
                ref += time.perf_counter() - t
    return n, statistics.median(fast), ref


def main() -> None:
    quick = "--quick" in sys.argv
    w = host_workload(10_000, 30)
    slab_caches = {lf.cache.name for c in w.classes for lf in c.leftovers if lf.cache}
    simulate(replace(w, duration_seconds=86_400.0))  # warm up numpy
    t = time.perf_counter()
    r = simulate(w, seed=1)
    fast30 = time.perf_counter() - t
    created = r.eras["pre-5.3"].created_total
    print(f"30 days, {created:,} cgroups, {len(slab_caches)} caches, {len(ERAS)} eras: "
          f"{fast30:.2f} s   (target < 2 s)")
    for name, e in r.eras.items():
        print(f"  {name:<13} dying at day 30: {e.dying[-1]:>7,}   zombie caches: "
              f"{e.zombie_caches[-1]:>9,.0f}   leftover slab: "
              f"{e.leftover_slab_bytes[-1] / 2**20:8.1f} MiB")
    p50, p95 = projection_page(5 if quick else 15)
    print(f"projection page, one host with 3 days of 60 s scrapes: p50 {p50 * 1e3:.0f} ms, "
          f"p95 {p95 * 1e3:.0f} ms   (target < 500 ms)")
    if "--no-reference" in sys.argv:
        return
    n, fast_s, ref_s = speedup(host_workload(1_000 if quick else 10_000, 1))
    print(f"{n:,} cgroups, six eras, interleaved: fast {fast_s * 1e3:.0f} ms (median of 6), "
          f"per-object reference {ref_s:.1f} s: {ref_s / fast_s:,.0f}x   (target >= 100x)")


if __name__ == "__main__":
    main()
