"""The host page leads with what pins its dying memcgs, from stored series frames."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import store
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.domain.cgtable import KMEM_USAGE
from app.domain.samples import CgroupSample, RemovedCgroup
from app.main import create_app
from tests.conftest import HOST
from tests.snapshots import host_snapshot, stat_row, table

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
MIB = 1 << 20
V1 = "memory"
KEYS = ("cache", "rss", "shmem", "dirty", "writeback", "swap")


def v1row(local: dict[str, int], total: dict[str, int]) -> dict[str, int]:
    stat = {k: local.get(k, 0) for k in KEYS}
    stat.update({"total_" + k: total.get(k, 0) for k in KEYS})
    return stat_row(stat)


def tick(k: int, left_cache: int, left_shmem: int) -> object:
    """/jobs has a live child /jobs/keep (2 MiB cache); removed jobs left the rest."""
    base = replace(host_snapshot(HOST, T0 + timedelta(minutes=5 * k)), host=replace(
        host_snapshot(HOST, T0).host, hostname="pins-host", cgroup_layout="v1"))
    keep = {"cache": 2 * MIB, "rss": MIB}
    rows = {
        (V1, "/"): v1row({}, {"cache": 2 * MIB + left_cache + 5 * MIB, "rss": MIB,
                              "shmem": left_shmem}),
        (V1, "/jobs"): v1row({}, {"cache": 2 * MIB + left_cache, "rss": MIB,
                                  "shmem": left_shmem}),
        (V1, "/jobs/keep"): v1row(keep, keep),
        (V1, "/other"): v1row({"cache": 5 * MIB}, {"cache": 5 * MIB}),
    }
    new = tuple(CgroupSample(V1, p, {}) for _, p in rows) if k == 0 else ()
    return replace(base, series=table(rows), new_cgroups=new)


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    # 8 MiB of page cache and 1 MiB of tmpfs left, then the page cache dropped.
    for k, (cache, shm) in enumerate([(0, 0), (9 * MIB, MIB), (9 * MIB, MIB), (MIB, MIB)]):
        with sessions.begin() as s:
            store.write_snapshot(s, tick(k, cache, shm))  # type: ignore[arg-type]
    engine.dispose()
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        yield c


def test_pins_over_time_and_top_subtrees(client: TestClient) -> None:
    d = client.get("/hosts/pins-host?range=24h&format=json").json()["pins_json"]
    assert d["frames"] == 4 and d["era"] == "objcg-kmem"
    series = {(s["category"], s["pins"], s["measured"]): s["values"] for s in d["series"]}
    assert series[("page cache", True, True)] == [0, 8 * MIB, 8 * MIB, 0]
    assert series[("tmpfs/shmem", True, True)] == [0, MIB, MIB, MIB]
    top = d["top"]
    assert [t["path"] for t in top] == ["/jobs"]  # / and /other hold nothing left
    assert top[0]["pinning_bytes"] == MIB and top[0]["dying"] is None
    assert top[0]["pins"] == [{"category": "tmpfs/shmem", "kinds": ["shmem"], "bytes": MIB,
                               "pins": True, "measured": True}]
    html = client.get("/hosts/pins-host?range=24h").text
    assert 'id="top-subtrees"' in html and "/jobs" in html
    assert html.index('id="pins"') < html.index('id="top-bytes"')  # the page leads with it


def kmem_tick(k: int) -> object:
    """v1 with kmem usage: the root and /svc run tasks (anon of their own); /jobs has none
    and job-1 was removed from it at tick 1, leaving 3 MiB of kernel memory; each leaf has
    80 MiB of kmem of its own."""
    base = replace(host_snapshot(HOST, T0 + timedelta(minutes=5 * k)), host=replace(
        host_snapshot(HOST, T0).host, hostname="kmem-host", cgroup_layout="v1"))
    left = 3 * MIB if k >= 1 else 0
    own = 80 * MIB

    def row(local: dict[str, int], total: dict[str, int], kmem: int) -> dict[str, int]:
        return {**v1row(local, total), KMEM_USAGE: kmem}

    rows = {
        (V1, "/"): row({"rss": MIB}, {"rss": 3 * MIB}, 2 * own + left + MIB),
        (V1, "/jobs"): row({}, {"rss": MIB}, own + left),
        (V1, "/jobs/keep"): row({"rss": MIB}, {"rss": MIB}, own),
        (V1, "/svc"): row({"rss": MIB}, {"rss": MIB}, own),
    }
    new = tuple(CgroupSample(V1, p, {}) for _, p in rows) if k == 0 else ()
    at = base.taken_at
    gone = (RemovedCgroup(V1, "/jobs/job-1", at - timedelta(seconds=15), at, {"cache": 0},
                          0, at - timedelta(minutes=1)),) if k == 1 else ()
    return replace(base, series=table(rows), new_cgroups=new, removed=gone)


def test_v1_kmem_is_charted_only_where_removed_children_left_it(db_url: str) -> None:
    """The leaves' and the root's own kmem was charted as "kernel memory, estimated" (166 of
    167 MB on the tester's host). Now only /jobs's residual after its removal is, and in
    objcg-kmem it does not pin (kernel pages go through objcg since 5.13)."""
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    for k in range(3):
        with sessions.begin() as s:
            store.write_snapshot(s, kmem_tick(k))  # type: ignore[arg-type]
    engine.dispose()
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        d = c.get("/hosts/kmem-host?range=24h&format=json").json()["pins_json"]
        html = c.get("/hosts/kmem-host?range=24h").text
    series = {(s["category"], s["pins"], s["measured"]): s["values"] for s in d["series"]}
    # Frame 0: no removal yet, nothing left: no kernel memory at all (it was 80 MiB x 3 + 1).
    assert series == {("kernel memory", False, False): [0, 3 * MIB, 3 * MIB]}
    assert d["kernel_unknown_bytes"] == 2 * 80 * MIB + MIB  # the leaves' own and the root's
    assert "data-kernel-unknown" in html and "161.0 MiB" in html
