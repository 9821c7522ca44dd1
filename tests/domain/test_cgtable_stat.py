"""pack_stat/unpack_stat: every key in order, exact u64 values, version 1 still read."""

from __future__ import annotations

import contextlib
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain import cgtable as ct

V2 = {"anon": 1 << 20, "file": 8 << 20, "kernel_stack": 16384, "percpu": 2312, "sock": 0,
      "shmem": 0, "pgfault": 123456, "workingset_refault_file": 0}


def test_a_cgroup2_stat_round_trips_small_and_in_order() -> None:
    blob = ct.pack_stat(V2)
    got = ct.unpack_stat(blob)
    assert got == V2 and list(got) == list(V2)
    assert len(blob) < 30 < len(json.dumps(V2)) // 4


def test_unknown_keys_extremes_and_odd_order() -> None:
    stat = {"hierarchical_memory_limit": ct.U64_MAX, "zz_new_in_7_1": 5, "cache": 4096,
            "rss": 4097, "anon": 0, "clé": 1, "total_cache": 3 * 4096}
    got = ct.unpack_stat(ct.pack_stat(stat))
    assert got == stat and list(got) == list(stat)
    assert ct.unpack_stat(ct.pack_stat({})) == {}


def test_version_1_blobs_are_still_read() -> None:
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, ct._ZDICT)
    v1 = b"\x01" + c.compress(json.dumps(V2, separators=(",", ":")).encode()) + c.flush()
    assert ct.unpack_stat(v1) == V2


@pytest.mark.parametrize("value", [1.5, True, "12"])
def test_values_that_are_not_integers_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="is not an integer"):
        ct.pack_stat({"anon": value})  # type: ignore[dict-item]


@pytest.mark.parametrize("value", [-1, -(1 << 70), 1 << 64, (1 << 64) + 5])
def test_integers_outside_u64_are_kept_exactly(value: int) -> None:
    # What drifting per-CPU counters print: kept as printed (a version 1 blob), never lost.
    stat = {"file": 8192, "anon": value, "unknown_key": 7}
    blob = ct.pack_stat(stat)
    assert blob[:1] == b"\x01" and ct.unpack_stat(blob) == stat


@given(st.dictionaries(st.one_of(st.sampled_from(ct._STAT_KEYS), st.text(max_size=12)),
                       st.integers(0, ct.U64_MAX) | st.integers(0, 1 << 30).map(lambda n: n * 4096),
                       max_size=40))
def test_any_stat_round_trips(stat: dict[str, int]) -> None:
    got = ct.unpack_stat(ct.pack_stat(stat))
    assert got == stat and list(got) == list(stat)


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


@given(st.binary(max_size=64))
def test_garbage_is_a_codec_error_never_a_crash(data: bytes) -> None:
    for blob in (b"\x02" + data, b"\x02" + _deflate(data), data):
        with contextlib.suppress(ct.CodecError):
            ct.unpack_stat(blob)
