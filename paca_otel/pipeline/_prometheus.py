"""Prometheus exposition of the one collection: MetricsData -> prometheus_client families.

The OTel Prometheus exporter is itself a metric reader: attached next to the others it would
aggregate every measurement a second time (see :mod:`paca_otel.pipeline._collection`), and its
translator is private to it. This module translates the collection's data with the same rules
(the OTel spec's Prometheus compatibility section, as the exporter implements them: name and
label sanitising, UCUM unit suffixes, ``_total`` for monotonic sums, cumulative non-monotonic
sums as gauges, ``target_info`` from the resource, ``otel_scope_*`` labels), so a scrape shows
the same families as before. A test holds the two outputs side by side.

It is also the scrape's safety net for text UTF-8 cannot encode (a lone surrogate from a
``surrogateescape``-decoded device name, or from the raw OTel API): prometheus_client would
raise ``UnicodeEncodeError`` for the whole scrape, so such code points become U+FFFD here.
``MetricsCollector`` already cleans its labels at record time; this covers everything else.

On top of the exporter's rules, semconv ``*.count`` gauges are exposed as ``<stem>s``
(``process_threads``): Prometheus reserves ``_count`` for histogram and summary samples, and
``promtool check metrics`` rejects it elsewhere. OTLP keeps the semconv names.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.registry import Collector

from paca_otel._internal import warn_once
from paca_otel.signals.labels import safe_text

logger = logging.getLogger("paca_otel.pipeline")

_NAME_RE = re.compile(r"[^a-zA-Z0-9:]+")
_LABEL_RE = re.compile(r"[^a-zA-Z0-9]+")
_UNIT_ANNOTATION = re.compile(r"{.*}")
_UNITS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes",
    "MiBy": "mebibytes", "GiBy": "gibibytes", "TiBy": "tibibytes", "KBy": "kilobytes",
    "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes", "m": "meters", "V": "volts",
    "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius", "Hz": "hertz",
    "1": "", "%": "percent",
}  # fmt: skip
_PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week",
              "mo": "month", "y": "year"}  # fmt: skip
_RESERVED_TYPES = frozenset({"histogram", "summary", "gaugehistogram"})
UNIT_SUFFIXES = frozenset(_UNITS.values())
"""Every suffix a mapped unit adds to a metric name (``seconds``, ``bytes``...)."""


def metric_name(name: str) -> str:
    """A metric name as Prometheus allows it (OTel compatibility spec)."""
    if name and name[0].isdigit():
        name = "_" + name[1:]
    return _NAME_RE.sub("_", name)


def label_name(key: str) -> str:
    """An attribute key as a Prometheus label name (OTel compatibility spec)."""
    if key and key[0].isdigit():
        key = "_" + key[1:]
    return _LABEL_RE.sub("_", key)


def unit_suffix(unit: str) -> str:
    """The name suffix for a UCUM unit: ``s`` -> ``seconds``, ``By/s`` -> ``bytes_per_second``."""
    unit = _UNIT_ANNOTATION.sub("", unit)
    if unit in _UNITS:
        return _UNITS[unit]
    top, sep, bottom = unit.partition("/")
    if sep:
        bottom = _NAME_RE.sub("_", bottom)
        if bottom:
            top = _NAME_RE.sub("_", top)
            top = _UNITS.get(top, top)
            bottom = _PER_UNITS.get(bottom, bottom)
            return f"{top}_per_{bottom}" if top else f"per_{bottom}"
    return _NAME_RE.sub("_", unit).strip("_")


def exposition_name(name: str, metric_type: str) -> str:
    """The name a family is exposed under (changed only for ``*_count`` non-histograms)."""
    if metric_type not in _RESERVED_TYPES and name.endswith("_count"):
        return name[: -len("_count")] + "s"
    return name


def _label_value(value: Any) -> str:
    return safe_text(value if isinstance(value, str) else json.dumps(value, default=str))


def _scope_labels(scope: InstrumentationScope) -> dict[str, str]:
    labels = {
        label_name("otel_scope_" + k): _label_value(v) for k, v in (scope.attributes or {}).items()
    }
    labels["otel_scope_name"] = scope.name or ""
    labels["otel_scope_version"] = scope.version or ""
    labels["otel_scope_schema_url"] = scope.schema_url or ""
    return labels


def families(data: MetricsData, *, target_info: bool = True) -> list[Family]:
    """Translate one collection into Prometheus families (see the module docstring)."""
    out: dict[tuple[str, str, str, str], Family] = {}
    info: dict[str, str] = {}
    for resource_metrics in data.resource_metrics:
        info.update(
            {
                label_name(k): _label_value(v)
                for k, v in resource_metrics.resource.attributes.items()
            }
        )
        for scope_metrics in resource_metrics.scope_metrics:
            scope = _scope_labels(scope_metrics.scope)
            for metric in scope_metrics.metrics:
                _translate(metric, scope, out)
    result: list[Family] = []
    if target_info and data.resource_metrics:
        target = InfoMetricFamily("target", "Target metadata", labels=list(info))
        target.add_metric(labels=list(info), value=info)
        result.append(target)
    result.extend(_renamed(family) for family in out.values())
    return result


def _translate(
    metric: Metric, scope: Mapping[str, str], out: dict[tuple[str, str, str, str], Family]
) -> None:
    name, description, payload = metric.name, safe_text(metric.description or ""), metric.data
    base = metric_name(name)
    suffix = unit_suffix(metric.unit or "")
    factory: Callable[..., Family]
    if isinstance(payload, Sum) and (
        payload.is_monotonic or payload.aggregation_temporality != AggregationTemporality.CUMULATIVE
    ):
        factory = CounterMetricFamily
    elif isinstance(payload, (Sum, Gauge)):
        factory = GaugeMetricFamily
    elif isinstance(payload, Histogram):
        factory = HistogramMetricFamily
    else:
        warn_once(
            logger,
            f"prometheus.unsupported.{type(payload).__name__}",
            "paca-otel: %s data (metric %r) has no Prometheus form; it is left out of /metrics",
            type(payload).__name__,
            name,
        )
        return
    rows: list[dict[str, str]] = []
    keys: set[str] = set()
    for point in payload.data_points:
        labels = dict(scope)
        for key, value in (point.attributes or {}).items():
            labels[label_name(key)] = _label_value(value)
        keys.update(labels)
        rows.append(labels)
    label_keys = sorted(keys)
    family_key = (base, description, suffix, factory.__name__)
    family = out.get(family_key)
    if family is None:
        family = factory(base, description, labels=label_keys, unit=suffix)
        out[family_key] = family
    for data_point, labels in zip(payload.data_points, rows, strict=True):
        values = [labels.get(k, "") for k in label_keys]
        sample: Any = data_point
        target: Any = family  # a counter, gauge or histogram family, chosen above
        if isinstance(sample, HistogramDataPoint):
            target.add_metric(
                values, _buckets(sample.bucket_counts, sample.explicit_bounds), sample.sum
            )
        else:
            target.add_metric(values, sample.value)


def _buckets(counts: Sequence[int], bounds: Sequence[float]) -> list[tuple[str, float]]:
    total = 0.0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip(chain(bounds, ["+Inf"]), counts, strict=False):
        total += count
        buckets.append((f"{bound}", total))
    return buckets


def _renamed(family: Family) -> Family:
    new = exposition_name(family.name, family.type)
    if new == family.name:
        return family
    renamed = Family(new, family.documentation, family.type, family.unit)
    for sample in family.samples:
        renamed.samples.append(sample._replace(name=new + sample.name[len(family.name) :]))
    return renamed


class CollectionCollector(Collector):
    """A prometheus_client collector serving the collection's latest data on each scrape.

    Args:
        source: Returns the data to expose (normally ``Collection.collect_service``: a fresh
            collection, which also feeds the other consumers, merged with the other workers'
            in multiprocess mode), or ``None`` when nothing was collected yet.
    """

    def __init__(self, source: Callable[[], MetricsData | None]) -> None:
        self._source = source

    def collect(self) -> Iterator[Family]:
        data = self._source()
        if data is not None:
            yield from families(data)
