"""Record application metrics by name through cached OpenTelemetry instruments.

:class:`MetricsCollector` is the seed's ``record_metric`` API grown into a thin, fast layer over an
OpenTelemetry :class:`~opentelemetry.metrics.Meter`. Its one job is turning "a name, a value and
some labels" into a call on the right synchronous instrument, creating that instrument once.

Why a layer at all, when OTel already has instruments? Users of the seed call metrics by name from
anywhere, so something has to own the name -> instrument map, refuse names OTel would silently
mangle, refuse one name used as two kinds (the SDK only warns and exports both), and keep values
the SDK or the OTLP encoder cannot take away from them: NaN or a negative counter increment make
the SDK warn on *every* call, ``10**400`` raises ``OverflowError`` inside it, and one ``True``
or int beyond 64 bits makes the OTLP encoder reject the whole batch. Labels are made safe once
per distinct label set (:mod:`paca_otel.signals._labels`).

Hot path: one dict lookup for the instrument, one tuple build and dict lookup for the cleaned
label set, a class-identity check and a chained comparison for the value, then the SDK call.
Anything unusual (a first label set, a bool, a numpy scalar, an out-of-range number) takes a
slow path that decides, records or drops, and never raises. The lock is taken only when a name
is seen for the first time.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import weakref
from collections.abc import Callable
from enum import Enum
from typing import Any, Protocol, cast

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider, UpDownCounter
from opentelemetry.util.types import Attributes

from paca_otel import _internal
from paca_otel.errors import InstrumentKindConflictError, InvalidMetricNameError, MetricError
from paca_otel.signals import _values as values
from paca_otel.signals._labels import LabelCleaner, Labels, safe_text
from paca_otel.signals._timer import Timer


class Gauge(Protocol):
    """What ``Meter.create_gauge`` returns.

    The API exports that class only under a private name while the synchronous gauge is in
    development; this Protocol describes it so nothing private is imported.
    """

    def set(
        self, amount: float, attributes: Attributes = None, context: Context | None = None
    ) -> None: ...


__all__ = ["SECONDS_BUCKETS", "MetricKind", "MetricsCollector"]

_logger = logging.getLogger("paca_otel.signals.metrics")

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/]{0,254}")
_NAME_RULE = (
    "an ASCII letter followed by up to 254 letters, digits, '_', '.', '-' or '/' "
    "(OpenTelemetry instrument-name rules)"
)
_INF = math.inf
# OTLP carries integer points as a signed 64-bit ``as_int``; a Python int beyond it (or the
# ``OverflowError`` of converting 10**400 to float) must never reach the SDK.
_INT_MIN = values.INT_MIN
_INT_MAX = values.INT_MAX

SECONDS_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""Bucket advice for duration histograms in seconds (OTel's HTTP semconv boundaries).

The SDK's default boundaries (0..10000) are meant for milliseconds and would put nearly every
request in the first bucket.
"""


class MetricKind(str, Enum):
    """The synchronous instrument kinds a metric name can be bound to."""

    COUNTER = "counter"
    UP_DOWN_COUNTER = "up_down_counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


_ALLOWED_KINDS = ", ".join(repr(k.value) for k in MetricKind)
_NON_NEGATIVE = frozenset({MetricKind.COUNTER, MetricKind.HISTOGRAM})


def _validate_name(name: object) -> str:
    """Return ``name`` if OTel accepts it as an instrument name, else raise."""
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        msg = f"invalid metric name {name!r}: a metric name must be {_NAME_RULE}"
        raise InvalidMetricNameError(msg)
    return name


def _validate_unit(unit: object) -> str:
    """Return ``unit`` if the SDK accepts it (ASCII, at most 63 characters), else raise.

    The SDK itself raises a bare ``Exception`` for such a unit at instrument creation.
    """
    if not isinstance(unit, str) or not unit.isascii() or len(unit) > 63:  # the SDK's bound
        msg = f"invalid metric unit {unit!r}: a unit must be ASCII, at most 63 characters (UCUM)"
        raise MetricError(msg)
    return unit


_global_collectors: weakref.WeakSet[MetricsCollector] = weakref.WeakSet()


def rebind_global_collectors() -> None:
    """Make collectors on the global provider re-create their instruments on the new one.

    ``configure()`` calls this when it replaces the global MeterProvider (re-configuration,
    ``MonitoringManager`` stop then start). Without it, a long-lived collector would keep
    recording into the shut-down provider and its data would silently vanish. The hot path
    pays nothing for this: caches are cleared here, not checked per call.
    """
    for collector in list(_global_collectors):
        collector._forget_instruments()


class MetricsCollector:
    """Records metrics by name, creating and caching one OTel instrument per (name, kind).

    Set-up errors (a name OTel forbids, a name reused with another kind, an unknown kind) raise
    at the offending call, because they are bugs in the caller that would otherwise silently
    lose data. Bad *values* (NaN, infinities, booleans, non-numbers, integers beyond the signed
    64-bit range, negative counter increments) never raise: they are dropped, counted in the
    ``paca_otel.dropped`` self-metric and warned about once per metric name, since they usually
    come from live data the caller cannot fully control. Bad *labels* are repaired by the rules
    of :mod:`paca_otel.signals._labels` (also counted); labels that are not a mapping drop the
    measurement.

    Args:
        meter: The meter to create instruments on. Takes precedence over ``meter_provider``.
        meter_provider: A provider to get the ``paca_otel`` meter from. When neither is given
            the global provider is used; until one is configured, OTel's proxy meter forwards
            instruments to the real provider once it is set.
        label_value_max_length: Characters kept of a label key or value. ``None`` (default)
            follows the ``label_value_max_length`` setting of the last ``configure()``.
    """

    def __init__(
        self,
        meter: Meter | None = None,
        *,
        meter_provider: MeterProvider | None = None,
        label_value_max_length: int | None = None,
    ) -> None:
        if meter is None and meter_provider is not None:
            meter = meter_provider.get_meter("paca_otel")
        # With neither, the global meter is looked up at the first instrument, not here: a
        # collector made at import time or before configure() then lands on the live provider.
        self._meter: Meter | None = meter
        if meter is None:
            _global_collectors.add(self)
        self._lock = threading.Lock()
        # One dict per kind so the hot path is a single lookup keyed by the plain name.
        self._counters: dict[str, Counter] = {}
        self._up_down_counters: dict[str, UpDownCounter] = {}
        self._histograms: dict[str, Histogram] = {}
        self._gauges: dict[str, Gauge] = {}
        # Lower-cased name -> kind: OTel instrument names are case-insensitive.
        self._kinds: dict[str, MetricKind] = {}
        self._label_limit = label_value_max_length
        self._labels = LabelCleaner(label_value_max_length)
        # The cleaner's cache, bound here so the hot path pays one attribute load, not two.
        self._label_sets = self._labels.cache

    def _forget_instruments(self) -> None:
        """Drop the meter and every cached instrument (the global provider was replaced).

        The label cache is rebuilt too, so a new ``label_value_max_length`` applies.
        """
        with self._lock:
            self._meter = None
            for cache in (self._counters, self._up_down_counters, self._histograms, self._gauges):
                cache.clear()
            self._kinds.clear()
            self._labels = LabelCleaner(self._label_limit)
            self._label_sets = self._labels.cache

    @property
    def meter(self) -> Meter:
        """The meter instruments are created on."""
        if self._meter is None:
            self._meter = metrics.get_meter("paca_otel")
        return self._meter

    # ------------------------------------------------------------------ instrument cache

    def _create(
        self, name: str, kind: MetricKind, unit: str | None, description: str | None
    ) -> Any:
        """Create (or return the cached) instrument for a first sighting of ``name``.

        Runs under the lock, so two threads racing on a new name get the same instrument.
        """
        _validate_name(name)
        cache = self._cache_for(kind)
        with self._lock:
            existing = cache.get(name)
            if existing is not None:
                return existing
            key = name.lower()
            known = self._kinds.get(key)
            if known is not None and known is not kind:
                msg = (
                    f"metric {name!r} is already a {known.value}; it cannot also be used as a "
                    f"{kind.value}: a metric name is bound to one kind. Use another name for "
                    f"the {kind.value}."
                )
                raise InstrumentKindConflictError(msg)
            unit = _validate_unit(unit or "")
            # Prometheus' lint (promtool check metrics) wants help text on every family. It
            # ends up in every exposition and OTLP batch, so it must be encodable.
            description = safe_text(
                description or f"{name} ({kind.value}), recorded by MetricsCollector"
            )
            instrument: Any
            if kind is MetricKind.COUNTER:
                instrument = self.meter.create_counter(name, unit, description)
            elif kind is MetricKind.UP_DOWN_COUNTER:
                instrument = self.meter.create_up_down_counter(name, unit, description)
            elif kind is MetricKind.HISTOGRAM:
                seconds = unit == "s" or name.endswith(("_seconds", ".seconds", ".duration"))
                advisory = list(SECONDS_BUCKETS) if seconds else None
                instrument = self.meter.create_histogram(
                    name, unit, description, explicit_bucket_boundaries_advisory=advisory
                )
            else:
                instrument = self.meter.create_gauge(name, unit, description)
            self._kinds[key] = kind
            cache[name] = instrument
            return instrument

    def _cache_for(self, kind: MetricKind) -> dict[str, Any]:
        if kind is MetricKind.COUNTER:
            return self._counters
        if kind is MetricKind.UP_DOWN_COUNTER:
            return self._up_down_counters
        if kind is MetricKind.HISTOGRAM:
            return self._histograms
        return self._gauges

    def instrument(
        self,
        name: str,
        kind: MetricKind | str = MetricKind.GAUGE,
        *,
        unit: str | None = None,
        description: str | None = None,
    ) -> Counter | UpDownCounter | Histogram | Gauge:
        """Return the cached OTel instrument for ``name``, creating it on first use.

        Useful to declare metrics (with unit and description) at start-up, so bad names and
        kind conflicts surface before the first request, and to hand the raw instrument to code
        that wants the OTel API directly.

        Raises:
            InvalidMetricNameError: ``name`` breaks OTel's instrument-name rules.
            InstrumentKindConflictError: ``name`` is already bound to another kind.
            MetricError: ``kind`` is not one of :class:`MetricKind`.
        """
        kind = _coerce_kind(kind)
        found = self._cache_for(kind).get(name)
        if found is not None:
            return cast("Counter | UpDownCounter | Histogram | Gauge", found)
        return cast(
            "Counter | UpDownCounter | Histogram | Gauge",
            self._create(name, kind, unit, description),
        )

    # ------------------------------------------------------------------ recording
    # Each method below is written out instead of calling one shared helper on purpose: an
    # extra Python call per measurement would cost ~3-5 % of the SDK's own add() on the hot
    # path (benchmarks/bench_record.py measures the ratio). The fast path is: a label set seen
    # before (one tuple build, one dict lookup in the LabelCleaner's cache) and a plain int
    # inside int64 or a finite float (class identity plus a chained comparison, so ``True``,
    # ``10**400`` and NaN all miss it). Everything else goes to ``_record_slow``, which
    # cleans the labels, normalises the value or drops and counts it.

    def increment(
        self,
        name: str,
        value: float = 1,
        labels: Labels | None = None,
        *,
        unit: str | None = None,
        description: str | None = None,
    ) -> None:
        """Add ``value`` (default 1) to the monotonic counter ``name``.

        A negative, non-finite, boolean or out-of-range ``value`` is dropped (counted, warned
        once): a counter that went down would be read as a process restart by every backend.
        """
        counter = self._counters.get(name)
        if counter is None:
            counter = self._create(name, MetricKind.COUNTER, unit, description)
        try:
            if labels is not None:
                key = (*labels, *labels.values())
                labels = self._label_sets[key]  # type: ignore[assignment]  # a cleaned Labels
            if (value.__class__ is int and 0 <= value <= _INT_MAX) or (
                value.__class__ is float and 0 <= value < _INF
            ):
                counter.add(value, labels)
                return
        except Exception:  # an unseen label set or odd labels: the slow path decides
            pass
        self._record_slow(counter.add, name, value, labels, MetricKind.COUNTER)

    def add(
        self,
        name: str,
        value: float,
        labels: Labels | None = None,
        *,
        unit: str | None = None,
        description: str | None = None,
    ) -> None:
        """Add ``value`` (may be negative) to the up-down counter ``name``."""
        counter = self._up_down_counters.get(name)
        if counter is None:
            counter = self._create(name, MetricKind.UP_DOWN_COUNTER, unit, description)
        try:
            if labels is not None:
                key = (*labels, *labels.values())
                labels = self._label_sets[key]  # type: ignore[assignment]  # a cleaned Labels
            if (value.__class__ is int and _INT_MIN <= value <= _INT_MAX) or (
                value.__class__ is float and -_INF < value < _INF
            ):
                counter.add(value, labels)
                return
        except Exception:  # an unseen label set or odd labels: the slow path decides
            pass
        self._record_slow(counter.add, name, value, labels, MetricKind.UP_DOWN_COUNTER)

    def observe(
        self,
        name: str,
        value: float,
        labels: Labels | None = None,
        *,
        unit: str | None = None,
        description: str | None = None,
    ) -> None:
        """Record ``value`` into the histogram ``name``.

        Negative values are dropped like on counters: OTel histograms only take non-negative
        measurements (the SDK would drop them too, but warn on every call).
        """
        histogram = self._histograms.get(name)
        if histogram is None:
            histogram = self._create(name, MetricKind.HISTOGRAM, unit, description)
        try:
            if labels is not None:
                key = (*labels, *labels.values())
                labels = self._label_sets[key]  # type: ignore[assignment]  # a cleaned Labels
            if (value.__class__ is float and 0 <= value < _INF) or (
                value.__class__ is int and 0 <= value <= _INT_MAX
            ):
                histogram.record(value, labels)
                return
        except Exception:  # an unseen label set or odd labels: the slow path decides
            pass
        self._record_slow(histogram.record, name, value, labels, MetricKind.HISTOGRAM)

    def set_gauge(
        self,
        name: str,
        value: float,
        labels: Labels | None = None,
        *,
        unit: str | None = None,
        description: str | None = None,
    ) -> None:
        """Set the synchronous gauge ``name`` to ``value`` (last value wins per label set)."""
        gauge = self._gauges.get(name)
        if gauge is None:
            gauge = self._create(name, MetricKind.GAUGE, unit, description)
        try:
            if labels is not None:
                key = (*labels, *labels.values())
                labels = self._label_sets[key]  # type: ignore[assignment]  # a cleaned Labels
            if (value.__class__ is float and -_INF < value < _INF) or (
                value.__class__ is int and _INT_MIN <= value <= _INT_MAX
            ):
                gauge.set(value, labels)
                return
        except Exception:  # an unseen label set or odd labels: the slow path decides
            pass
        self._record_slow(gauge.set, name, value, labels, MetricKind.GAUGE)

    def record(
        self,
        name: str,
        value: float,
        labels: Labels | None = None,
        kind: MetricKind | str = MetricKind.GAUGE,
        *,
        unit: str | None = None,
        description: str | None = None,
    ) -> None:
        """Record ``value`` for ``name`` as the given ``kind`` (the seed's generic entry point).

        ``kind`` may be a :class:`MetricKind` or its string value (``"counter"``...). For a
        counter, ``value`` is the increment, not a running total.

        Raises:
            InvalidMetricNameError: ``name`` breaks OTel's instrument-name rules.
            InstrumentKindConflictError: ``name`` is already bound to another kind.
            MetricError: ``kind`` is not one of :class:`MetricKind`.
        """
        # Identity checks first: they are the common case and cost a pointer compare, while
        # the str-Enum ``==`` fallback below handles plain strings.
        if kind is MetricKind.COUNTER:
            counter = self._counters.get(name)
            if counter is None:
                counter = self._create(name, MetricKind.COUNTER, unit, description)
            try:
                if labels is not None:
                    key = (*labels, *labels.values())
                    labels = self._label_sets[key]  # type: ignore[assignment]  # a cleaned Labels
                if (value.__class__ is int and 0 <= value <= _INT_MAX) or (
                    value.__class__ is float and 0 <= value < _INF
                ):
                    counter.add(value, labels)
                    return
            except Exception:  # an unseen label set or odd labels: the slow path decides
                pass
            self._record_slow(counter.add, name, value, labels, MetricKind.COUNTER)
            return
        if kind is MetricKind.GAUGE:
            gauge = self._gauges.get(name)
            if gauge is None:
                gauge = self._create(name, MetricKind.GAUGE, unit, description)
            try:
                if labels is not None:
                    key = (*labels, *labels.values())
                    labels = self._label_sets[key]  # type: ignore[assignment]  # a cleaned Labels
                if (value.__class__ is float and -_INF < value < _INF) or (
                    value.__class__ is int and _INT_MIN <= value <= _INT_MAX
                ):
                    gauge.set(value, labels)
                    return
            except Exception:  # an unseen label set or odd labels: the slow path decides
                pass
            self._record_slow(gauge.set, name, value, labels, MetricKind.GAUGE)
            return
        if kind is MetricKind.HISTOGRAM:
            self.observe(name, value, labels, unit=unit, description=description)
            return
        if kind is MetricKind.UP_DOWN_COUNTER:
            self.add(name, value, labels, unit=unit, description=description)
            return
        self.record(name, value, labels, _coerce_kind(kind), unit=unit, description=description)

    async def record_metric(
        self,
        name: str,
        value: float,
        labels: Labels | None = None,
        kind: MetricKind | str = MetricKind.GAUGE,
    ) -> None:
        """Awaitable form of :meth:`record`, kept for the seed's ``await record_metric(...)``.

        It does no I/O: recording only updates in-memory aggregations that the SDK's reader
        exports later, so awaiting it never yields to the event loop.
        """
        self.record(name, value, labels, kind)

    def timer(
        self,
        name: str,
        labels: Labels | None = None,
        *,
        description: str | None = None,
    ) -> Timer:
        """Time a block or a function into the histogram ``name``, in seconds.

        Use as ``with collector.timer("job.duration"):`` or as a decorator on sync and async
        functions. The duration is recorded also when the block raises, so slow failures show.
        The histogram is created (and the name checked) here, not at the first measurement,
        and the labels are cleaned here once; labels that are not a mapping make a timer that
        measures but records nothing (counted as ``invalid_labels``).
        """
        histogram = self._histograms.get(name)
        if histogram is None:
            histogram = self._create(name, MetricKind.HISTOGRAM, "s", description)
        if labels is None:
            return Timer(histogram)
        cleaned = self._labels.clean(labels, name)
        if cleaned is None:
            self._reject(name, 0.0, MetricKind.HISTOGRAM, labels)
            return Timer(None)
        return Timer(histogram, cleaned)  # type: ignore[arg-type]  # cleaned values are OTel's

    def _record_slow(
        self,
        record: Callable[[Any, Any], None],
        name: str,
        value: object,
        labels: object,
        kind: MetricKind,
    ) -> None:
        """Clean the labels and normalise the value, then record, or drop and count."""
        with _internal.handle_internal_errors("metrics.record", _logger):
            cleaned = None if labels is None else self._labels.clean(labels, name)
            if labels is not None and cleaned is None:
                self._reject(name, value, kind, labels)
                return
            number = values.number(value, non_negative=kind in _NON_NEGATIVE)
            if number is None:
                self._reject(name, value, kind, labels)
                return
            record(number, cleaned)

    def _reject(self, name: str, value: object, kind: MetricKind, labels: object = None) -> None:
        """Drop a measurement the instrument must not see; count it and warn once per metric."""
        reason, detail = values.rejection(
            value, kind.value, non_negative=kind in _NON_NEGATIVE, labels=labels
        )
        _internal.drops.add(reason)
        _internal.warn_once(
            _logger,
            f"metrics:{reason}:{name}",
            "paca-otel dropped a measurement for metric %r: %s. Further drops for this metric "
            "are only counted in paca_otel.dropped{reason=%s}.",
            name,
            detail,
            reason,
        )


def _coerce_kind(kind: MetricKind | str) -> MetricKind:
    """Map a kind given as string onto :class:`MetricKind`, raising on unknown kinds."""
    if isinstance(kind, MetricKind):
        return kind
    try:
        return MetricKind(kind)
    except ValueError:
        msg = f"unknown metric kind {kind!r}: allowed kinds are {_ALLOWED_KINDS}"
        raise MetricError(msg) from None
