"""Cgroup identity across ticks and restarts, and each kernel file read once a tick.

Fake roots copied from the fixtures; the database is real (SQLite and PostgreSQL); opens are
counted by wrapping os.open, as strace would see them.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.collector.dbsink import DatabaseSink
from app.collector.scrape import Collector, CollectorOptions
from app.collector.sources import _files
from app.db import models as m
from app.db import store
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from tests.conftest import ERAS, HOST

MEM = "sys/fs/cgroup/memory"
T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _root(tmp_path: Path, src: Path) -> Path:
    dst = tmp_path / "host"
    shutil.copytree(src, dst, symlinks=True)
    return dst


class Ticks:
    """A collector on a fake root with a clock and wall time it moves by hand."""

    def __init__(self, root: Path, **kw: Any) -> None:
        self.now = 0.0
        self.c = Collector(CollectorOptions(proc_root=str(root / "proc"),
                                            sys_root=str(root / "sys"), page_size_bytes=4096,
                                            **kw),
                           clock=lambda: self.now, wall=lambda: T0 + timedelta(seconds=self.now))


def _cgroup(d: Path, cache: int) -> None:
    d.mkdir()
    (d / "memory.stat").write_text(f"cache {cache}\nrss 2\nshmem 3\n")
    (d / "memory.usage_in_bytes").write_text(f"{cache + 2}\n")
    (d / "memory.kmem.usage_in_bytes").write_text("1\n")


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Every os.open of the process, by path, while the test runs."""
    seen: Counter[str] = Counter()
    real: Callable[..., int] = os.open

    def spy(path: Any, *a: Any, **kw: Any) -> int:
        if kw.get("dir_fd") is None:
            seen[os.fsdecode(path)] += 1
        return real(path, *a, **kw)

    monkeypatch.setattr(os, "open", spy)
    yield seen


# -- 1. non-UTF-8 names survive a restart ------------------------------------------------

def test_non_utf8_cgroups_are_the_same_cgroups_after_a_restart(tmp_path: Path,
                                                                db_url: str) -> None:
    root = _root(tmp_path, HOST)
    base = os.fsencode(str(root / MEM / "process_api"))
    for raw in (b"/caf\xe9-\xff", b"/lit\\xe9"):  # the second is a literal backslash-x
        _cgroup(Path(os.fsdecode(base + raw)), 7)
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        sink = DatabaseSink(make_session_factory(engine))
        first = Ticks(root)
        snap = first.c.collect()
        sink.write(snap)
        shown = {"/process_api/caf\\xe9-\\xff", "/process_api/lit\\xe9"}
        assert shown <= {c.path for c in first.c.live_cgroups()}
        # The daemon restarts: a new collector seeded from the database.
        again = Ticks(root)
        again.now = 60.0
        sink.seed(again.c, snap.host.hostname)
        s = again.c.collect()
        assert s.removed == () and s.new_cgroups == ()
        sink.write(s)
        with sink.sessions() as db:
            live = {p for p, r in db.execute(select(m.Cgroup.path, m.Cgroup.removed_at))
                    if r is None}
            assert shown <= live
            assert db.scalars(select(m.RemovedCgroup.path)).all() == []
    finally:
        engine.dispose()


def test_raw_name_is_fs_name_inverse() -> None:
    for raw in (b"/a/caf\xe9-\xff", b"/\xc3\xa9t\xc3\xa9", b"/plain", b"/x\\x41"):
        name = os.fsdecode(raw)
        assert _files.raw_name(_files.fs_name(name)) == name or b"\\x" in raw
    assert _files.raw_name("/lit\\xe9") == "/lit\udce9"  # ambiguous: the caller looks


# -- 2. removed and made again between two ticks --------------------------------------------

def test_a_cgroup_removed_and_made_again_is_live_with_the_old_one_removed(
        tmp_path: Path, db_url: str) -> None:
    root = _root(tmp_path, HOST)
    mem = root / MEM
    _cgroup(mem / "job", 1000)
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        sessions = make_session_factory(engine)
        t = Ticks(root)
        first = t.c.collect()
        # Between two ticks: `job` removed and made again (another cgroup, another inode;
        # made before the old one goes so the file system cannot hand the inode back).
        _cgroup(mem / "job.next", 5000)
        shutil.rmtree(mem / "job")
        os.rename(mem / "job.next", mem / "job")
        t.now = 15.0
        second = t.c.collect()
        assert [(r.path, r.last_memory_stat["cache"]) for r in second.removed] == [
            ("/job", 1000)]
        assert [(c.path, c.memory_stat["cache"]) for c in second.new_cgroups] == [
            ("/job", 5000)]
        with sessions.begin() as s:
            store.write_snapshot(s, first)
            store.write_snapshot(s, second)
        with sessions() as s:
            row = s.scalars(select(m.Cgroup).where(m.Cgroup.path == "/job")).one()
            assert row.removed_at is None and row.first_seen_at == second.taken_at
            gone = s.scalars(select(m.RemovedCgroup)).all()
            assert [(g.path, g.removed_at) for g in gone] == [("/job", second.taken_at)]
        # Nothing changes after: the same cgroup, listed again, is neither new nor removed.
        t.now = 30.0
        third = t.c.collect()
        assert third.removed == () and third.new_cgroups == ()
    finally:
        engine.dispose()


def test_a_path_listed_with_the_same_inode_is_the_same_cgroup(tmp_path: Path) -> None:
    root = _root(tmp_path, HOST)
    t = Ticks(root)
    t.c.collect()
    (root / MEM / "process_api/memory.stat").write_text("cache 9\nrss 9\n")  # figures move
    t.now = 15.0
    s = t.c.collect()
    assert s.removed == () and s.new_cgroups == ()


# -- 3. each file once a tick ----------------------------------------------------------

def test_kmem_slabinfo_of_a_new_cgroup_is_read_once_on_a_series_tick(
        tmp_path: Path, opens: Counter[str]) -> None:
    root = _root(tmp_path, ERAS / "pre-5.3-v1-memcg-sysfs")
    mem = root / MEM
    t = Ticks(root)
    t.c.collect()
    new = mem / "system.slice/fresh.service"
    _cgroup(new, 10)
    (new / "memory.kmem.slabinfo").write_text(
        (mem / "system.slice/cron.service/memory.kmem.slabinfo").read_text())
    opens.clear()
    t.now = 400.0  # past the series interval (300 s): the walk, the tables and slabinfo
    s = t.c.collect()
    assert [c.path for c in s.new_cgroups] == ["/system.slice/fresh.service"]
    assert [(r.name, r.num_objs) for r in s.new_cgroups[0].kmem_slabinfo or ()] == [
        ("dentry", 840), ("kmalloc-64", 128)]
    assert "/system.slice/fresh.service" in {k.path for k in s.kmem_slabinfo}
    slab = {p: n for p, n in opens.items() if p.endswith("/memory.kmem.slabinfo")}
    assert slab and set(slab.values()) == {1}, slab
    cgfiles = {p: n for p, n in opens.items() if "/sys/fs/cgroup/" in p}
    assert set(cgfiles.values()) == {1}, {p: n for p, n in cgfiles.items() if n > 1}


@pytest.mark.parametrize("walk", [True, False])
def test_the_cgroup2_root_cgroup_stat_is_read_once_a_tick(
        tmp_path: Path, opens: Counter[str], walk: bool) -> None:
    root = _root(tmp_path, ERAS / "v2-5.15-dying")
    t = Ticks(root)
    first = t.c.collect()  # the first tick walks
    if not walk:
        opens.clear()
        t.now = 15.0  # no walk due
        s = t.c.collect()
    else:
        s = first
    path = str(root / "sys/fs/cgroup/cgroup.stat")
    assert opens[path] == 1
    want = int(dict(line.split() for line in Path(path).read_text().splitlines())[
        "nr_dying_descendants"])
    assert s.memcg.dying == want and s.memcg.method.startswith("v2")


# -- 4. one bounded read for every kernel file ---------------------------------------------

def test_every_file_the_collector_opens_goes_through_one_read(
        tmp_path: Path, opens: Counter[str], monkeypatch: pytest.MonkeyPatch) -> None:
    read: Counter[str] = Counter()
    real = _files.read_bytes

    def spy(path: str, *a: Any, **kw: Any) -> bytes:
        read[path] += 1
        return real(path, *a, **kw)

    monkeypatch.setattr(_files, "read_bytes", spy)
    root = _root(tmp_path, HOST)
    Ticks(root).c.collect()
    files = {p for p in opens if os.path.isfile(p)}
    assert any(p.endswith("/memory.stat") for p in files)
    assert files - set(read) == set()
