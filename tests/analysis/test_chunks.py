"""The chunk codec: bit-exact round trips, both value modes, compression, clear errors."""

from __future__ import annotations

import contextlib
import math
import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paca_otel.analysis._chunks import TS_LIMIT, ChunkError, decode_chunk, encode_chunk

BASE = 1_700_000_000_000


def _bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", value) for value in values]


def _roundtrip(timestamps: list[int], columns: list[list[float]]) -> bytes:
    data = encode_chunk(timestamps, columns)
    got_times, got_columns = decode_chunk(data)
    assert got_times == timestamps
    assert [_bits(column) for column in got_columns] == [_bits(column) for column in columns]
    return data


any_float = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64)
# NaN with arbitrary payloads and signs: only their bits can tell them apart
nan_bits = st.integers(0, (1 << 52) - 1).map(
    lambda m: struct.unpack("<d", struct.pack("<Q", 0x7FF0_0000_0000_0000 | m | 1))[0]
)
decimal_float = st.tuples(st.integers(-(10**12), 10**12), st.integers(0, 9)).map(
    lambda pair: pair[0] / 10 ** pair[1]
)


@st.composite
def _series(draw: st.DrawFn, values: st.SearchStrategy[float]) -> tuple[list[int], list[float]]:
    count = draw(st.integers(1, 130))
    start = draw(st.integers(-(1 << 50), 1 << 50))
    gaps = draw(
        st.lists(
            st.one_of(st.just(10_000), st.integers(1, 10_000), st.integers(1, 1 << 40)),
            min_size=count - 1,
            max_size=count - 1,
        )
    )
    times = [start]
    for gap in gaps:
        times.append(times[-1] + gap)
    return times, draw(st.lists(values, min_size=count, max_size=count))


@settings(max_examples=60, deadline=None)
@given(_series(st.one_of(any_float, nan_bits, st.just(-0.0))))
def test_any_float_and_timestamps_round_trip_bit_exact(
    sample: tuple[list[int], list[float]],
) -> None:
    """Random floats (NaN payloads, inf, -0.0, subnormals), irregular times and gaps: exact."""
    times, values = sample
    _roundtrip(times, [values])


@settings(max_examples=60, deadline=None)
@given(_series(decimal_float))
def test_decimal_values_round_trip_bit_exact(sample: tuple[list[int], list[float]]) -> None:
    """Values that are k / 10**e (the decimal mode) come back with the same bits."""
    times, values = sample
    _roundtrip(times, [values])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60).flatmap(lambda n: st.lists(any_float, min_size=n * 4, max_size=n * 4)))
def test_several_columns_round_trip(values: list[float]) -> None:
    """Downsampled chunks (min, max, sum, count columns) round-trip column by column."""
    count = len(values) // 4
    columns = [values[i * count : (i + 1) * count] for i in range(4)]
    _roundtrip([BASE + 60_000 * i for i in range(count)], columns)


def test_negative_zero_and_nan_beside_decimals_round_trip() -> None:
    """-0.0 or NaN among two-decimal values falls back to XOR and still round-trips."""
    times = [BASE + 10_000 * i for i in range(6)]
    _roundtrip(times, [[0.25, -0.0, 0.5, 0.75, 0.0, 1.0]])
    _roundtrip(times, [[0.25, math.nan, 0.5, math.inf, -math.inf, 1.0]])


def test_extreme_decimals_and_big_integers_round_trip() -> None:
    """Values at the decimal mode's limits (huge integers, 9 decimals) round-trip."""
    times = [BASE + i for i in range(5)]
    _roundtrip(times, [[2.0**61 - 1, -(2.0**61), 0.0, 1e18, -1e18]])
    _roundtrip(times, [[1e-9, 123456789e-9, 5e-324, 2.0**-1074, 1.7976931348623157e308]])


def test_steady_gauges_compress_below_two_bytes_per_sample() -> None:
    """A 10 s two-decimal CPU share, a page-granular byte count and a constant: < 2 B/sample."""
    rng = random.Random(7)
    times = [BASE + 10_000 * i for i in range(240)]
    cpu = [round(min(1.0, max(0.0, 0.3 + rng.gauss(0, 0.05))), 2) for _ in times]
    memory = [float(4_000_000_000 + 4096 * rng.randint(-300, 300)) for _ in times]
    constant = [16e9] * len(times)
    sizes = {
        name: len(_roundtrip(times, [values])) / len(times)
        for name, values in (("cpu", cpu), ("memory", memory), ("constant", constant))
    }
    print(f"bytes/sample: {sizes}")  # the measurement, visible with -s
    assert all(size < 2.0 for size in sizes.values()), sizes


def test_encode_rejects_bad_input_with_clear_errors() -> None:
    """Empty, unordered, duplicate, mismatched and out-of-range input each name the problem."""
    with pytest.raises(ChunkError, match=r"1\.\.65536 samples"):
        encode_chunk([], [[]])
    with pytest.raises(ChunkError, match="strictly increasing"):
        encode_chunk([2, 1], [[1.0, 2.0]])
    with pytest.raises(ChunkError, match="strictly increasing"):
        encode_chunk([1, 1], [[1.0, 2.0]])
    with pytest.raises(ChunkError, match="must have 2 values"):
        encode_chunk([1, 2], [[1.0]])
    with pytest.raises(ChunkError, match="must have 1 values"):
        encode_chunk([1], [])
    with pytest.raises(ChunkError, match=r"1\.\.65536 samples"):
        encode_chunk(list(range(70_000)), [[0.0] * 70_000])
    with pytest.raises(ChunkError, match="milliseconds within"):
        encode_chunk([TS_LIMIT + 1], [[1.0]])
    assert isinstance(ChunkError("x"), ValueError)


def test_decode_rejects_garbage_with_clear_errors() -> None:
    """Not a chunk, a newer version, truncated or corrupt bytes: ChunkError, never a crash."""
    good = encode_chunk([BASE, BASE + 10_000], [[1.5, 2.5]])
    with pytest.raises(ChunkError, match="unknown version"):
        decode_chunk(b"")
    with pytest.raises(ChunkError, match="unknown version"):
        decode_chunk(b"\x02" + good[1:])
    with pytest.raises(ChunkError):
        decode_chunk(good[:-3])
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    bogus = b"\x01" + packer.compress(b"\x05\x01\x00\x09") + packer.flush()
    with pytest.raises(ChunkError, match="corrupt"):
        decode_chunk(bogus)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decode_of_random_bytes_raises_chunk_error_only(data: bytes) -> None:
    """Any byte string decodes or raises ChunkError (no IndexError, no MemoryError)."""
    with contextlib.suppress(ChunkError):
        decode_chunk(b"\x01" + data)
