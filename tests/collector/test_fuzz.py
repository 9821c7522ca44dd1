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
        assert all(r.num_objs >= 0 or r.name for r in rows)
