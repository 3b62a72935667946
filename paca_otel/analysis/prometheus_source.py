"""A :class:`~paca_otel.analysis.source.SeriesSource` over a Prometheus server's HTTP API.

Fleets that outgrew one process keep their history in Prometheus; the same analyzers and
reports then read it through ``/api/v1/query_range`` instead of the embedded history store.
Callers keep using paca-otel's names; this module translates them to what Prometheus holds
after scraping paca-otel's ``/metrics`` (the OTel Prometheus exporter's naming, following the
OpenTelemetry-to-Prometheus compatibility spec):

- the name is sanitised (runs of characters other than ``[a-zA-Z0-9:]`` become ``_``), then
  the unit's suffix is appended (``By`` -> ``_bytes``, ``s`` -> ``_seconds``, ``1`` ->
  nothing, ``{annotations}`` dropped) and monotonic sums end in ``_total``. The unit is not
  part of a query, so the candidates are looked up in the server's name list
  (``/api/v1/label/__name__/values``): ``system.memory.usage`` finds
  ``system_memory_usage_bytes``, ``orders`` finds ``orders_total``;
- label names are sanitised the same way (``cpu.mode`` -> ``cpu_mode``);
- the history store's histogram series map to the exposed histogram: ``<name>.count`` and
  ``<name>.sum`` to ``_count``/``_sum``, ``<name>.p50``/``.p95``/``.p99`` to
  ``histogram_quantile`` over the bucket rates;
- paca-otel's aliases (``cpu_usage``, ``error_rate``, ``latency_p95``...) become the PromQL of
  :mod:`paca_otel.rules._promql_aliases`, the same text ``rules export`` writes.

Prometheus answers with its instant value at each step (count 1), not a mean over the step,
and at most 11,000 points per series per request, so long ranges are fetched in pieces.
Names and labels come back as Prometheus has them (``cpu_mode``, plus ``job``/``instance``).

Why hand-written: the naming rules live in the exporter's private ``_mapping`` module, which
must not be imported (project rule 1); they are short, and
``tests/analysis/test_prometheus_source.py`` checks them against a real server's scrape.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

import httpx

from paca_otel.analysis._matchers import MATCH_OPS, MatcherError
from paca_otel.analysis.source import LabelMatcher, RangePoint, RangeSeries
from paca_otel.errors import PacaOtelError
from paca_otel.pipeline._prometheus import UNIT_SUFFIXES, label_name, metric_name, unit_suffix
from paca_otel.rules import _expr as rule_expr
from paca_otel.rules._promql_aliases import alias_promql

__all__ = [
    "PrometheusSource",
    "PrometheusSourceError",
    "exposed_label",
    "exposed_name",
    "unit_suffix",
]

#: Most points Prometheus returns per series in one range query.
MAX_POINTS_PER_REQUEST = 11_000

_QUANTILES = {"p50": "0.5", "p95": "0.95", "p99": "0.99"}
_ALIASES = (
    "cpu_usage", "memory_usage", "disk_usage", "request_rate", "request_count", "error_count",
    "error_rate", "latency_p50", "latency_p95", "latency_p99",
)  # fmt: skip


class PrometheusSourceError(PacaOtelError, ValueError):
    """Prometheus could not answer (unreachable, an HTTP error, or a PromQL error)."""


# One naming rule for what /metrics exposes and what this source asks Prometheus for.
exposed_name = metric_name
exposed_label = label_name


def _mask(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def _number(text: str) -> float:
    return float(text)  # Prometheus writes NaN, +Inf and -Inf as float() reads them


class PrometheusSource:
    """Range queries against a Prometheus server, in paca-otel's names.

    Args:
        url: The server's base URL (``http://prometheus:9090``).
        timeout: Seconds per HTTP request.
        rate_window: Seconds of the ``rate()`` window behind histogram quantiles and the
            RED aliases' per-step figures, at least the step.
        names_ttl: Seconds the server's name list is cached.
        client: An ``httpx.Client`` to use (auth, TLS, proxies); one is made otherwise.

    Raises:
        PrometheusSourceError: the URL is not http(s).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        rate_window: float = 60.0,
        names_ttl: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"Prometheus url={_mask(url)!r} must be http(s)://host[:port][/prefix]"
            raise PrometheusSourceError(msg)
        self.url = url.rstrip("/")
        self.rate_window = rate_window
        self.names_ttl = names_ttl
        self._client = client or httpx.Client(timeout=timeout)
        self._own_client = client is None
        self._names: tuple[float, list[str]] | None = None
        self._lock = threading.Lock()

    # -- HTTP -------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        where = f"Prometheus at {_mask(self.url)}{path}"
        try:
            response = self._client.get(self.url + path, params=params)
        except httpx.HTTPError as exc:
            msg = f"{where} is unreachable: {type(exc).__name__}: {exc}"
            raise PrometheusSourceError(msg) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else response.text[:200]
            msg = f"{where} answered HTTP {response.status_code}: {error}"
            raise PrometheusSourceError(msg)
        return body.get("data")

    def names(self) -> list[str]:
        """The metric names the server holds (as exposed: ``system_cpu_time_seconds_total``)."""
        with self._lock:
            cached = self._names
        if cached is not None and time.monotonic() - cached[0] < self.names_ttl:
            return list(cached[1])
        found = sorted(self._get("/api/v1/label/__name__/values") or [])
        with self._lock:
            self._names = (time.monotonic(), found)
        return list(found)

    # -- translation ------------------------------------------------------------------------

    def resolve(self, name: str) -> str | None:
        """The exposed name ``name`` is stored under, or None if the server has none.

        Exact names win; then the sanitised name, with ``_total``, with a unit suffix, and
        with both (the shortest suffix first).
        """
        available = self.names()
        if name in available:
            return name
        base = exposed_name(name)
        found = [
            candidate
            for candidate in available
            if candidate in (base, f"{base}_total") or self._is_unit_of(candidate, base)
        ]
        return min(found, key=lambda n: (len(n), n)) if found else None

    @staticmethod
    def _is_unit_of(candidate: str, base: str) -> bool:
        if not candidate.startswith(base + "_"):
            return False
        suffix = candidate[len(base) + 1 :].removesuffix("_total")
        return suffix in UNIT_SUFFIXES or "_per_" in suffix or suffix.startswith("per_")

    def promql(self, name: str, matchers: Sequence[LabelMatcher], step: float) -> str | None:
        """The PromQL that answers ``name{matchers}`` at ``step``; None if nothing matches.

        Raises:
            MatcherError: a malformed matcher.
        """
        for matcher in matchers:
            if not isinstance(matcher, LabelMatcher) or matcher.op not in MATCH_OPS:
                msg = f"matcher {matcher!r} must be a LabelMatcher with op one of {MATCH_OPS}"
                raise MatcherError(msg)
        window = max(step, self.rate_window)
        if name in _ALIASES:
            rule_matchers = [rule_expr.LabelMatcher(m.name, m.op, m.value) for m in matchers]
            return alias_promql(name, rule_matchers, exposed_label)
        stem, _, suffix = name.rpartition(".")
        if stem and suffix in ("count", "sum"):
            exposed = self.resolve(f"{stem}.{suffix}") or self._histogram(stem, suffix)
            if exposed:
                return exposed + self._selector(matchers)
        if stem and suffix in _QUANTILES:
            buckets = self._histogram(stem, "bucket")
            if buckets:
                rated = f"rate({buckets}{self._selector(matchers)}[{_duration(window)}])"
                return f"histogram_quantile({_QUANTILES[suffix]}, {rated})"
        exposed = self.resolve(name)
        return exposed + self._selector(matchers) if exposed else None

    def _histogram(self, stem: str, part: str) -> str | None:
        """``<exposed stem>[_unit]_<part>`` if the server has it."""
        base = exposed_name(stem)
        for candidate in self.names():
            if candidate.endswith(f"_{part}"):
                family = candidate.removesuffix(f"_{part}")
                if family == base or self._is_unit_of(family, base):
                    return candidate
        return None

    @staticmethod
    def _selector(matchers: Sequence[LabelMatcher]) -> str:
        if not matchers:
            return ""
        parts = (
            f"{exposed_label(m.name)}{m.op}{rule_expr.format_string(m.value)}" for m in matchers
        )
        return "{" + ", ".join(parts) + "}"

    # -- queries ----------------------------------------------------------------------------

    def query_range(
        self,
        name: str,
        matchers: Sequence[LabelMatcher] = (),
        *,
        start: float,
        end: float,
        step: float,
    ) -> list[RangeSeries]:
        """Every series of ``name`` matching ``matchers``: Prometheus' value at each step.

        Raises:
            PrometheusSourceError: a bad range, or the server failed; MatcherError: a bad
                matcher.
        """
        for value, what in ((start, "start"), (end, "end"), (step, "step")):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                msg = f"{what}={value!r} must be a finite number of seconds"
                raise PrometheusSourceError(msg)
        if step <= 0 or end < start:
            msg = f"need step > 0 and end >= start (got start={start}, end={end}, step={step})"
            raise PrometheusSourceError(msg)
        query = self.promql(name, matchers, step)
        if query is None:
            return []
        series: dict[tuple[tuple[str, str], ...], list[RangePoint]] = {}
        piece = step * (MAX_POINTS_PER_REQUEST - 1)
        at = float(start)
        while at <= end:
            last = min(float(end), at + piece)
            params = {"query": query, "start": at, "end": last, "step": step}
            data = self._get("/api/v1/query_range", params)
            for item in data.get("result", []) if isinstance(data, dict) else []:
                labels = {k: v for k, v in item.get("metric", {}).items() if k != "__name__"}
                points = series.setdefault(tuple(sorted(labels.items())), [])
                for stamp, text in item.get("values", []):
                    value = _number(text)
                    if not points or float(stamp) > points[-1].timestamp:
                        points.append(RangePoint(float(stamp), value, value, value, value, 1))
            at = last + step
        return [RangeSeries(name, dict(key), points) for key, points in sorted(series.items())]

    def close(self) -> None:
        """Close the HTTP client if this source made it."""
        if self._own_client:
            self._client.close()

    def __repr__(self) -> str:
        return f"PrometheusSource(url={_mask(self.url)!r})"


def _duration(seconds: float) -> str:
    return rule_expr.format_duration(seconds)
