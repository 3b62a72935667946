"""Friendly alias series (``cpu_usage``, ``error_rate``...) derived from the raw ones.

Rule authors should not need to know that CPU busy-ness is ``100 * (1 - idle)`` over
``system.cpu.utilization`` or which attribute names the current semantic conventions use.
Each collection, this module reads what the metric reader just wrote and the RED span
processor's figures, and writes the aliases listed in :data:`ALIASES` into the store.
The system aliases' formulas are shared with ``get_current_metrics()``
(:mod:`paca_otel.signals._system_aliases`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from paca_otel.pipeline._store import Labels, SeriesStore
from paca_otel.signals._system_aliases import SOURCES, percent_aliases

if TYPE_CHECKING:
    from paca_otel.pipeline._spans import REDStats

ALIASES: dict[str, str] = {
    "cpu_usage": "CPU busy time of the host, percent (100 × (1 − idle) of system.cpu.utilization).",
    "memory_usage": "Used memory of the host, percent (system.memory.utilization, state used).",
    "disk_usage": "Used space of / (or the largest filesystem), percent, as df shows it.",
    "request_rate": "Requests per second over the RED window; labels route, method (none = all).",
    "error_rate": "Share of requests that failed (5xx or status ERROR), 0..1, over the window.",
    "request_count": "Requests finished during the RED window (not cumulative).",
    "error_count": "Failed requests during the RED window (not cumulative).",
    "latency_p50": "Median request duration over the window, seconds.",
    "latency_p95": "95th-percentile request duration over the window, seconds.",
    "latency_p99": "99th-percentile request duration over the window, seconds.",
}
"""Alias name -> one-line meaning (the README's table is generated from this)."""

UNITS: dict[str, str] = {
    "cpu_usage": "%",
    "memory_usage": "%",
    "disk_usage": "%",
    "request_rate": "/s",
    "error_rate": "ratio",
    "request_count": "requests",
    "error_count": "requests",
    "latency_p50": "s",
    "latency_p95": "s",
    "latency_p99": "s",
}
"""Alias name -> the unit its value is in (what ``str(snapshot)`` prints beside it)."""

RED_ALIASES: tuple[str, ...] = tuple(name for name in ALIASES if name not in SOURCES)
"""The aliases computed from the RED span processor's figures, in table order."""

_NO_LABELS: Labels = ()


def write_system(store: SeriesStore, now: float) -> int:
    """Write ``cpu_usage``, ``memory_usage`` and ``disk_usage`` from this collection's gauges.

    The formulas live in :mod:`paca_otel.signals._system_aliases`, shared with
    ``get_current_metrics()``; only points written at exactly ``now`` count (nothing stale).

    Returns:
        How many aliases were written (an alias is skipped when its source is missing).
    """
    points = {
        source: [
            (dict(labels), value) for labels, value in store.latest(source, at=now, lookback=0.0)
        ]
        for source in SOURCES.values()
    }
    aliases = percent_aliases(points)
    for alias, value in aliases.items():
        store.append(alias, _NO_LABELS, value, now)
    return len(aliases)


def red_labels(stats: REDStats) -> Labels:
    """``route`` and ``method`` labels of one RED figure; none for the all-routes figure."""
    labels: list[tuple[str, str]] = []
    if stats.method:
        labels.append(("method", stats.method))
    if stats.route is not None:
        labels.append(("route", stats.route))
    return tuple(labels)  # already sorted: "method" < "route"


def red_values(figure: REDStats) -> dict[str, float | None]:
    """The RED aliases of one figure (``None``: no value, e.g. latency without requests).

    Shared by the rules' series and ``get_current_metrics()``, so both show the same numbers.
    """
    values = (
        figure.rate,
        figure.error_ratio,
        float(figure.requests),
        float(figure.errors),
        figure.p50,
        figure.p95,
        figure.p99,
    )
    return dict(zip(RED_ALIASES, values, strict=True))


def write_red(store: SeriesStore, stats: Iterable[REDStats], now: float) -> int:
    """Write the request/error/latency aliases for every RED figure; return points written."""
    written = 0
    for figure in stats:
        labels = red_labels(figure)
        for name, value in red_values(figure).items():
            if value is not None:
                store.append(name, labels, value, now)
                written += 1
            else:  # no requests in the window: the last latency must not linger
                store.mark_stale(name, labels, now)
    return written
