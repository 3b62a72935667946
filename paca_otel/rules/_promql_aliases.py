"""PromQL for paca-otel's built-in aliases, over the metric names paca-otel exposes on /metrics.

In process, ``cpu_usage`` or ``error_rate`` are series the pipeline computes (see
:mod:`paca_otel.pipeline._aliases`); Prometheus has no such series. So ``rules export`` writes
each alias as the PromQL that computes the same figure from what Prometheus scrapes off
paca-otel's ``/metrics`` (names as the OTel Prometheus exporter writes them, checked against
a real scrape):

- ``cpu_usage``: ``100 * (1 - idle)`` of ``system_cpu_utilization{cpu_mode="idle"}``,
  averaged over CPUs and clamped to 0..100;
- ``memory_usage``: ``100 *`` ``system_memory_utilization{system_memory_state="used"}``;
- ``disk_usage``: ``100 * used / (used + free)`` of ``system_filesystem_usage_bytes`` for the
  ``/`` filesystem (in process, the largest filesystem stands in when ``/`` is missing);
- the RED aliases (``request_rate``, ``error_rate``, ``request_count``, ``error_count``,
  ``latency_p50/p95/p99``) from the FastAPI instrumentation's request-duration histogram over
  the RED window (1m): rate or increase of its ``_count``, errors being 5xx responses, and
  ``histogram_quantile`` over its buckets. As in process, there is one series per
  ``route``/``method`` plus one without labels for all routes together, which is included
  when the selector's ``route``/``method`` matchers accept an empty value.

Two differences remain and are stated rather than hidden: latency quantiles come from
histogram buckets (interpolated) rather than from the raw durations, and a request whose span
status is ERROR without a 5xx response counts as an error only in process. Matchers on other
labels (``job``, ``instance``...) apply to the source series in Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from paca_otel._labelregex import compile_label_regex, regex_fullmatch
from paca_otel.rules._expr import LabelMatcher, format_duration, format_string

RED_WINDOW = 60.0
"""Seconds the RED aliases cover (the pipeline's default ``red_window``)."""


@dataclass(frozen=True)
class HttpHistogram:
    """Where the HTTP server request-duration histogram is exposed, and in which unit."""

    name: str
    route: str
    method: str
    status: str
    seconds_per_unit: float


HTTP_LEGACY = HttpHistogram(
    name="http_server_duration_milliseconds",
    route="http_target",  # the FastAPI instrumentation puts the route template here
    method="http_method",
    status="http_status_code",
    seconds_per_unit=0.001,
)
"""What contrib's opentelemetry-instrumentation-fastapi exposes by default (semconv < 1.21)."""

HTTP_STABLE = HttpHistogram(
    name="http_server_request_duration_seconds",
    route="http_route",
    method="http_request_method",
    status="http_response_status_code",
    seconds_per_unit=1.0,
)
"""What :func:`paca_otel.instrument_fastapi` exposes (stable HTTP semconv; contrib too with
``OTEL_SEMCONV_STABILITY_OPT_IN=http``)."""

HTTP_DEFAULT = HTTP_STABLE
"""The histogram the request aliases export over by default: our own instrumentation's."""

LabelNamer = Callable[[str], str]


def _matchers(matchers: Sequence[LabelMatcher], names: LabelNamer, *extra: str) -> str:
    parts = [*extra, *(f"{names(m.name)}{m.op}{format_string(m.value)}" for m in matchers)]
    return "{" + ", ".join(parts) + "}" if parts else ""


def _accepts_empty(matcher: LabelMatcher) -> bool:
    if matcher.op == "=":
        return matcher.value == ""
    if matcher.op == "!=":
        return matcher.value != ""
    found = regex_fullmatch(compile_label_regex(matcher.value), "")
    return found if matcher.op == "=~" else not found


def _cpu(matchers: Sequence[LabelMatcher], names: LabelNamer) -> str:
    sel = _matchers(matchers, names, 'cpu_mode="idle"')
    idle = f"avg without (cpu_mode, cpu_logical_number) (system_cpu_utilization{sel})"
    return f"clamp(100 * (1 - {idle}), 0, 100)"


def _memory(matchers: Sequence[LabelMatcher], names: LabelNamer) -> str:
    sel = _matchers(matchers, names, 'system_memory_state="used"')
    return f"(100 * sum without (system_memory_state) (system_memory_utilization{sel}))"


def _disk(matchers: Sequence[LabelMatcher], names: LabelNamer) -> str:
    mount = 'system_filesystem_mountpoint="/"'
    used = _matchers(matchers, names, mount, 'system_filesystem_state="used"')
    total = _matchers(matchers, names, mount, 'system_filesystem_state=~"used|free"')
    # the in-process alias has no labels: drop the filesystem's (job, instance... stay)
    by = (
        "sum without (system_device, system_filesystem_mode, system_filesystem_mountpoint,"
        " system_filesystem_state, system_filesystem_type)"
    )
    return (
        f"(100 * {by} (system_filesystem_usage_bytes{used})"
        f" / {by} (system_filesystem_usage_bytes{total}))"
    )


class _Red:
    """The RED aliases of one selector over one histogram and window."""

    def __init__(
        self, http: HttpHistogram, matchers: Sequence[LabelMatcher], names: LabelNamer
    ) -> None:
        self.http = http
        renamed = {"route": http.route, "method": http.method}
        self.names: LabelNamer = lambda label: renamed.get(label, names(label))
        self.matchers = matchers
        # the all-routes series has no route/method labels: in process a matcher on them
        # decides only whether it is included, never which requests it sums
        self.total_matchers = [m for m in matchers if m.name not in ("route", "method")]
        self.with_total = all(_accepts_empty(m) for m in matchers if m.name in ("route", "method"))
        self.window = format_duration(RED_WINDOW)
        self.five_xx = f'{http.status}=~"5.."'

    def series(self, suffix: str, *extra: str, total: bool = False) -> str:
        """The histogram's ``suffix`` series over the window (``total``: for the all-routes sum)."""
        sel = _matchers(self.total_matchers if total else self.matchers, self.names, *extra)
        return f"{self.http.name}_{suffix}{sel}[{self.window}]"

    def by_route(self, inner: str, *keep: str) -> str:
        """``inner`` summed per route and method, its labels renamed to ``route``/``method``."""
        http = self.http
        renamed = (
            f'label_replace(label_replace({inner}, "route", "$1", "{http.route}", "(.*)"),'
            f' "method", "$1", "{http.method}", "(.*)")'
        )
        return f"sum by ({', '.join((*keep, 'route', 'method'))}) ({renamed})"

    def both(self, per_route: str, total: str) -> str:
        """Per-route series, plus the all-routes one when the matchers allow it."""
        return f"(({per_route}) or ({total}))" if self.with_total else f"({per_route})"

    def count(self, func: str, errors: bool) -> str:
        all_requests = f"{func}({self.series('count')})"
        all_total = f"{func}({self.series('count', total=True)})"
        if not errors:
            return self.both(self.by_route(all_requests), f"sum({all_total})")
        failed = f"{func}({self.series('count', self.five_xx)})"
        failed_total = f"{func}({self.series('count', self.five_xx, total=True)})"
        # no 5xx at all gives no series: "or 0 * all" makes that a 0, as in process
        return self.both(
            f"{self.by_route(failed)} or 0 * {self.by_route(all_requests)}",
            f"sum({failed_total}) or 0 * sum({all_total})",
        )

    def ratio(self) -> str:
        failed = f"rate({self.series('count', self.five_xx)})"
        everything = f"rate({self.series('count')})"
        per_route = (
            f"({self.by_route(failed)} or 0 * {self.by_route(everything)})"
            f" / {self.by_route(everything)}"
        )
        failed_total = f"rate({self.series('count', self.five_xx, total=True)})"
        everything_total = f"rate({self.series('count', total=True)})"
        total = f"(sum({failed_total}) or 0 * sum({everything_total})) / sum({everything_total})"
        return self.both(per_route, total)

    def quantile(self, q: str) -> str:
        buckets = f"rate({self.series('bucket')})"
        scale = self.http.seconds_per_unit
        per_route = f"histogram_quantile({q}, {self.by_route(buckets, 'le')})"
        buckets_total = f"rate({self.series('bucket', total=True)})"
        total = f"histogram_quantile({q}, sum by (le) ({buckets_total}))"
        if scale != 1.0:
            factor = f"{1 / scale:g}"
            per_route, total = f"{per_route} / {factor}", f"{total} / {factor}"
        return self.both(per_route, total)


def alias_promql(
    alias: str,
    matchers: Sequence[LabelMatcher],
    names: LabelNamer,
    http: HttpHistogram = HTTP_DEFAULT,
) -> str | None:
    """PromQL computing ``alias{matchers}`` from the exposed metrics, or None if not an alias.

    The text is a function call or parenthesised, so it can stand wherever a selector can
    (as an operand, or in a subquery ``(...)[5m:]``). ``names`` sanitises label names.
    """
    if alias == "cpu_usage":
        return _cpu(matchers, names)
    if alias == "memory_usage":
        return _memory(matchers, names)
    if alias == "disk_usage":
        return _disk(matchers, names)
    red = _Red(http, matchers, names)
    if alias == "request_rate":
        return red.count("rate", errors=False)
    if alias == "request_count":
        return red.count("increase", errors=False)
    if alias == "error_count":
        return red.count("increase", errors=True)
    if alias == "error_rate":
        return red.ratio()
    quantiles = {"latency_p50": "0.5", "latency_p95": "0.95", "latency_p99": "0.99"}
    if alias in quantiles:
        return red.quantile(quantiles[alias])
    return None
