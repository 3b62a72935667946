"""A typed snapshot of the current metric values, read from the in-process metric reader.

``MonitoringManager.get_current_metrics()`` and the web API return it. It is built from one
collection of the OTel SDK (the same numbers the exporters see), never from separate psutil
calls, plus the RED span processor's figures, and is dict-like for the seed's
``metrics["cpu_usage"]`` style: every alias of :data:`~paca_otel.pipeline._aliases.ALIASES` is
a key. ``str()`` is a short summary (aliases with units, then data points per metric family);
``repr()`` stays complete.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
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

from paca_otel.pipeline._aliases import ALIASES, UNITS
from paca_otel.signals._labels import safe_text

SEED_ALIASES = tuple(ALIASES)
"""Every documented alias, in the README's order: each is a field and a key of the snapshot."""


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
    """Current values: the documented aliases plus every metric's data points.

    As a mapping it answers an alias (``cpu_usage``, ``error_rate``, ``latency_p95``...) or a
    metric name. Every alias is always a key: one without data (latency while no request was
    served in the window) reads as NaN there and as ``None`` as an attribute or in JSON. An
    alias wins over a metric of the same name, which :meth:`points` still gives. For a metric
    with several label sets the mapping gives the sum for counters and the mean otherwise, and
    :meth:`points` gives each label set. The request aliases are the all-routes figures over
    the RED window; rules see them per route too.
    """

    model_config = ConfigDict(frozen=True)

    timestamp: float
    cpu_usage: float | None = None
    memory_usage: float | None = None
    disk_usage: float | None = None
    request_rate: float | None = None
    error_rate: float | None = None
    request_count: float | None = None
    error_count: float | None = None
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None
    metrics: list[MetricPoint] = Field(default_factory=list)

    def points(self, name: str) -> list[MetricPoint]:
        """Every data point of metric ``name``."""
        return [p for p in self.metrics if p.name == name]

    def aliases(self) -> dict[str, float | None]:
        """Every alias and its value (``None``: no data), in the README's order."""
        return {alias: getattr(self, alias) for alias in SEED_ALIASES}

    def _values(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for alias, value in self.aliases().items():
            values[alias] = math.nan if value is None else value
        grouped: dict[str, list[MetricPoint]] = {}
        for point in self.metrics:
            grouped.setdefault(point.name, []).append(point)
        for name, points in grouped.items():
            if name in values:
                continue  # the alias of that name wins; points(name) still has the metric
            total = sum(p.value for p in points)
            values[name] = total if points[0].kind == "counter" else total / len(points)
        return values

    def __str__(self) -> str:
        """A short summary: each alias with its unit, then data points per metric family.

        A family is a metric name's first dotted part (``system``, ``process``, ``http``); the
        full list of data points is in ``repr()``, :attr:`metrics` and :meth:`points`.
        """
        when = datetime.fromtimestamp(self.timestamp, tz=timezone.utc)
        lines = [f"MetricsSnapshot at {when:%Y-%m-%d %H:%M:%S} UTC"]
        width = max(map(len, SEED_ALIASES))
        for alias, value in self.aliases().items():
            shown = "n/a" if value is None else f"{value:.4g} {UNITS[alias]}"
            lines.append(f"  {alias:<{width}}  {shown}")
        families: dict[str, tuple[int, set[str]]] = {}
        for point in self.metrics:
            family = point.name.split(".", 1)[0]
            count, names = families.get(family, (0, set()))
            names.add(point.name)
            families[family] = (count + 1, names)
        ranked = sorted(families.items(), key=lambda item: (-item[1][0], item[0]))
        summary = ", ".join(
            f"{f} {n} ({len(m)} metric{'s' if len(m) != 1 else ''})" for f, (n, m) in ranked
        )
        lines.append(f"  {len(self.metrics)} data points: {summary or 'none'}")
        return "\n".join(lines)

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
    data: MetricsData | None, aliases: Mapping[str, float | None] | None = None
) -> MetricsSnapshot:
    """Flatten one collection into a :class:`MetricsSnapshot`; ``aliases`` gives their values."""
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
