"""Rolling samples up into buckets: the one aggregation behind downsampling and query steps.

A bucket keeps min, max, sum and count of the samples inside it, so a mean (``sum / count``)
and the extremes survive any number of roll-ups: a 1 h point made of sixty 1 min points has
the same sum, count, min and max as one made of the raw samples. Both the history store's
downsampling tiers and its range queries (``step``) use :func:`rollup`.

Query results come back as :class:`RangePoints`, a sequence that keeps its columns as
arrays and builds a :class:`~paca_otel.analysis.source.RangePoint` only when one is read:
60k frozen dataclasses cost ~70 ms to build, the whole query budget (50 ms) and more, while
analyzers mostly want the columns anyway (``points.values``, ``points.timestamps``).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import overload

from paca_otel.analysis.source import RangePoint

__all__ = ["Columns", "RangePoints", "merge", "rollup"]

#: ``(timestamps_ms, mins, maxs, sums, counts)``: samples or buckets, oldest first.
Columns = tuple[list[int], list[float], list[float], list[float], list[float]]


def rollup(columns: Columns, width: int, origin: int = 0) -> Columns:
    """Aggregate ``columns`` into buckets ``[origin + k * width, origin + (k + 1) * width)``.

    Each bucket is stamped with its start; empty buckets are left out (gaps stay gaps).
    The result may share lists with ``columns`` (neither is changed afterwards).

    Args:
        columns: Timestamps (ms, increasing) with min, max, sum and count per row; raw
            samples are rows whose min, max and sum are the value and whose count is 1.
        width: Bucket width in milliseconds (> 0).
        origin: A bucket boundary, in milliseconds.
    """
    stamps, mins, maxs, sums, counts = columns
    keys = [t - (t - origin) % width for t in stamps]
    if len(stamps) < 2 or min(map(operator.sub, stamps[1:], stamps)) >= width:
        return keys, mins, maxs, sums, counts  # one row per bucket: only the stamps change
    out_t: list[int] = []
    out_min: list[float] = []
    out_max: list[float] = []
    out_sum: list[float] = []
    out_count: list[float] = []
    current = None
    for key, low, high, total, count in zip(keys, mins, maxs, sums, counts, strict=True):
        if key != current:
            current = key
            out_t.append(key)
            out_min.append(low)
            out_max.append(high)
            out_sum.append(total)
            out_count.append(count)
            continue
        # NaN in a bucket stays visible: min/max through "<" would skip it silently
        if low < out_min[-1] or low != low:  # noqa: PLR0124  # the NaN test
            out_min[-1] = low
        if high > out_max[-1] or high != high:  # noqa: PLR0124  # the NaN test
            out_max[-1] = high
        out_sum[-1] += total
        out_count[-1] += count
    return out_t, out_min, out_max, out_sum, out_count


def merge(parts: Sequence[Columns]) -> Columns:
    """Concatenate column sets that are each sorted and do not overlap, in order."""
    if not parts:
        return ([], [], [], [], [])
    if len(parts) == 1:
        return parts[0]
    merged: Columns = ([], [], [], [], [])
    for part in parts:
        for target, source in zip(merged, part, strict=True):
            target.extend(source)  # type: ignore[attr-defined]  # each column is a list
    return merged


class RangePoints(Sequence[RangePoint]):
    """A query's points as columns; indexing builds :class:`RangePoint` on demand.

    Attributes:
        timestamps: Bucket starts, seconds since the epoch.
        values: Means (``sum / count``).
        mins, maxs, sums: Extremes and totals of each bucket.
        counts: Samples in each bucket (raw samples count 1).
    """

    __slots__ = ("counts", "maxs", "mins", "sums", "timestamps", "values")

    def __init__(self, columns: Columns) -> None:
        stamps, mins, maxs, sums, counts = columns
        self.timestamps: list[float] = list(map(operator.truediv, stamps, repeat(1000)))
        self.mins = mins
        self.maxs = maxs
        self.sums = sums
        if counts.count(1.0) == len(counts):  # raw samples: the mean is the value
            self.counts: list[int] = [1] * len(counts)
            self.values = sums
        else:
            self.counts = list(map(int, counts))
            self.values = list(map(operator.truediv, sums, counts))

    def __len__(self) -> int:
        return len(self.timestamps)

    @overload
    def __getitem__(self, index: int) -> RangePoint: ...

    @overload
    def __getitem__(self, index: slice) -> list[RangePoint]: ...

    def __getitem__(self, index: int | slice) -> RangePoint | list[RangePoint]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return RangePoint(
            self.timestamps[index],
            self.values[index],
            self.mins[index],
            self.maxs[index],
            self.sums[index],
            self.counts[index],
        )

    def __iter__(self) -> Iterator[RangePoint]:
        return map(
            RangePoint,
            self.timestamps,
            self.values,
            self.mins,
            self.maxs,
            self.sums,
            self.counts,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable columns: not hashable, like a list

    def __repr__(self) -> str:
        return f"RangePoints({len(self)} points)"
