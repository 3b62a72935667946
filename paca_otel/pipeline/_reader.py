"""The writer that copies the one collection's current values into the series store.

It reads the same :class:`~paca_otel.pipeline._collection.Collection` as the exporters, so
alert rules see exactly the numbers users export. Counters stay cumulative
(so ``rate``/``increase`` work as in PromQL); histograms become ``<name>.count``,
``<name>.sum`` and quantile estimates ``<name>.p50/.p95/.p99`` computed from the buckets that
filled up *since the previous collection*, which is what a latency alert needs (a lifetime
quantile would barely move during an incident).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence

from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram as ExpHistogramData,
)
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint,
    Gauge,
    HistogramDataPoint,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.metrics.export import (
    Histogram as HistogramData,
)

from paca_otel._internal import handle_internal_errors
from paca_otel.pipeline._store import Labels, SeriesStore, labels_of

logger = logging.getLogger("paca_otel.pipeline")

QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
"""The quantiles written for every histogram, as (name suffix, q)."""


def bucket_quantile(
    q: float,
    bounds: Sequence[float],
    counts: Sequence[float],
    *,
    low: float | None = None,
    high: float | None = None,
) -> float | None:
    """Estimate the ``q`` quantile from explicit-bucket counts, like ``histogram_quantile``.

    Interpolates linearly inside the bucket holding the rank, as Prometheus does, but uses
    the recorded ``low``/``high`` (OTel's min/max) instead of 0 and the last finite bound
    for the open-ended first and last buckets, and clamps the answer into that range.

    Args:
        q: The quantile, 0..1.
        bounds: Upper bounds of all buckets but the last (``len(counts) - 1`` of them).
        counts: Observations per bucket (not cumulative).
        low: Smallest observation, if known.
        high: Largest observation, if known.

    Returns:
        The estimate, or ``None`` when there are no observations.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    cumulative = 0.0
    index = len(counts) - 1
    for i, count in enumerate(counts):
        if count and cumulative + count >= rank:
            index = i
            break
        cumulative += count
    count = counts[index]
    if index == 0:
        first_bound = bounds[0] if bounds else 0.0
        lower = low if low is not None and math.isfinite(low) else min(0.0, first_bound)
    else:
        lower = bounds[index - 1]
    if index < len(bounds):
        upper = bounds[index]
    elif high is not None and math.isfinite(high):
        upper = high
    else:
        return bounds[-1] if bounds else lower  # the +Inf bucket without a max: as Prometheus
    if high is not None and math.isfinite(high):
        upper = min(upper, high)
    if low is not None and math.isfinite(low):
        lower = max(lower, low)
    upper = max(upper, lower)
    fraction = (rank - cumulative) / count if count else 1.0
    return lower + (upper - lower) * min(max(fraction, 0.0), 1.0)


def _exponential_buckets(
    scale: int, low_count: float, offset: int, positive: Sequence[float]
) -> tuple[list[float], list[float]]:
    """Express exponential buckets as explicit ones (negatives and zeros in the first)."""
    base = 2.0 ** (2.0**-scale)
    bounds = [0.0] + [base ** (offset + k) for k in range(len(positive) + 1)]
    counts = [float(low_count), 0.0, *map(float, positive), 0.0]
    return bounds, counts


_ExpState = tuple[int, float, int, tuple[float, ...]]
"""An exponential histogram's buckets: (scale, negatives + zeros, offset, positive counts)."""


def _exponential_delta(previous: _ExpState, current: _ExpState) -> _ExpState | None:
    """``current - previous`` at ``current``'s scale, or ``None`` if it was reset.

    The SDK grows the bucket array (a new smallest or largest value moves ``offset`` and the
    length) and lowers the scale when the range no longer fits, so the two collections'
    arrays are aligned by bucket index first: downscaling maps index ``i`` to
    ``i >> (old scale - new scale)``, exactly as the SDK merges buckets.
    """
    old_scale, old_low, old_offset, old_counts = previous
    scale, low, offset, counts = current
    if scale > old_scale or low < old_low:
        return None
    shift = old_scale - scale
    mapped: dict[int, float] = {}
    for k, count in enumerate(old_counts):
        if count:
            index = (old_offset + k) >> shift
            mapped[index] = mapped.get(index, 0.0) + count
    delta: list[float] = []
    for k, count in enumerate(counts):
        diff = count - mapped.pop(offset + k, 0.0)
        if diff < 0:
            return None
        delta.append(diff)
    if mapped:  # a bucket that had counts is gone: not the same cumulative series
        return None
    return scale, low - old_low, offset, tuple(delta)


class StoreWriter:
    """Writes each collection of the one reader into a :class:`SeriesStore`.

    The pipeline hands it the :class:`~paca_otel.pipeline._collection.Collection`'s data once
    per evaluation interval (not on every scrape: histogram quantiles are computed from the
    buckets that filled since the writer's previous write, so an irregular cadence would make
    them noisy). Points are stamped with the pipeline's ``now`` (not the SDK's wall-clock
    timestamps) so that a fake clock drives the whole alerting path in tests. Resource
    attributes are not copied into labels: they are the same for every series of the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (series name, labels) -> (start time, bounds, bucket counts) at the previous
        # write; the same with the bucket state for exponential histograms.
        self._previous: dict[
            tuple[str, Labels], tuple[int, tuple[float, ...], tuple[float, ...]]
        ] = {}
        self._previous_exp: dict[tuple[str, Labels], tuple[int, _ExpState]] = {}

    def write(self, data: MetricsData | None, store: SeriesStore, now: float) -> int:
        """Write every data point of ``data`` into ``store`` at time ``now``.

        Returns:
            How many points were written (0 without data or when writing failed).
        """
        if data is None:
            return 0
        with self._lock, handle_internal_errors("store_writer", logger):
            return self._write(data, store, now)
        return 0  # the write failed (logged once and counted)

    def _write(self, data: MetricsData, store: SeriesStore, now: float) -> int:
        written = 0
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    payload = metric.data
                    if isinstance(payload, (Sum, Gauge)):
                        written += self._write_numbers(metric.name, payload.data_points, store, now)
                    elif isinstance(payload, (HistogramData, ExpHistogramData)):
                        for point in payload.data_points:
                            written += self._write_histogram(metric.name, point, store, now)
        return written

    @staticmethod
    def _write_numbers(
        name: str, points: Sequence[NumberDataPoint], store: SeriesStore, now: float
    ) -> int:
        for point in points:
            store.append(name, labels_of(point.attributes or {}), float(point.value), now)
        return len(points)

    def _write_histogram(
        self,
        name: str,
        point: HistogramDataPoint | ExponentialHistogramDataPoint,
        store: SeriesStore,
        now: float,
    ) -> int:
        labels = labels_of(point.attributes or {})
        store.append(f"{name}.count", labels, float(point.count), now)
        store.append(f"{name}.sum", labels, float(point.sum), now)
        key = (name, labels)
        start = point.start_time_unix_nano
        bounds: Sequence[float]
        window: Sequence[float]
        if isinstance(point, HistogramDataPoint):
            bounds = tuple(point.explicit_bounds)
            counts = tuple(map(float, point.bucket_counts))
            previous = self._previous.get(key)
            self._previous[key] = (start, bounds, counts)
            window = counts
            if (
                previous is not None
                and previous[0] == start
                and previous[1] == bounds
                and len(previous[2]) == len(counts)
                and all(c >= p for c, p in zip(counts, previous[2], strict=True))
            ):
                window = tuple(c - p for c, p in zip(counts, previous[2], strict=True))
        else:
            state: _ExpState = (
                point.scale,
                float(sum(point.negative.bucket_counts) + point.zero_count),
                point.positive.offset,
                tuple(map(float, point.positive.bucket_counts)),
            )
            previous_exp = self._previous_exp.get(key)
            self._previous_exp[key] = (start, state)
            delta = None
            if previous_exp is not None and previous_exp[0] == start:
                delta = _exponential_delta(previous_exp[1], state)
            bounds, window = _exponential_buckets(*(delta or state))
        written = 2
        for suffix, q in QUANTILES:
            estimate = bucket_quantile(q, bounds, window, low=point.min, high=point.max)
            if estimate is not None:
                store.append(f"{name}.{suffix}", labels, estimate, now)
                written += 1
            else:  # nothing observed since the last collection
                store.mark_stale(f"{name}.{suffix}", labels, now)
        return written
