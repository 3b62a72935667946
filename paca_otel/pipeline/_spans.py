"""The RED span processor: request rate, errors and duration per route, from finished spans.

``on_end`` runs on the application's request path for every span, so it does the least
possible work: it reads five fields and appends one small tuple to a bounded ``deque``
(atomic under the GIL, so no lock). Everything else — grouping by route, the sliding
window, counts, rates and percentiles — happens in :meth:`REDSpanProcessor.drain`, on the
collection thread. When spans arrive faster than collections drain them, the oldest are
dropped and counted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from paca_otel._internal import drops, handle_internal_errors, warn_once
from paca_otel.errors import ConfigError
from paca_otel.signals._labels import label_value_max_length as label_value_max_length_default
from paca_otel.signals._labels import safe_text

logger = logging.getLogger("paca_otel.pipeline")

_SERVER = SpanKind.SERVER
_EMPTY: Mapping[str, Any] = MappingProxyType({})


_ERROR = StatusCode.ERROR
OVERFLOW_ROUTE = "__other__"
"""The route reported for requests beyond ``max_routes`` distinct (route, method) pairs."""

# route, span name, method, HTTP status, span status code, duration in ns
_Sample = tuple[Any, str | None, Any, Any, StatusCode, int]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ascending values, interpolating linearly between ranks.

    This is numpy's default ("linear") method, so results are easy to check by hand:
    the p50 of 1..100 is 50.5 and the p99 is 99.01.
    """
    if not sorted_values:
        msg = "percentile of an empty sequence"
        raise ValueError(msg)
    position = q * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    weight = position - lower
    return sorted_values[lower] * (1.0 - weight) + sorted_values[upper] * weight


@dataclass(frozen=True, slots=True)
class REDStats:
    """RED figures of one route (and method) over the window; ``route=None`` means all routes."""

    route: str | None
    method: str | None
    requests: int
    errors: int
    rate: float
    error_ratio: float
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class REDWindow:
    """What the sliding window holds for one (route, method), before it becomes figures.

    The multiprocess merge (:mod:`paca_otel.pipeline._mpred`) publishes these rather than
    :class:`REDStats`: counts add up across workers, percentiles do not.
    """

    route: str
    method: str | None
    requests: int
    errors: int
    durations: Sequence[float]
    """Seconds, ascending; at most ``max_samples``, evenly thinned from ``requests`` values."""


class _Bucket:
    """What one drain saw for one (route, method): a slice of the sliding window."""

    __slots__ = ("durations", "errors", "requests", "t")

    def __init__(self, t: float) -> None:
        self.t = t
        self.requests = 0
        self.errors = 0
        self.durations: list[float] = []


def _is_error(status: StatusCode, http_status: object) -> bool:
    if status is _ERROR:
        return True
    if http_status is None:
        return False
    if isinstance(http_status, int):
        return http_status >= 500
    try:
        return int(str(http_status)) >= 500  # instrumentations may record it as a string
    except ValueError:
        return False


class REDSpanProcessor(SpanProcessor):
    """Keeps per-(route, method) request, error and latency figures over a sliding window.

    A span counts as a request when it is SERVER-kind or carries ``http.route``; its route is
    ``http.route``, else the span name (low-cardinality by the OTel spec). It is an error when
    its status is ERROR or ``http.response.status_code`` (or the older ``http.status_code``)
    is 500 or more.

    Args:
        window: Seconds the figures cover (the sliding window).
        max_pending: Spans buffered between two drains; the oldest are dropped beyond it.
        max_routes: Distinct (route, method) pairs tracked; more fold into ``__other__``.
        max_samples: Latency samples per pair per window used for percentiles (evenly
            thinned beyond it), which bounds the cost of a drain.
        forget_after: Seconds without requests after which a pair is no longer reported.
            Until then it reports zero requests, so "traffic stopped" rules see a 0 rather
            than a series that went stale.
        clock: Seconds since the epoch; injectable for tests.
        label_value_max_length: Characters kept of a route or method (they become the
            ``route``/``method`` labels); ``None`` means the process-wide setting at
            construction. Longer ones are cut and counted, and code points UTF-8 cannot encode
            become U+FFFD, so a span attribute can never break a scrape or the JSON API.
    """

    def __init__(
        self,
        *,
        window: float = 60.0,
        max_pending: int = 20_000,
        max_routes: int = 500,
        max_samples: int = 10_000,
        forget_after: float = 3600.0,
        clock: Callable[[], float] = time.time,
        label_value_max_length: int | None = None,
    ) -> None:
        if not window > 0 or not math.isfinite(window):
            msg = f"RED window must be a positive number of seconds, got {window!r}"
            raise ConfigError(msg)
        for name, value in (
            ("max_pending", max_pending),
            ("max_routes", max_routes),
            ("max_samples", max_samples),
        ):
            if value < 1:
                msg = f"{name} must be at least 1, got {value!r}"
                raise ConfigError(msg)
        self.window = float(window)
        self.max_pending = max_pending
        self.max_routes = max_routes
        self.max_samples = max_samples
        self.forget_after = float(forget_after)
        self.label_value_max_length = (
            label_value_max_length_default()
            if label_value_max_length is None
            else label_value_max_length
        )
        self.dropped = 0
        self._reported_drops = 0
        self._clock = clock
        self._started = clock()
        self._pending: deque[_Sample] = deque(maxlen=max_pending)
        self._buckets: dict[tuple[str, str | None], deque[_Bucket]] = {}
        self._last_seen: dict[tuple[str, str | None], float] = {}
        self._drain_lock = threading.Lock()  # drains are serialised; on_end never takes it

    @property
    def pending(self) -> int:
        """Finished spans waiting for the next drain."""
        return len(self._pending)

    # ------------------------------------------------------------ the hot path

    # No on_start: RED needs finished spans only, and a processor that does not override it
    # is skipped at start by telemetry/_fanout.py.

    def on_end(self, span: ReadableSpan) -> None:
        """Buffer the few fields RED needs; never raises, never blocks."""
        try:
            # Public properties only (issue 6), no private span fields. ``attributes`` is a
            # read-only view over the SDK's BoundedAttributes, where every ``get`` is a Python
            # call (a miss a caught KeyError); its public ``copy()`` is a dict copied in C, and
            # the three or four lookups below are C calls on it: ~120 ns less per span.
            view: Any = span.attributes
            try:
                raw: Mapping[str, Any] = view.copy()
            except AttributeError:  # None, or a Mapping without copy(): read it as it is
                raw = view or _EMPTY
            route = raw.get("http.route")
            # The span name is the route only without http.route: read it only then.
            name = None
            if route is None:
                if span.kind is not _SERVER:
                    return
                name = span.name
            pending = self._pending
            if len(pending) == self.max_pending:
                self.dropped += 1  # approximate under threads; reported at drain
            pending.append(
                (
                    route,
                    name,
                    raw.get("http.request.method") or raw.get("http.method"),
                    raw.get("http.response.status_code") or raw.get("http.status_code"),
                    span.status.status_code,
                    (span.end_time or 0) - (span.start_time or 0),
                )
            )
        except Exception:
            with handle_internal_errors("red_span_processor.on_end", logger):
                raise

    def shutdown(self) -> None:
        """Nothing to flush: figures are read from the store, not exported."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Always done: there is no export queue to wait for."""
        return True

    # ------------------------------------------------------- collection thread

    def drain(self, now: float | None = None) -> list[REDStats]:
        """Move buffered spans into the window and return the figures at ``now``.

        Returns one :class:`REDStats` per (route, method) seen in the window, then one for
        all routes together (``route=None``) when anything was seen at all.
        """
        now = self._clock() if now is None else now
        with self._drain_lock, handle_internal_errors("red_span_processor.drain", logger):
            self._absorb(now)
            return self._figures(now)
        return []  # only reached when an internal error was swallowed

    def drain_windows(self, now: float | None = None) -> tuple[list[REDWindow], float]:
        """Like :meth:`drain`, but the raw window per (route, method) and the seconds it spans.

        ``requests / seconds`` is the rate :meth:`drain` reports; the seconds are shorter than
        ``window`` while the processor is younger than it.
        """
        now = self._clock() if now is None else now
        with self._drain_lock, handle_internal_errors("red_span_processor.drain", logger):
            self._absorb(now)
            return self._windows(), self._span_seconds(now)
        return [], self.window  # only reached when an internal error was swallowed

    def _absorb(self, now: float) -> None:
        pending = self._pending
        fresh: dict[tuple[str, str | None], _Bucket] = {}
        buckets = self._buckets
        for _ in range(len(pending)):
            route, name, method, http_status, status, duration_ns = pending.popleft()
            key = (
                self._label(str(route) if route is not None else name or ""),
                self._label(str(method)) if method else None,
            )
            bucket = fresh.get(key)
            if bucket is None:
                if key not in buckets and len(buckets) >= self.max_routes:
                    key = (OVERFLOW_ROUTE, None)
                    warn_once(
                        logger,
                        "red_max_routes",
                        "RED span processor: more than %d (route, method) pairs; "
                        "the rest are reported as route %r",
                        self.max_routes,
                        OVERFLOW_ROUTE,
                    )
                bucket = fresh.get(key)
                if bucket is None:
                    bucket = fresh[key] = _Bucket(now)
                    buckets.setdefault(key, deque()).append(bucket)
                    self._last_seen[key] = now
            bucket.requests += 1
            if _is_error(status, http_status):
                bucket.errors += 1
            bucket.durations.append(duration_ns / 1e9)
        horizon = now - self.window
        for key in list(buckets):
            window = buckets[key]
            while window and window[0].t <= horizon:
                window.popleft()
            if not window and now - self._last_seen[key] > self.forget_after:
                del buckets[key]
                del self._last_seen[key]
        if self.dropped > self._reported_drops:
            drops.add("red_pending_overflow", self.dropped - self._reported_drops)
            self._reported_drops = self.dropped

    def _label(self, text: str) -> str:
        """``text`` as a safe label value: cut to the limit, unencodable code points replaced.

        Span names and attributes come from any instrumentation or user code; one lone
        surrogate among them would otherwise fail every scrape and JSON answer carrying it.
        """
        limit = self.label_value_max_length
        if len(text) <= limit and text.isascii():
            return text
        safe = safe_text(text, limit)
        if safe != text:
            reason = "label_value_truncated" if len(text) > limit else "label_value_unencodable"
            drops.add(reason)
            warn_once(
                logger,
                f"red:{reason}",
                "RED span processor: a route or method was not a safe label value (%s); "
                "further ones are only counted in paca_otel.dropped{reason=%s}",
                "longer than label_value_max_length" if len(text) > limit else "not UTF-8",
                reason,
            )
        return safe

    def _span_seconds(self, now: float) -> float:
        elapsed = now - self._started
        return min(self.window, elapsed) if elapsed > 0 else self.window

    def _windows(self) -> list[REDWindow]:
        return [
            REDWindow(
                route,
                method,
                sum(b.requests for b in window),
                sum(b.errors for b in window),
                self._thin([d for b in window for d in b.durations]),
            )
            for (route, method), window in sorted(self._buckets.items(), key=_sort_key)
        ]

    def _figures(self, now: float) -> list[REDStats]:
        span_s = self._span_seconds(now)
        out: list[REDStats] = []
        all_durations: list[float] = []
        total_requests = total_errors = 0
        for pair in self._windows():
            all_durations.extend(pair.durations)
            total_requests += pair.requests
            total_errors += pair.errors
            out.append(
                _stats(
                    pair.route,
                    pair.method,
                    requests=pair.requests,
                    errors=pair.errors,
                    durations=pair.durations,
                    span_s=span_s,
                )
            )
        if out:
            merged = self._thin(all_durations)
            out.append(
                _stats(
                    None,
                    None,
                    requests=total_requests,
                    errors=total_errors,
                    durations=merged,
                    span_s=span_s,
                )
            )
        return out

    def _thin(self, durations: list[float]) -> list[float]:
        """At most ``max_samples`` values, evenly spread, sorted ascending."""
        if len(durations) > self.max_samples:
            step = len(durations) / self.max_samples
            durations = [durations[int(i * step)] for i in range(self.max_samples)]
        durations.sort()
        return durations


def _sort_key(item: tuple[tuple[str, str | None], Iterable[_Bucket]]) -> tuple[str, str]:
    route, method = item[0]
    return route, method or ""


def _stats(
    route: str | None,
    method: str | None,
    *,
    requests: int,
    errors: int,
    durations: Sequence[float],
    span_s: float,
) -> REDStats:
    has = bool(durations)
    return REDStats(
        route=route,
        method=method,
        requests=requests,
        errors=errors,
        rate=requests / span_s,
        error_ratio=errors / requests if requests else 0.0,
        p50=percentile(durations, 0.50) if has else None,
        p95=percentile(durations, 0.95) if has else None,
        p99=percentile(durations, 0.99) if has else None,
    )
