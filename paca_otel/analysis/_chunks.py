"""The history store's chunk encoding: compressed, bit-exact blocks of (timestamp, values).

A chunk holds up to a few hundred samples of one series: millisecond timestamps and one or
more float64 columns (one for raw samples; min, max, sum and count for downsampled tiers).
Round trips are exact: every float comes back with the same 64 bits (NaN payloads, ``inf``,
``-0.0`` included) and every timestamp with the same millisecond.

Why hand-written: no maintained pure-Python (or stdlib) time-series codec exists, numpy is
not a dependency, and a bit-level Gorilla coder in pure Python would run bytecode for every
bit field of every sample, while the query budget (60k points in 50 ms) leaves under 1 µs
per sample for everything. So the encoding is built from what runs in C in the standard
library (``array``, slicing, ``itertools.accumulate``, ``math.gcd``, ``zlib``), measured in
``benchmarks/bench_history.py``:

- **Timestamps**: first timestamp and first delta, then delta-of-deltas (zero at a steady
  cadence, which then takes no bytes at all), as in Gorilla and Prometheus' TSDB.
- **Values**, per column, one of two modes (decimal whenever it applies):

  * *decimal*: when every value is ``k / 10**e`` for integers ``k`` and one ``e`` in
    0..:data:`MAX_DECIMALS` (checked exactly, with Python's correctly rounded ``int / int``),
    store the deltas of ``k`` divided by their greatest common divisor. CPU shares with two
    decimals, byte counts in pages (gcd 4096), and counters become small integers. This is
    the idea of ALP (Afroozeh et al., SIGMOD 2024), without its per-value exceptions;
  * *xor*: otherwise, each value's IEEE-754 bits XOR the previous value's (Gorilla).

- Each integer stream is zigzag-mapped, split into byte planes (all first bytes, then all
  second bytes...; all-zero high planes are not stored), and the whole chunk is deflated
  (raw zlib, no header). Byte planes turn "small integers" and "shared exponent bits" into
  long runs deflate codes in a few bits each.

Layout (version 1): ``b"\\x01"`` then a raw-deflate stream of: varint ``n``, varint column
count, zigzag varint first timestamp, varint first delta, the delta-of-delta planes; per
column a mode byte and its parameters, then its planes.
"""

from __future__ import annotations

import math
import operator
import struct
import zlib
from array import array
from collections.abc import Sequence
from itertools import accumulate, chain, repeat

from paca_otel.errors import PacaOtelError

__all__ = [
    "MAX_COLUMNS",
    "MAX_DECIMALS",
    "MAX_SAMPLES",
    "TS_LIMIT",
    "ChunkError",
    "decode_chunk",
    "encode_chunk",
]

#: Most samples in one chunk, and most value columns.
MAX_SAMPLES = 1 << 16
MAX_COLUMNS = 16
#: Most decimal digits the decimal mode tries (``1e-9`` resolution covers typical gauges).
MAX_DECIMALS = 9
_VERSION = 1
_XOR = 0
_DECIMAL = 1
_KMAX = 1 << 61  # |k| bound: the zigzag of a delta of two k fits 64 bits
#: Timestamps (ms) must lie within +-2**53 (about 285,000 years around 1970).
TS_LIMIT = 1 << 53
_LEVEL = 6  # zlib level: 9 gains 0.1 %, 1 loses 2 % (bench_history.py series); cost is alike


class ChunkError(PacaOtelError, ValueError):
    """A chunk cannot be encoded (bad input) or decoded (not a chunk, or corrupt)."""


# -- integers ---------------------------------------------------------------------------------


def _varint(value: int, out: bytearray) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            msg = "history chunk is truncated (varint runs past the end)"
            raise ChunkError(msg)
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            msg = "history chunk is corrupt (varint longer than 10 bytes)"
            raise ChunkError(msg)


def _zigzag(value: int) -> int:
    return (value << 1) if value >= 0 else ((-value << 1) - 1)


def _unzigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def _planes(values: Sequence[int], out: bytearray) -> None:
    """Unsigned 64-bit ``values`` as byte planes: plane count, then each plane's bytes."""
    if not values:
        out.append(0)
        return
    top = max(values)
    width = (top.bit_length() + 7) // 8
    out.append(width)
    if width == 0:
        return
    raw = array("Q", values).tobytes()
    if array("Q").itemsize != 8:  # pragma: no cover  # every CPython platform has 8-byte Q
        msg = "history chunks need an 8-byte unsigned array type"
        raise ChunkError(msg)
    if struct.pack("=H", 1) != b"\x01\x00":  # pragma: no cover  # big-endian hosts
        swapped = array("Q", values)
        swapped.byteswap()
        raw = swapped.tobytes()
    for plane in range(width):
        out += raw[plane::8]


def _read_planes(data: bytes, pos: int, count: int) -> tuple[list[int] | None, int]:
    """``count`` unsigned integers from byte planes; ``None`` when all are 0 (no planes)."""
    width = data[pos] if pos < len(data) else 0xFF
    pos += 1
    if width > 8:
        msg = f"history chunk is corrupt (byte-plane width {width}, at most 8)"
        raise ChunkError(msg)
    if width == 0:
        return None, pos
    end = pos + width * count
    if end > len(data):
        msg = "history chunk is truncated (byte planes run past the end)"
        raise ChunkError(msg)
    raw = bytearray(8 * count)
    for plane in range(width):
        raw[plane::8] = data[pos + plane * count : pos + (plane + 1) * count]
    words = array("Q")
    words.frombytes(raw)
    if struct.pack("=H", 1) != b"\x01\x00":  # pragma: no cover  # big-endian hosts
        words.byteswap()
    return words.tolist(), end


# -- floats -----------------------------------------------------------------------------------


def _bits(values: Sequence[float]) -> list[int]:
    words = array("Q")
    words.frombytes(array("d", values).tobytes())
    return words.tolist()


def _floats(bits: Sequence[int]) -> list[float]:
    doubles = array("d")
    doubles.frombytes(array("Q", bits).tobytes())
    return doubles.tolist()


def _decimal_ints(values: Sequence[float]) -> tuple[int, list[int]] | None:
    """``(e, ks)`` with ``ks[i] / 10**e`` bit-identical to ``values[i]``, or None."""
    if any(v == 0.0 and math.copysign(1.0, v) < 0 for v in values):
        return None  # -0.0 is not k / 10**e
    head = values[:8]
    for e in range(MAX_DECIMALS + 1):
        scale = 10**e
        try:
            # a cheap look at the first values rules most exponents out
            if list(map(operator.truediv, [round(v * scale) for v in head], repeat(scale))) != list(
                head
            ):
                continue
            ks = [round(v * scale) for v in values]
        except (OverflowError, ValueError):  # inf, NaN
            return None
        if any(not -_KMAX < k < _KMAX for k in ks):
            return None
        # correctly rounded int/int division: exactly what decoding computes
        if list(map(operator.truediv, ks, repeat(scale))) == list(values):
            return e, ks
    return None


def _encode_column(values: Sequence[float], out: bytearray) -> None:
    found = _decimal_ints(values)
    if found is None:
        bits = _bits(values)
        out.append(_XOR)
        _planes(list(map(operator.xor, bits, chain((0,), bits))), out)
        return
    e, ks = found
    deltas = list(map(operator.sub, ks[1:], ks))
    divisor = math.gcd(*deltas) if deltas else 0
    out.append(_DECIMAL)
    out.append(e)
    _varint(_zigzag(ks[0]), out)
    _varint(divisor, out)
    if divisor > 1:
        deltas = [d // divisor for d in deltas]
    _planes([(d << 1) if d >= 0 else ((-d << 1) - 1) for d in deltas], out)


def _decode_column(body: bytes, pos: int, count: int) -> tuple[list[float], int]:
    if pos >= len(body):
        msg = "history chunk is truncated (column header missing)"
        raise ChunkError(msg)
    mode = body[pos]
    pos += 1
    if mode == _XOR:
        xored, pos = _read_planes(body, pos, count)
        if xored is None:
            return [0.0] * count, pos
        return _floats(list(accumulate(xored, operator.xor))), pos
    if mode != _DECIMAL or pos >= len(body) or body[pos] > MAX_DECIMALS:
        msg = f"history chunk is corrupt (unknown column mode {mode})"
        raise ChunkError(msg)
    scale = 10 ** body[pos]
    first, pos = _read_varint(body, pos + 1)
    divisor, pos = _read_varint(body, pos)
    zigzags, pos = _read_planes(body, pos, count - 1)
    start = _unzigzag(first)
    if zigzags is None:  # constant
        return [start / scale] * count, pos
    deltas = [(z >> 1) ^ -(z & 1) for z in zigzags]
    if divisor > 1:
        deltas = list(map(operator.mul, deltas, repeat(divisor)))
    ks = accumulate(deltas, initial=start)
    return list(map(operator.truediv, ks, repeat(scale))), pos


# -- chunks -----------------------------------------------------------------------------------


def encode_chunk(timestamps: Sequence[int], columns: Sequence[Sequence[float]]) -> bytes:
    """Compress samples into one chunk.

    Args:
        timestamps: Milliseconds since the epoch, strictly increasing.
        columns: One or more float sequences, each as long as ``timestamps``.

    Raises:
        ChunkError: empty, unordered or mismatched input.
    """
    count = len(timestamps)
    if not 0 < count <= MAX_SAMPLES:
        msg = f"a history chunk needs 1..{MAX_SAMPLES} samples, got {count}"
        raise ChunkError(msg)
    if not 0 < len(columns) <= MAX_COLUMNS or any(len(column) != count for column in columns):
        msg = f"every history chunk column must have {count} values (one per timestamp)"
        raise ChunkError(msg)
    if not -TS_LIMIT <= min(timestamps) <= max(timestamps) <= TS_LIMIT:
        msg = f"history chunk timestamps must be integers of milliseconds within +-{TS_LIMIT}"
        raise ChunkError(msg)
    deltas = list(map(operator.sub, timestamps[1:], timestamps))
    if deltas and min(deltas) <= 0:
        msg = "history chunk timestamps must be strictly increasing"
        raise ChunkError(msg)
    body = bytearray()
    _varint(count, body)
    _varint(len(columns), body)
    _varint(_zigzag(int(timestamps[0])), body)
    _varint(deltas[0] if deltas else 0, body)
    dods = list(map(operator.sub, deltas[1:], deltas))
    _planes([(d << 1) if d >= 0 else ((-d << 1) - 1) for d in dods], body)
    for column in columns:
        _encode_column(column, body)
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
    return bytes((_VERSION,)) + packer.compress(bytes(body)) + packer.flush()


def decode_chunk(data: bytes) -> tuple[list[int], list[list[float]]]:
    """Inverse of :func:`encode_chunk`: ``(timestamps_ms, columns)``.

    Raises:
        ChunkError: the bytes are not a version-1 chunk, or are truncated or corrupt.
    """
    if not data or data[0] != _VERSION:
        msg = "not a history chunk (unknown version byte); the file may be from a newer paca-otel"
        raise ChunkError(msg)
    try:
        unpacker = zlib.decompressobj(-15)
        body = unpacker.decompress(data[1:]) + unpacker.flush()
    except zlib.error as exc:
        msg = f"history chunk is corrupt ({exc})"
        raise ChunkError(msg) from None
    count, pos = _read_varint(body, 0)
    ncols, pos = _read_varint(body, pos)
    first, pos = _read_varint(body, pos)
    if not (0 < count <= MAX_SAMPLES and 0 < ncols <= MAX_COLUMNS):
        msg = f"history chunk is corrupt ({count} samples, {ncols} columns)"
        raise ChunkError(msg)
    step, pos = _read_varint(body, pos)
    dods, pos = _read_planes(body, pos, max(0, count - 2))
    start = _unzigzag(first)
    if dods is None:  # a steady cadence: every delta-of-delta is 0
        timestamps = list(range(start, start + step * count, step)) if step else [start]
    else:
        deltas = accumulate([(z >> 1) ^ -(z & 1) for z in dods], initial=step)
        timestamps = list(accumulate(deltas, initial=start))
    columns = []
    for _ in range(ncols):
        column, pos = _decode_column(body, pos, count)
        columns.append(column)
    if pos != len(body):
        msg = "history chunk is corrupt (trailing bytes)"
        raise ChunkError(msg)
    return timestamps, columns
