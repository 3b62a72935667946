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

Translation is the scrape's per-series work, so :class:`Translator` keeps what repeats between
scrapes: a series' labels and rendered label strings, per metric, for as long as the SDK hands
out the same attribute dict for it. The families it makes are
:class:`~paca_otel.pipeline._promtext.PreparedFamily` objects, which
:mod:`paca_otel.pipeline._promtext` writes directly and which build prometheus_client samples
only when something reads them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
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
from paca_otel.pipeline._promtext import Part, PreparedFamily, Series, render_series
from paca_otel.signals._labels import safe_text

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


def _kind(payload: object) -> str | None:
    """The Prometheus type of an OTel payload (cumulative up-down sums are gauges)."""
    if isinstance(payload, Sum):
        delta = payload.aggregation_temporality != AggregationTemporality.CUMULATIVE
        return "counter" if payload.is_monotonic or delta else "gauge"
    if isinstance(payload, Gauge):
        return "gauge"
    if isinstance(payload, Histogram):
        return "histogram"
    return None


_FACTORIES: dict[str, Callable[..., Family]] = {
    "counter": CounterMetricFamily,
    "gauge": GaugeMetricFamily,
    "histogram": HistogramMetricFamily,
}


@dataclass(slots=True)
class _Row:
    """A series' translated labels, kept while the SDK hands out the same attribute dict."""

    attributes: object  # held, so that its id() is not reused while cached
    labels: dict[str, str]
    keys: frozenset[str]
    series: Series | None = None


@dataclass(slots=True)
class _MetricCache:
    """What one metric's translation reuses across collections."""

    scope: dict[str, str]
    sample_base: str
    keyset: frozenset[str] | None = None
    label_keys: tuple[str, ...] = ()
    rows: dict[int, _Row] = field(default_factory=dict)
    keysets: dict[frozenset[str], frozenset[str]] = field(default_factory=dict)
    attributes: list[object] | None = None  # the last collection's, point by point
    series: list[Series] = field(default_factory=list)  # ... and their series


class Translator:
    """Translates collections into families, reusing per series what did not change.

    A series' labels (scope labels, sanitised attribute names, escaped values) and its sample
    line prefixes are rendered once and kept while the SDK hands out the same attribute dict
    for it (the SDK keeps one per series; the multiprocess merge does too), so a collection
    whose series did not change costs a dict lookup and a value format per series. Caches are
    bounded by the collection's size. Not thread-safe: :class:`CollectionCollector` locks.
    """

    def __init__(self) -> None:
        self._scopes: dict[tuple[object, ...], dict[str, str]] = {}
        self._metrics: dict[tuple[object, ...], _MetricCache] = {}
        self._names: dict[tuple[str, str, str], tuple[str, str] | None] = {}

    def translate(self, data: MetricsData, *, target_info: bool = True) -> list[Family]:
        """Translate one collection into Prometheus families (see the module docstring)."""
        out: dict[tuple[str, str, str, str], PreparedFamily] = {}
        info: dict[str, str] = {}
        seen: set[tuple[object, ...]] = set()
        for resource_metrics in data.resource_metrics:
            info.update(
                {
                    label_name(k): _label_value(v)
                    for k, v in resource_metrics.resource.attributes.items()
                }
            )
            for scope_metrics in resource_metrics.scope_metrics:
                scope_key, scope = self._scope(scope_metrics.scope)
                for metric in scope_metrics.metrics:
                    self._translate(metric, scope_key, scope, out, seen)
        result: list[Family] = []
        if target_info and data.resource_metrics:
            target = InfoMetricFamily("target", "Target metadata", labels=list(info))
            target.add_metric(labels=list(info), value=info)
            result.append(target)
        result.extend(out.values())
        if len(self._metrics) > 2 * len(seen) + 64:  # metrics came and went
            self._metrics = {k: v for k, v in self._metrics.items() if k in seen}
            self._scopes.clear()
            self._names.clear()
        return result

    def _scope(self, scope: InstrumentationScope) -> tuple[tuple[object, ...], dict[str, str]]:
        attributes = scope.attributes
        frozen = repr(sorted(attributes.items())) if attributes else ""
        key = (scope.name, scope.version, scope.schema_url, frozen)
        labels = self._scopes.get(key)
        if labels is None:
            labels = self._scopes[key] = _scope_labels(scope)
        return key, labels

    def _family_names(self, base: str, suffix: str, kind: str) -> tuple[str, str] | None:
        """The sample base name and unit of a family, as prometheus_client names it."""
        key = (base, suffix, kind)
        if key not in self._names:
            try:
                client = _FACTORIES[kind](base, "", unit=suffix)
            except ValueError:  # an empty name (a foreign multiprocess file, the raw API)
                self._names[key] = None
            else:
                self._names[key] = (exposition_name(client.name, client.type), client.unit)
        return self._names[key]

    def _translate(
        self,
        metric: Metric,
        scope_key: tuple[object, ...],
        scope: dict[str, str],
        out: dict[tuple[str, str, str, str], PreparedFamily],
        seen: set[tuple[object, ...]],
    ) -> None:
        payload = metric.data
        kind = _kind(payload)
        base = metric_name(metric.name)
        suffix = unit_suffix(metric.unit or "")
        names = None if kind is None else self._family_names(base, suffix, kind)
        if kind is None or names is None:
            what = type(payload).__name__ if kind is None else "invalid name"
            warn_once(
                logger,
                f"prometheus.unsupported.{what}",
                "paca-otel: %s data (metric %r) has no Prometheus form; it is left out of /metrics",
                what,
                metric.name,
            )
            return
        sample_base, unit = names
        description = safe_text(metric.description or "")
        family_key = (base, description, suffix, kind)
        family = out.get(family_key)
        if family is None:
            family = out[family_key] = PreparedFamily(
                sample_base, description, kind, unit, sample_base
            )
        cache_key = (scope_key, metric.name, metric.unit or "", kind)
        seen.add(cache_key)
        cache = self._metrics.get(cache_key)
        if cache is None or cache.scope is not scope:
            cache = self._metrics[cache_key] = _MetricCache(scope, sample_base)
        points: Sequence[Any] = payload.data_points
        family.parts.append(self._part(cache, kind, points))

    def _part(self, cache: _MetricCache, kind: str, points: Sequence[Any]) -> Part:
        """The points' series, rendered for the metric's label keys (reused when unchanged)."""
        if kind != "histogram":  # the same series as last time: nothing to look up
            attributes = [point.attributes for point in points]
            if attributes == cache.attributes:
                return Part(cache.label_keys, cache.series, points)
        rows = self._rows(cache, points)
        label_keys, base = cache.label_keys, cache.sample_base
        series: list[Series] = []
        if kind == "histogram":
            for row, point in zip(rows, points, strict=True):
                s, bounds = row.series, point.explicit_bounds
                if s is None or s.label_keys is not label_keys or s.bounds != bounds:
                    s = row.series = render_series(kind, base, row.labels, label_keys, bounds)
                series.append(s)
        else:
            for row in rows:
                s = row.series
                if s is None or s.label_keys is not label_keys:
                    s = row.series = render_series(kind, base, row.labels, label_keys)
                series.append(s)
            cache.attributes, cache.series = attributes, series
        return Part(label_keys, series, points)

    def _rows(self, cache: _MetricCache, points: Sequence[Any]) -> list[_Row]:
        """The points' rows; updates the metric's label keys (every point's, sorted)."""
        rows, found = cache.rows, []
        keysets: dict[int, frozenset[str]] = {}
        last: frozenset[str] | None = None
        for point in points:
            attributes = point.attributes
            row = rows.get(id(attributes))
            if row is None or row.attributes is not attributes:
                labels = dict(cache.scope)
                for key, value in (attributes or {}).items():
                    labels[label_name(key)] = _label_value(value)
                keys = frozenset(labels)
                keys = cache.keysets.setdefault(keys, keys)
                row = rows[id(attributes)] = _Row(attributes, labels, keys)
            found.append(row)
            if row.keys is not last:
                last = keysets[id(row.keys)] = row.keys
        union = frozenset().union(*keysets.values())
        if union != cache.keyset:
            cache.keyset, cache.label_keys = union, tuple(sorted(union))
        if len(rows) > 2 * len(found) + 64:  # series came and went
            cache.rows = {id(row.attributes): row for row in found}
            cache.keysets = {row.keys: row.keys for row in found}
        return found


def families(data: MetricsData, *, target_info: bool = True) -> list[Family]:
    """Translate one collection into Prometheus families (see the module docstring)."""
    return Translator().translate(data, target_info=target_info)


class CollectionCollector(Collector):
    """A prometheus_client collector serving the collection's latest data on each scrape.

    Its families are :class:`~paca_otel.pipeline._promtext.PreparedFamily` objects, which
    :func:`~paca_otel.pipeline._promtext.exposition` writes directly; translation state is
    kept between scrapes (see :class:`Translator`).

    Args:
        source: Returns the data to expose (normally ``Collection.collect_service``: a fresh
            collection, which also feeds the other consumers, merged with the other workers'
            in multiprocess mode), or ``None`` when nothing was collected yet.
    """

    def __init__(self, source: Callable[[], MetricsData | None]) -> None:
        self._source = source
        self._translator = Translator()
        self._lock = threading.Lock()  # concurrent scrapes share the translator's caches

    def collect(self) -> Iterator[Family]:
        data = self._source()
        if data is not None:
            with self._lock:
                translated = self._translator.translate(data)
            yield from translated
