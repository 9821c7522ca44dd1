"""Values real kernels print and hostile pushes send: stored or refused clearly, never a crash.

From the cold review of issue 8: a removed cgroup whose usage was 2^64-1 crashed the daemon
at every start; a corrupt frame blob gave 500 on most of a host's pages.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.api.routes.ingest import gzip_body, token_hash
from app.collector.dbsink import DatabaseSink
from app.config import Settings
from app.db import fleetstate, retention, store
from app.db import modelinput as mi
from app.db import models as m
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.domain import cgtable as ct
from app.domain.samples import (
    Cache,
    CgroupKmemSlabinfo,
    CgroupSample,
    MemcgChildCache,
    MemcgCount,
    MemcgSlabinfoRow,
    RemovedCgroup,
    SlabinfoRow,
    Snapshot,
)
from app.domain.snapshot_json import snapshot_to_dict
from app.main import create_app
from tests.conftest import HOST
from tests.snapshots import host_snapshot, stat_row, table

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
U64 = (1 << 64) - 1
ODD = {"anon": U64, "file": 1 << 63, "shmem": 0, "slab": -5, "kernel_stack": 16384}


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_a_removed_cgroup_with_u64_and_negative_values_is_stored(
        sessions: sessionmaker[Session]) -> None:
    snap = host_snapshot(HOST, T0)
    first = replace(snap, new_cgroups=(CgroupSample("unified", "/job", dict(ODD), U64),))
    gone = RemovedCgroup("unified", "/job", T0, T0 + timedelta(seconds=15), dict(ODD), U64, T0)
    second = replace(host_snapshot(HOST, T0 + timedelta(seconds=15)), removed=(gone,))
    for snap_ in (first, second):
        with sessions.begin() as s:
            store.write_snapshot(s, snap_)
    r = m.RemovedCgroup
    with sessions() as s:
        row = s.execute(select(r.last_memory_stat, r.last_memory_usage_bytes, r.file_bytes,
                               r.shmem_bytes, r.slab_bytes, r.kernel_stack_bytes)).one()
        first_blob = s.scalar(select(m.Cgroup.first_memory_stat))
    assert ct.unpack_stat(row[0]) == ODD  # exact, in the blob
    assert first_blob is not None and ct.unpack_stat(first_blob) == ODD
    # Every u64 exactly (two's complement in BIGINT); a negative figure is no u64: NULL.
    assert tuple(row[1:]) == (U64, 1 << 63, 0, None, 16384)


@pytest.fixture
def corrupted(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    snap = host_snapshot(HOST, T0)
    rows = {("unified", f"/job-{i}"): stat_row({"file": 4096 * i, "anon": 8192}, usage=12288)
            for i in range(5)}
    for k in range(3):
        s_ = replace(snap, taken_at=T0 + timedelta(seconds=15 * k), series=table(rows),
                     full=table(rows))
        with sessions.begin() as s:
            store.write_snapshot(s, s_)
    with sessions.begin() as s:
        s.execute(update(m.CgroupFrame).values(data=b"\x78\x9c garbage"))
        latest = s.scalar(select(m.SlabFrame.scrape_id).order_by(m.SlabFrame.scrape_id.desc())
                          .limit(1))
        s.execute(update(m.SlabFrame).where(m.SlabFrame.scrape_id == latest)
                  .values(data=bytes.fromhex("deadbeef00112233")))
        s.execute(update(m.Cgroup).values(first_memory_stat=b"\x02\xff\xfe"))
    return sessions


def test_corrupt_frames_leave_every_page_answering(corrupted: sessionmaker[Session],
                                                   db_url: str) -> None:
    with corrupted() as s:
        host = s.scalar(select(m.Host.name))
    paths = [f"/hosts/{host}", f"/hosts/{host}/cgroups", f"/hosts/{host}/cgroups?format=json",
             f"/api/v1/hosts/{host}/cgroups", f"/api/v1/hosts/{host}/caches",
             f"/hosts/{host}/caches/dentry", f"/api/v1/hosts/{host}/caches/dentry/series",
             f"/api/v1/hosts/{host}/refcounts", f"/hosts/{host}/refcounts"]
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        got = {p: c.get(p).status_code for p in paths}
        tree = c.get(f"/api/v1/hosts/{host}/cgroups").json()
        caches = c.get(f"/api/v1/hosts/{host}/caches").json()
    assert set(got.values()) == {200}, got
    # The corrupt parts are left out, not made up: the cgroups' figures come back empty and
    # the latest scrape's caches (its slab frame is the corrupt one) are absent.
    assert all(i["file_bytes"] is None for i in tree["items"])
    assert caches["items"] == []


def test_naive_times_in_queries_are_utc(corrupted: sessionmaker[Session], db_url: str) -> None:
    with corrupted() as s:
        host = s.scalar(select(m.Host.name))
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        naive = c.get(f"/api/v1/hosts/{host}/caches?at=2026-11-30T12:00:20")
        aware = c.get(f"/api/v1/hosts/{host}/caches?at=2026-11-30T12:00:20Z")
        assert naive.status_code == 200 and naive.json() == aware.json()
        assert c.get(f"/api/v1/hosts/{host}/cgroups?at=2026-11-30T12:00:20").status_code == 200


# --- Every u64 (issue 9, item 4): stored, served and shown exactly, on both databases. ---

BIG = (U64, 1 << 63, (1 << 63) - 1)  # 2^64-1, 2^63, 2^63-1
SANE_BIG = (1 << 63) - 1
FIG = {"file": U64, "anon": 1 << 63, "shmem": SANE_BIG, "slab": U64, "kernel_stack": 1 << 63}
HOUR0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
VALS = (4096, SANE_BIG, 1 << 63, U64)  # scrape k's figures: the latest is 2^64-1


def _kmem_row(name: str, v: int) -> SlabinfoRow:
    return SlabinfoRow(name, v, v, v, v, v, 0, 0, 0, v, v, 0)


def u64_snapshots() -> list[Snapshot]:
    """Four scrapes in one hour whose host figures are VALS; cgroups, caches, kmem and
    memcg rows hold BIG in every figure; the last records removals with BIG figures."""
    base = host_snapshot(HOST, HOUR0)
    out = []
    for k, v in enumerate(VALS):
        mi = dict(base.meminfo, Slab=v, SReclaimable=v, SUnreclaim=v, Percpu=v,
                  KernelStack=v, Shmem=v, MemTotal=v)
        caches = (*base.caches,
                  *(Cache(f"u64-{j}", (), b, b, b, b, b, b, b, b, b, None, b, b)
                    for j, b in enumerate(BIG)),
                  Cache("odd", (), 64, 64, 1, 0, v, v, v, v))
        rows = {("unified", "/"): stat_row({"file": 1}, usage=1),
                ("unified", "/u64"): stat_row({"file": 1}, usage=SANE_BIG,
                                              cgstat={"nr_dying_descendants": 1 << 63}),
                ("unified", "/u64/a"): stat_row(FIG, usage=U64,
                                                cgstat={"nr_dying_descendants": U64})}
        out.append(replace(
            base, taken_at=HOUR0 + timedelta(minutes=10 * k),
            memcg=MemcgCount(v, v, v, "test"),
            proc_cgroups=tuple(replace(r, num_cgroups=v) if r.subsys_name == "memory" else r
                               for r in base.proc_cgroups),
            meminfo=mi, vmstat=dict(base.vmstat, nr_slab_unreclaimable=v), caches=caches,
            new_cgroups=(CgroupSample("unified", "/u64/a", dict(FIG), U64, None, None,
                                      {"nr_dying_descendants": U64}),) if k == 0 else (),
            series=table(rows), full=table(rows),
            kmem_slabinfo=(CgroupKmemSlabinfo("unified", "/u64",
                                              tuple(_kmem_row(f"k{j}", b)
                                                    for j, b in enumerate(BIG))),),
            memcg_caches=tuple(MemcgChildCache("dentry", b, f"m{j}", b, b, b, b, b, b)
                               for j, b in enumerate(BIG)),
            memcg_slabinfo=tuple(MemcgSlabinfoRow(f"s{j}", b, False, True, b, b, b, b)
                                 for j, b in enumerate(BIG)),
            removed=tuple(RemovedCgroup("unified", f"/gone/{j}", HOUR0, HOUR0 + timedelta(
                minutes=10 * k), {"file": b, "shmem": b, "slab": b, "kernel_stack": b}, b,
                HOUR0) for j, b in enumerate(VALS)) if k == 3 else ()))
    return out


def _ingest(db_url: str, snaps: list[Snapshot]) -> None:
    """The snapshots through POST /api/v1/ingest, as a collector pushes them."""
    app = create_app(Settings(database_url=db_url))
    with TestClient(app) as c:
        with app.state.sessions.begin() as s:
            fleetstate.add_token(s, snaps[0].host.hostname, token_hash("tok-u64"), T0)
        for k, snap in enumerate(snaps):
            r = c.post("/api/v1/ingest", content=gzip_body(f"u64-snapshot-{k}",
                                                           snapshot_to_dict(snap)),
                       headers={"Authorization": "Bearer tok-u64", "Content-Encoding": "gzip",
                                "Content-Type": "application/json"})
            assert r.status_code == 200 and r.json()["status"] == "stored", r.text


@pytest.fixture(params=["store", "sink", "ingest"])
def u64_db(request: pytest.FixtureRequest, sessions: sessionmaker[Session], db_url: str
           ) -> sessionmaker[Session]:
    """A database holding u64_snapshots(), written by store.write_snapshot, by the daemon's
    database sink (COPY on PostgreSQL) or by the ingest route."""
    snaps = u64_snapshots()
    if request.param == "ingest":
        _ingest(db_url, snaps)
    elif request.param == "sink":
        sink = DatabaseSink(sessions)
        for snap in snaps:
            sink.write(snap)  # a SinkError would be the daemon stuck on this snapshot
    else:
        for snap in snaps:
            with sessions.begin() as s:
                store.write_snapshot(s, snap)
    return sessions


def test_every_u64_is_stored_exactly(u64_db: sessionmaker[Session]) -> None:
    with u64_db() as s:
        scrapes = s.scalars(select(m.Scrape).order_by(m.Scrape.taken_at)).all()
        for sc, v in zip(scrapes, VALS, strict=True):
            assert (sc.memcg_num_cgroups_total, sc.memcg_total, sc.memcg_visible_total,
                    sc.memcg_dying_total, sc.mem_total_bytes, sc.slab_bytes,
                    sc.sreclaimable_bytes, sc.sunreclaim_bytes, sc.percpu_bytes,
                    sc.kernel_stack_bytes, sc.shmem_bytes) == (v,) * 11
            assert sc.meminfo_json is not None and sc.meminfo_json["Slab"] == v
            assert sc.vmstat_json is not None and sc.vmstat_json["nr_slab_unreclaimable"] == v
        geo = {c.name: c for c in s.scalars(select(m.SlabCache)
                                            .where(m.SlabCache.name.like("u64-%")))}
        for j, b in enumerate(BIG):
            c = geo[f"u64-{j}"]
            assert (c.object_size_bytes, c.objs_per_slab_total, c.pages_per_slab_total,
                    c.order, c.slab_size_bytes) == (b,) * 5
        kmem = {r.name: r for r in s.scalars(select(m.CgroupKmemCacheSample))}
        mcc = {r.cgroup_name: r for r in s.scalars(select(m.MemcgCacheSample))}
        msi = {r.name: r for r in s.scalars(select(m.MemcgSlabinfoSample))}
        assert len(kmem) == len(mcc) == len(msi) == 3  # names repeat in each scrape
        for j, b in enumerate(BIG):
            k, c, x = kmem[f"k{j}"], mcc[f"m{j}"], msi[f"s{j}"]
            assert (k.active_objs_total, k.num_objs_total, k.object_size_bytes,
                    k.objs_per_slab_total, k.pages_per_slab_total, k.num_slabs_total
                    ) == (b,) * 6
            assert (c.memcg_serial, c.slabs_total, c.total_objects_total, c.objects_total,
                    c.order, c.object_size_bytes, c.objs_per_slab_total) == (b,) * 7
            assert (x.css_id, x.active_objs_total, x.num_objs_total, x.active_slabs_total,
                    x.num_slabs_total) == (b,) * 5
        gone = {r.path: r for r in s.scalars(select(m.RemovedCgroup))}
        for j, b in enumerate(VALS):
            r = gone[f"/gone/{j}"]
            assert (r.last_memory_usage_bytes, r.file_bytes, r.shmem_bytes, r.slab_bytes,
                    r.kernel_stack_bytes) == (b,) * 5


def _host(sessions: sessionmaker[Session]) -> str:
    with sessions() as s:
        return str(s.scalar(select(m.Host.name)))


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_every_u64_is_served_exactly(u64_db: sessionmaker[Session], db_url: str) -> None:
    host = _host(u64_db)
    api = f"/api/v1/hosts/{host}"
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        fleet = c.get("/api/v1/hosts").json()["items"]
        one = c.get(api).json()
        caches = {v: {i["name"]: i for i in c.get(f"{api}/caches", params={
            "at": (HOUR0 + timedelta(minutes=10 * k)).isoformat(), "limit": 1000}
        ).json()["items"]}
            for k, v in enumerate(VALS)}
        tree = {(i["hierarchy"], i["path"]): i
                for i in c.get(f"{api}/cgroups").json()["items"]}
        gone = {i["path"]: i for i in c.get(f"{api}/removed").json()["items"]}
        metrics = c.get("/metrics")  # Prometheus values are doubles
        raw = c.get(f"{api}/series", params={  # raw scrapes: means of the valid ones
            "metric": "slab_bytes", "since": HOUR0.isoformat(), "step": 3600,
            "until": (HOUR0 + timedelta(hours=1)).isoformat()}).json()["series"]["values"]
        csvs = {p: _csv(c.get(p, params={"format": "csv", **q}).text) for p, q in (
            ("/api/v1/hosts", {}), (f"{api}/caches", {"limit": 1000}), (f"{api}/cgroups", {}),
            (f"{api}/removed", {}))}
    summary = one["host"]["summary"]
    assert raw == [float(SANE_BIG + 4096) / 2]
    assert metrics.status_code == 200
    assert f'slabscope_slab_bytes{{host="{host}"}} {float(U64):.17g}' in metrics.text
    # shown as stored, but nothing is derived from a count >= 2^63 (counter underflow)
    assert (summary["wasted_bytes"], summary["dying_growth_per_day_24h"]) == (None, None)
    for row in (fleet[0], summary):
        assert (row["memcg_dying"], row["memcg_live"], row["memcg_total"], row["slab_bytes"],
                row["sreclaimable_bytes"], row["sunreclaim_bytes"], row["percpu_bytes"]
                ) == (U64,) * 7
    for v in VALS:
        for j, g in enumerate(BIG):
            x = caches[v][f"u64-{j}"]
            assert (x["bytes"], x["objects"], x["active_objs"], x["slabs"],
                    x["object_size_bytes"], x["slab_size_bytes"], x["objs_per_slab"],
                    x["pages_per_slab"], x["order"]) == (g,) * 9, (v, j)
        assert caches[v]["odd"]["objects"] == v
    a = tree[("unified", "/u64/a")]
    assert (a["memory_usage_bytes"], a["dying_descendants"], a["file_bytes"], a["anon_bytes"],
            a["shmem_bytes"], a["slab_bytes"], a["kernel_stack_bytes"]) == (
        U64, U64, U64, 1 << 63, SANE_BIG, U64, 1 << 63)
    assert a["memory_stat"] == FIG
    assert tree[("unified", "/u64")]["dying_descendants"] == 1 << 63
    for j, b in enumerate(VALS):
        r = gone[f"/gone/{j}"]
        assert (r["last_memory_usage_bytes"], r["file_bytes"], r["shmem_bytes"],
                r["slab_bytes"], r["kernel_stack_bytes"]) == (b,) * 5
    # CSV: the same digits
    cache_csv = {r["name"]: r for r in csvs[f"{api}/caches"]}
    assert [cache_csv[f"u64-{j}"]["bytes"] for j in range(3)] == [str(b) for b in BIG]
    assert cache_csv["odd"]["objects"] == str(U64)
    cg_csv = {r["path"]: r for r in csvs[f"{api}/cgroups"]}
    assert (cg_csv["/u64/a"]["memory_usage_bytes"], cg_csv["/u64/a"]["anon_bytes"],
            cg_csv["/u64/a"]["dying_descendants"]) == (str(U64), str(1 << 63), str(U64))
    rm_csv = {r["path"]: r for r in csvs[f"{api}/removed"]}
    assert [rm_csv[f"/gone/{j}"]["file_bytes"] for j in range(4)] == [
        str(b) for b in VALS]
    assert csvs["/api/v1/hosts"][0]["slab_bytes"] == str(U64)


def test_every_u64_is_shown(u64_db: sessionmaker[Session], db_url: str) -> None:
    host = _host(u64_db)
    at = {"since": (HOUR0 - timedelta(hours=1)).isoformat(),
          "until": (HOUR0 + timedelta(hours=1)).isoformat()}
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        pages = {p: c.get(p, params=q) for p, q in (
            ("/", {}), (f"/hosts/{host}", at),
            (f"/hosts/{host}/cgroups", {}),
            (f"/hosts/{host}/caches/u64-0", at), (f"/hosts/{host}/caches/odd", at),
            (f"/hosts/{host}/refcounts", {}))}
    assert {p: r.status_code for p, r in pages.items()} == dict.fromkeys(pages, 200)
    underflow = ('<span class="underflow" title="18446744073709551615 (as a signed 64-bit '
                 'number -1: a kernel counter that went below 0)">16.0 EiB</span>')
    cgroups = pages[f"/hosts/{host}/cgroups"].text
    assert underflow in cgroups  # usage, file, slab of /u64/a
    assert 'title="9223372036854775808 (as a signed 64-bit number -9223372036854775808' \
        in cgroups  # anon, kernel_stack
    assert ">18446744073709551615</td>" in cgroups  # dying descendants, a plain count
    assert ">8.0 EiB</td>" in cgroups  # 2^63-1: below 2^63, formatted as any size
    hostpage = pages[f"/hosts/{host}"].text
    assert underflow in hostpage  # the removed list's /gone/0
    cache = pages[f"/hosts/{host}/caches/u64-0"].text
    assert "<b>18446744073709551615</b>" in cache  # objects per slab
    assert underflow in cache  # object size


def test_rollups_leave_values_past_2_63_out(u64_db: sessionmaker[Session],
                                            db_url: str) -> None:
    """Sums, maxima and means skip figures >= 2^63 (counter underflow); 2^63-1 counts."""
    with u64_db.begin() as s:
        retention.run(s, HOUR0 + timedelta(hours=3), raw_days=30)
    with u64_db() as s:
        sh = s.scalars(select(m.ScrapeHourly)).one()
        odd = s.scalar(select(m.SlabCache.id).where(m.SlabCache.name == "odd"))
        ch = s.scalars(select(m.SlabHourly).where(m.SlabHourly.cache_id == odd)).one()
        big = s.scalar(select(m.SlabCache.id).where(m.SlabCache.name == "u64-0"))
        zero = s.scalars(select(m.SlabHourly).where(m.SlabHourly.cache_id == big)).one()
        rh = s.scalars(select(m.RemovedHourly)).one()
        # byte sums are floats (a sum of u64 figures does not fit 64 bits)
        assert mi.removed_slab_mean(s, sh.host_id, HOUR0 + timedelta(hours=1)) == (
            int(float(SANE_BIG + 4096)) // 2)
    exact = float(SANE_BIG + 4096)
    assert sh.scrapes_total == 4 and sh.memcg_dying_max_total == SANE_BIG
    assert (sh.slab_bytes_sum, sh.memcg_dying_sum_total, sh.percpu_bytes_sum) == (exact,) * 3
    assert (ch.samples_total, ch.num_objs_sum_total, ch.slab_bytes_sum) == (4, exact, exact)
    assert (zero.samples_total, zero.num_objs_sum_total) == (4, 0.0)
    assert (rh.removed_total, rh.with_file_total, rh.slab_known_total) == (4, 2, 2)
    assert (rh.file_bytes_sum, rh.slab_bytes_sum, rh.kernel_stack_bytes_sum) == (exact,) * 3
    host = _host(u64_db)
    rng = {"since": HOUR0.isoformat(), "until": (HOUR0 + timedelta(hours=1)).isoformat(),
           "step": 3600}
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        dying = c.get(f"/api/v1/hosts/{host}/series",
                      params={"metric": "memcg_dying", **rng}).json()
        objs = c.get(f"/api/v1/hosts/{host}/caches/odd/series",
                     params={"what": "objects", **rng}).json()
    # An hour's rollup has one count of scrapes (samples) for all its figures: a left-out
    # figure weighs as 0 in its mean, as an absent one always did.
    assert dying["series"]["values"] == [exact / 4]
    assert objs["series"]["values"] == [exact / 4]
