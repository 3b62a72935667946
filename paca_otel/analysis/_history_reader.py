"""Reading one series back: its chunks in the file, the writer's queue and the open buffer.

:class:`~paca_otel.analysis.history.HistoryStore` copies what a reader needs of a series
under its lock (a :class:`SeriesSnapshot`) and then reads without it, so appends never wait
behind a query's decoding. Chunks are keyed by their first timestamp, and those with the same
first timestamp are copies of one buffer at different times (a chunk being written is both in
the file and in the queue; a shared recorder's published copies of its open buffer are in
the file, the queue and the buffer itself): the longest copy wins, so no sample is read twice
and none is missed.
A tier's points cover what it has rolled up (``progress``); the rest of a range comes from
the next finer tier, down to the raw samples, so a query never misses recent data.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from paca_otel.analysis._chunks import decode_chunk
from paca_otel.analysis._history_table import ChunkTable
from paca_otel.analysis._rollup import Columns, merge
from paca_otel.analysis._tiers import Tier

__all__ = ["SampleBlock", "SeriesSnapshot", "fetch"]


class SampleBlock:
    """Raw samples of one series in time order; a sealed block's lists never change again."""

    __slots__ = ("times", "values")

    def __init__(self, times: array[int], values: array[float]) -> None:
        self.times = times
        self.values = values


@dataclass(frozen=True, slots=True)
class SeriesSnapshot:
    """What a reader needs of one series, copied under the store's lock."""

    key: str
    pending: tuple[SampleBlock, ...]
    buffer: SampleBlock
    progress: dict[int, int]


def fetch(
    table: ChunkTable,
    tiers: Sequence[Tier],
    snap: SeriesSnapshot,
    *,
    tier: int,
    start_ms: int,
    end_ms: int,
) -> Columns:
    """One series' columns in ``[start_ms, end_ms]`` from ``tier``, and from the finer tiers
    for the part ``tier`` has not rolled up yet."""
    if tier == 0:
        return _fetch_raw(table, snap, start_ms, end_ms)
    width = tiers[tier].resolution_ms
    until = snap.progress.get(width)
    if until is None:
        return fetch(table, tiers, snap, tier=tier - 1, start_ms=start_ms, end_ms=end_ms)
    parts: list[Columns] = []
    if start_ms < until:
        last = min(end_ms, until - 1)
        stamps: list[int] = []
        mins: list[float] = []
        maxs: list[float] = []
        sums: list[float] = []
        counts: list[float] = []
        for data in table.read(snap.key, width, start_ms, last):
            chunk_times, (low, high, total, count) = decode_chunk(data)
            stamps += chunk_times
            mins += low
            maxs += high
            sums += total
            counts += count
        parts.append(_clip((stamps, mins, maxs, sums, counts), start_ms, last))
    if end_ms >= until:
        rest = max(start_ms, until)
        parts.append(fetch(table, tiers, snap, tier=tier - 1, start_ms=rest, end_ms=end_ms))
    return merge(parts)


def _fetch_raw(table: ChunkTable, snap: SeriesSnapshot, start_ms: int, end_ms: int) -> Columns:
    blocks: dict[int, tuple[Sequence[int], Sequence[float]]] = {}
    for data in table.read(snap.key, 0, start_ms, end_ms):
        chunk_times, (chunk_values,) = decode_chunk(data)
        blocks[chunk_times[0]] = (chunk_times, chunk_values)
    for chunk in (*snap.pending, snap.buffer):  # copies of one buffer: the longest wins
        if chunk.times and chunk.times[0] <= end_ms and chunk.times[-1] >= start_ms:
            known = blocks.get(chunk.times[0])
            if known is None or len(known[0]) < len(chunk.times):
                blocks[chunk.times[0]] = (chunk.times, chunk.values)
    stamps: list[int] = []
    values: list[float] = []
    for first in sorted(blocks):
        block_times, block_values = blocks[first]
        stamps += block_times
        values += block_values
    return _clip((stamps, values, values, values, [1.0] * len(values)), start_ms, end_ms)


def _clip(columns: Columns, start_ms: int, end_ms: int) -> Columns:
    stamps = columns[0]
    low = bisect.bisect_left(stamps, start_ms)
    high = bisect.bisect_right(stamps, end_ms)
    if low == 0 and high == len(stamps):
        return columns
    a, b, c, d, e = columns
    return a[low:high], b[low:high], c[low:high], d[low:high], e[low:high]
