"""Refcount views: exact on a host that exposes per-memcg caches (<= 5.8)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.collector.scrape import Collector, CollectorOptions
from app.db import queries as q
from app.db import store
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.services import hosts as views
from app.simulation.refcounts import refcounts
from tests.conftest import ERAS


@pytest.fixture
def sessions(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_exact_refcounts_from_per_memcg_caches(sessions: sessionmaker[Session]) -> None:
    root = ERAS / "pre-5.3-v1-memcg-sysfs"
    snap = Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys"),
                                      page_size_bytes=4096)).collect()
    with sessions.begin() as s:
        store.write_snapshot(s, snap)
    with sessions() as s:
        host = q.host_by_name(s, "web-frontend-419")
        assert host is not None
        st = views.state(s, host)
    assert st is not None and len(st.memcg_caches) == 5
    pre = refcounts(st, "pre-5.3")
    assert pre.exact and pre.method.startswith("exact")
    css = dict(pre.memcgs)
    # cron.service: 40 dentry slabs (order 0) + 2 kmalloc-64 slabs: one css ref per 4 KiB page
    assert css["cron.service"] == 42
    # run-r2c4.scope: 3 dentry slabs + 1 inode_cache slab of order 1 (2 pages)
    assert css["run-r2c4.scope"] == 5
    v4 = refcounts(st, "v4-5/7")
    assert dict(v4.memcgs)["cron.service"] == 2  # one css ref per per-memcg cache
    by_cache = {c.cache: c for c in v4.caches}
    assert by_cache["dentry"].percpu_refs == 40 + 3 + 1  # 1 << 0 per page
    assert by_cache["inode_cache"].percpu_refs == 2  # 1 << 1 for its one page
    assert by_cache["dentry"].per_memcg_caches == 3
    assert refcounts(st, "objcg").memcgs == []


@pytest.mark.parametrize("era", ["pre-5.3", "v4-5/7", "5.3", "objcg-kmem"])
def test_thousands_of_cgroups_fold_into_other_cgroups_with_the_same_totals(
        era: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.domain.history import CacheState, CgroupState, HostState
    from app.simulation import refcounts as rc
    caches = [CacheState(f"cache-{i}", 8 * (i + 1), i % 3, 32, 64 * (i + 1), 100 * i, i % 2 == 0)
              for i in range(12)]
    cgroups = [CgroupState(f"/job-{i}", 4096 * (1 + i % 37), None) for i in range(1500)]
    state = HostState("big", "objcg-kmem", 4096, 300, caches, cgroups, [], 8192)
    keep = rc.KEEP_CGROUPS
    folded = rc.refcounts(state, era)
    monkeypatch.setattr(rc, "KEEP_CGROUPS", 10**6)
    whole = rc.refcounts(state, era)
    assert len(folded.memcgs) <= keep + 2
    assert era == "objcg-kmem" or len(whole.memcgs) > keep + 2  # objcg: no css refs held
    # Every cache's pages, references and memcg copies are the same, folded or not.
    assert [c.cache for c in folded.caches] == [c.cache for c in whole.caches]
    for a, b in zip(folded.caches, whole.caches, strict=True):
        got = [a.pages, a.percpu_refs, a.css_refs, a.objcg_refs, a.per_memcg_caches]
        want = [b.pages, b.percpu_refs, b.css_refs, b.objcg_refs, b.per_memcg_caches]
        assert got == pytest.approx(want, abs=0.2)  # both rounded to 0.1
    total = {m: r for m, r in whole.memcgs}
    kept = {m: r for m, r in folded.memcgs if m != "other cgroups"}
    other = dict(folded.memcgs).get("other cgroups", 0.0)
    assert all(total[m] == r for m, r in kept.items())
    assert other == pytest.approx(sum(r for m, r in total.items() if m not in kept), rel=1e-6)
