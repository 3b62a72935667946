"""One collection's OpenTelemetry ``MetricsData`` as history samples.

The pipeline collects once per interval; the history store records that same collection
(:meth:`~paca_otel.analysis.history.HistoryStore.record_metrics_data`) rather than reading
the instruments again. This module turns the SDK's public data model into
``(name, labels, timestamp, value)`` samples:

- gauges and sums (monotonic or not): one sample per data point, ``name`` as recorded;
- explicit-bucket histograms: ``<name>.count`` and ``<name>.sum`` as given (cumulative
  counters with cumulative temporality), plus ``<name>.p50``, ``.p95`` and ``.p99`` of the
  interval since the previous collection (bucket counts differenced, quantiles from
  :func:`paca_otel.pipeline._reader.bucket_quantile`, the estimate alert rules use), the
  same names the pipeline gives rules;
- exponential histograms: ``<name>.count`` and ``<name>.sum``;
- the system aliases ``cpu_usage``, ``memory_usage`` and ``disk_usage`` (percent, no labels)
  from the system gauges, with the formulas ``get_current_metrics()`` and rules use
  (:func:`paca_otel.signals._system_aliases.seed_aliases`), so reports read them from the
  history as from Prometheus. The RED aliases come from spans, not from a collection: reports
  fall back to the HTTP histogram's ``.count``/``.p95`` series recorded here.

Attribute values become label strings the way the Prometheus exporter writes them
(``true``/``false``, numbers as text, sequences as JSON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    Gauge,
    Histogram,
    HistogramDataPoint,
    MetricsData,
    Sum,
)

from paca_otel.pipeline._reader import bucket_quantile
from paca_otel.signals._system_aliases import seed_aliases

__all__ = ["QUANTILES", "CollectionRecorder", "Sample"]

#: ``(name, labels, timestamp_seconds, value)``.
Sample = tuple[str, dict[str, str], float, float]

#: Quantiles recorded per histogram and interval, with their name suffixes.
QUANTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return json.dumps(list(value))
    return str(value)


def _labels(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    return {key: _label(value) for key, value in (attributes or {}).items()}


class CollectionRecorder:
    """Turns collections into samples; remembers each histogram's last bucket counts.

    Args:
        max_histograms: Histogram series whose previous counts are kept (beyond it, new
            ones get no interval quantiles until others expire).
    """

    def __init__(self, max_histograms: int = 10_000) -> None:
        self.max_histograms = max_histograms
        self._previous: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[int, ...]] = {}

    def samples(self, data: MetricsData, timestamp: float | None = None) -> list[Sample]:
        """Samples of one collection; ``timestamp`` (seconds) overrides the points' own."""
        out: list[Sample] = []
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    body = metric.data
                    if isinstance(body, Gauge | Sum):
                        for point in body.data_points:
                            at = timestamp if timestamp is not None else point.time_unix_nano / 1e9
                            out.append((metric.name, _labels(point.attributes), at, point.value))
                    elif isinstance(body, Histogram):
                        cumulative = (
                            body.aggregation_temporality == AggregationTemporality.CUMULATIVE
                        )
                        for hist in body.data_points:
                            out += self._histogram(metric.name, hist, timestamp, cumulative, seen)
                    elif isinstance(body, ExponentialHistogram):
                        for expo in body.data_points:
                            at = timestamp if timestamp is not None else expo.time_unix_nano / 1e9
                            labels = _labels(expo.attributes)
                            out.append((f"{metric.name}.count", labels, at, float(expo.count)))
                            out.append((f"{metric.name}.sum", dict(labels), at, float(expo.sum)))
        for key in set(self._previous) - seen:  # series gone from the collection
            del self._previous[key]
        aliases = seed_aliases(data)
        if aliases:
            at = timestamp if timestamp is not None else max(s[2] for s in out)
            out += [(alias, {}, at, value) for alias, value in aliases.items()]
        return out

    def _histogram(
        self,
        name: str,
        point: HistogramDataPoint,
        timestamp: float | None,
        cumulative: bool,
        seen: set[tuple[str, tuple[tuple[str, str], ...]]],
    ) -> list[Sample]:
        at = timestamp if timestamp is not None else point.time_unix_nano / 1e9
        labels = _labels(point.attributes)
        samples: list[Sample] = [
            (f"{name}.count", labels, at, float(point.count)),
            (f"{name}.sum", dict(labels), at, float(point.sum)),
        ]
        counts = tuple(point.bucket_counts)
        interval = counts
        if cumulative:
            key = (name, tuple(sorted(labels.items())))
            seen.add(key)
            before = self._previous.get(key)
            if before is not None and len(before) == len(counts):
                diff = tuple(now - then for now, then in zip(counts, before, strict=True))
                interval = diff if min(diff, default=0) >= 0 else counts  # a reset starts over
            if before is not None or len(self._previous) < self.max_histograms:
                self._previous[key] = counts
        for q, suffix in QUANTILES:
            value = bucket_quantile(q, point.explicit_bounds, interval)
            if value is not None:
                samples.append((f"{name}.{suffix}", dict(labels), at, value))
        return samples
