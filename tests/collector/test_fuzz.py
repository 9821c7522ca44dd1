"""Every parser, fed arbitrary text, returns records or raises ParseError: never anything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.collector.errors import ParseError
from app.collector.sources._files import parse_flat_keyed
from app.collector.sources.host import parse_cpu_list
from app.collector.sources.procfs import parse_meminfo, parse_proc_cgroups
from app.collector.sources.slabinfo import parse_slabinfo
from app.collector.sources.slub import parse_memcg_slabinfo, parse_node_count
from tests.conftest import HOST

PARSERS: list[Callable[[str, str], Any]] = [
    parse_slabinfo, parse_proc_cgroups, parse_meminfo, parse_flat_keyed, parse_node_count,
    parse_memcg_slabinfo, parse_cpu_list,
]
REAL = (HOST / "proc/slabinfo").read_text()

# Text near the real formats: kernel-ish tokens, numbers, separators, and noise.
tokens = st.sampled_from(["slabinfo - version: 2.1", "# name", "dentry", " : tunables ",
                          " : slabdata ", "N0=", "12", "-3", "x", ":dead", "root", "kB",
                          "MemTotal:", "\t", " ", "\n", "0-3", ",", "9" * 30, "\x00", "é"])
near_format = st.lists(tokens, max_size=60).map("".join)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=400), near_format))
def test_parsers_never_crash(parser: Callable[[str, str], Any], text: str) -> None:
    try:
        parser("/fuzz", text)
    except ParseError as err:
        assert err.path == "/fuzz"
        assert err.line >= 0


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(REAL)), junk=st.text(max_size=20))
def test_truncated_or_corrupted_real_slabinfo(cut: int, junk: str) -> None:
    text = REAL[:cut] + junk + REAL[cut:]
    try:
        rows = parse_slabinfo("/proc/slabinfo", text)
    except ParseError as err:
        assert 1 <= err.line <= text.count("\n") + 1
    else:
        # Whatever parses is what the text says: each row is one of its lines, to the number
        # (a name may hold spaces: the 15 tokens from `<active_objs>` on are the numbers).
        lines = {(" ".join(t[:-15]), t[-15], t[-14], t[-1]) for t in
                 (line.split() for line in text.split("\n")) if len(t) > 15}

        def same(token: str, value: int) -> bool:
            try:
                return int(token) == value  # "00" and "-0" are 0, as the parser reads them
            except ValueError:
                return False

        for r in rows:
            name = " ".join(r.name.split())
            assert any(n == name and same(a, r.active_objs) and same(o, r.num_objs)
                       and same(z, r.sharedavail) for n, a, o, z in lines), r


# -- the fast paths agree with the line-by-line paths ---------------------------------------
names = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                       exclude_characters=":#"), min_size=1, max_size=24)
nums = st.integers(min_value=0, max_value=2**40)


def _row(name: str, v: list[int]) -> str:
    return ("%-17s %6d %6d %6d %4d %4d : tunables %4d %4d %4d : slabdata %6d %6d %6d"  # noqa: UP031
            % (name, *v))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(names, st.lists(nums, min_size=11, max_size=11)), max_size=40),
       zeros=st.booleans())
def test_column_fast_path_equals_line_path(rows: list[tuple[str, list[int]]],
                                           zeros: bool) -> None:
    from app.collector.sources import slabinfo as mod
    if zeros:  # the SLUB shape the shortcuts are for: zero tunables, active == total slabs
        rows = [(n, [*v[:5], 0, 0, 0, v[8], v[8], 0]) for n, v in rows]
    text = "slabinfo - version: 2.1\n# name ...\n" + "".join(_row(n, v) + "\n" for n, v in rows)
    fast = mod._parse_columns(text)
    assert fast is not None
    slow = [mod._parse_row("p", i, _row(n, v)) for i, (n, v) in enumerate(rows, 3)]
    assert fast == slow
    assert [list(r[1:12]) for r in fast] == [v for _, v in rows]


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=200), near_format))
def test_flat_keyed_fast_path_never_accepts_what_the_slow_path_rejects(text: str) -> None:
    from app.collector.sources import _files
    slow_ok = True
    out: dict[str, int] = {}
    try:
        for lineno, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ParseError("p", lineno, "shape")
            out[parts[0]] = _files.parse_int("p", lineno, parts[1])
    except ParseError:
        slow_ok = False
    try:
        got = parse_flat_keyed("p", text)
    except ParseError:
        assert not slow_ok
    else:
        assert slow_ok and got == out
