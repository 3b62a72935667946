"""A typed snapshot of the current metric values, read from the in-process metric reader.

``MonitoringManager.get_current_metrics()`` and the web API return it. It is built from one
collection of the OTel SDK (the same numbers the exporters see), never from separate psutil
calls, and is dict-like for the seed's ``metrics["cpu_usage"]`` style.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from pydantic import BaseModel, ConfigDict, Field

from paca_otel.signals.labels import safe_text
from paca_otel.signals.system_aliases import SOURCES

SEED_ALIASES = tuple(SOURCES)  # cpu_usage, memory_usage, disk_usage


class MetricPoint(BaseModel):
    """One data point: a metric name, its attributes and its current value."""

    model_config = ConfigDict(frozen=True)

    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    value: float
    kind: str
    unit: str = ""
    count: int | None = None  # histograms: how many observations ``value`` (the mean) covers


class MetricsSnapshot(BaseModel, Mapping[str, float]):
    """Current values: the seed's percent aliases plus every metric's data points.

    As a mapping it answers an alias (``cpu_usage``) or a metric name; for a metric with several
    label sets the mapping gives the sum for counters and the mean otherwise, and
    :meth:`points` gives each label set.
    """

    model_config = ConfigDict(frozen=True)

    timestamp: float
    cpu_usage: float | None = None
    memory_usage: float | None = None
    disk_usage: float | None = None
    metrics: list[MetricPoint] = Field(default_factory=list)

    def points(self, name: str) -> list[MetricPoint]:
        """Every data point of metric ``name``."""
        return [p for p in self.metrics if p.name == name]

    def _values(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for alias in SEED_ALIASES:
            value = getattr(self, alias)
            if value is not None:
                values[alias] = value
        grouped: dict[str, list[MetricPoint]] = {}
        for point in self.metrics:
            grouped.setdefault(point.name, []).append(point)
        for name, points in grouped.items():
            total = sum(p.value for p in points)
            values[name] = total if points[0].kind == "counter" else total / len(points)
        return values

    def __getitem__(self, key: str) -> float:
        return self._values()[key]

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]  # Mapping iteration, not pydantic's field pairs
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())

    def as_dict(self) -> dict[str, float]:
        """Alias and metric name -> value, the flat view the seed API printed."""
        return self._values()


def snapshot_from(
    data: MetricsData | None, aliases: Mapping[str, float] | None = None
) -> MetricsSnapshot:
    """Flatten one collection into a :class:`MetricsSnapshot`."""
    points: list[MetricPoint] = []
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points.extend(_points(metric.name, metric.unit or "", metric.data))
    extra: dict[str, Any] = dict(aliases or {})
    return MetricsSnapshot(
        timestamp=time.time(),
        metrics=points,
        **{k: extra.get(k) for k in SEED_ALIASES},
    )


def _points(name: str, unit: str, data: object) -> Iterator[MetricPoint]:
    if isinstance(data, Sum | Gauge):
        kind = "counter" if isinstance(data, Sum) and data.is_monotonic else "gauge"
        for point in data.data_points:
            if isinstance(point, NumberDataPoint):
                yield MetricPoint(
                    name=name, labels=_labels(point.attributes), value=float(point.value),
                    kind=kind, unit=unit,
                )  # fmt: skip
    elif isinstance(data, Histogram):
        for hpoint in data.data_points:
            if isinstance(hpoint, HistogramDataPoint):
                mean = hpoint.sum / hpoint.count if hpoint.count else 0.0
                yield MetricPoint(
                    name=name, labels=_labels(hpoint.attributes), value=mean,
                    kind="histogram", unit=unit, count=hpoint.count,
                )  # fmt: skip


def _labels(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    # safe_text: a label from the raw OTel API may hold a lone surrogate (JSON would fail: 500).
    return {safe_text(str(k)): safe_text(str(v)) for k, v in (attributes or {}).items()}
