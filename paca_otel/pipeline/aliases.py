"""Friendly alias series (``cpu_usage``, ``error_rate``...) derived from the raw ones.

Rule authors should not need to know that CPU busy-ness is ``100 * (1 - idle)`` over
``system.cpu.utilization`` or which attribute names the current semantic conventions use.
Each collection, this module reads what the metric reader just wrote and the RED span
processor's figures, and writes the aliases listed in :data:`ALIASES` into the store.
Both the current semantic-convention attribute names and the older ones (``state``,
``mountpoint``, as used by opentelemetry-instrumentation-system-metrics) are understood.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from paca_otel.pipeline.store import Labels, SeriesStore, label_value

if TYPE_CHECKING:
    from paca_otel.pipeline.spans import REDStats

ALIASES: dict[str, str] = {
    "cpu_usage": "CPU busy time of the host, percent (100 × (1 − idle) of system.cpu.utilization).",
    "memory_usage": "Used memory of the host, percent (system.memory.utilization, state used).",
    "disk_usage": "Used space of the / filesystem, percent (system.filesystem.utilization).",
    "request_rate": "Requests per second over the RED window; labels route, method (none = all).",
    "error_rate": "Share of requests that failed (5xx or status ERROR), 0..1, over the window.",
    "request_count": "Requests finished during the RED window (not cumulative).",
    "error_count": "Failed requests during the RED window (not cumulative).",
    "latency_p50": "Median request duration over the window, seconds.",
    "latency_p95": "95th-percentile request duration over the window, seconds.",
    "latency_p99": "99th-percentile request duration over the window, seconds.",
}
"""Alias name -> one-line meaning (the README's table is generated from this)."""

CPU_MODE_KEYS = ("cpu.mode", "system.cpu.state", "state")
MEMORY_STATE_KEYS = ("system.memory.state", "state")
FS_MOUNT_KEYS = ("system.filesystem.mountpoint", "mountpoint")
FS_STATE_KEYS = ("system.filesystem.state", "state")

_NO_LABELS: Labels = ()


def _first(labels: Labels, keys: Sequence[str]) -> str:
    """The value of the first of ``keys`` present in ``labels`` (``""`` if none is)."""
    for key in keys:
        value = label_value(labels, key)
        if value:
            return value
    return ""


def _fresh(store: SeriesStore, name: str, now: float) -> list[tuple[Labels, float]]:
    """The points written under ``name`` at exactly this collection (nothing stale)."""
    return store.latest(name, at=now, lookback=0.0)


def cpu_percent(points: Iterable[tuple[Labels, float]]) -> float | None:
    """CPU busy percent from ``system.cpu.utilization`` points (fractions).

    With a mode attribute, busy = 1 - the mean idle fraction over CPUs; without one the
    points are taken to be busy fractions already and averaged.
    """
    idle: list[float] = []
    plain: list[float] = []
    for labels, value in points:
        mode = _first(labels, CPU_MODE_KEYS)
        if mode == "idle":
            idle.append(value)
        elif not mode:
            plain.append(value)
    if idle:
        return max(0.0, min(100.0, 100.0 * (1.0 - sum(idle) / len(idle))))
    if plain:
        return 100.0 * sum(plain) / len(plain)
    return None


def memory_percent(points: Iterable[tuple[Labels, float]]) -> float | None:
    """Used-memory percent from ``system.memory.utilization`` points (fractions)."""
    for labels, value in points:
        if _first(labels, MEMORY_STATE_KEYS) in ("used", ""):
            return 100.0 * value
    return None


def disk_percent(points: Iterable[tuple[Labels, float]], mountpoint: str = "/") -> float | None:
    """Used-space percent of ``mountpoint`` from ``system.filesystem.utilization`` points."""
    found: list[float] = []
    for labels, value in points:
        if _first(labels, FS_MOUNT_KEYS) != mountpoint:
            continue
        if _first(labels, FS_STATE_KEYS) in ("used", ""):
            found.append(value)
    return 100.0 * max(found) if found else None


def write_system(store: SeriesStore, now: float) -> int:
    """Write ``cpu_usage``, ``memory_usage`` and ``disk_usage`` from this collection's gauges.

    Returns:
        How many aliases were written (an alias is skipped when its source is missing).
    """
    written = 0
    for alias, value in (
        ("cpu_usage", cpu_percent(_fresh(store, "system.cpu.utilization", now))),
        ("memory_usage", memory_percent(_fresh(store, "system.memory.utilization", now))),
        ("disk_usage", disk_percent(_fresh(store, "system.filesystem.utilization", now))),
    ):
        if value is not None:
            store.append(alias, _NO_LABELS, value, now)
            written += 1
    return written


def red_labels(stats: REDStats) -> Labels:
    """``route`` and ``method`` labels of one RED figure; none for the all-routes figure."""
    labels: list[tuple[str, str]] = []
    if stats.method:
        labels.append(("method", stats.method))
    if stats.route is not None:
        labels.append(("route", stats.route))
    return tuple(labels)  # already sorted: "method" < "route"


def write_red(store: SeriesStore, stats: Iterable[REDStats], now: float) -> int:
    """Write the request/error/latency aliases for every RED figure; return points written."""
    written = 0
    for figure in stats:
        labels = red_labels(figure)
        values: tuple[tuple[str, float | None], ...] = (
            ("request_rate", figure.rate),
            ("error_rate", figure.error_ratio),
            ("request_count", float(figure.requests)),
            ("error_count", float(figure.errors)),
            ("latency_p50", figure.p50),
            ("latency_p95", figure.p95),
            ("latency_p99", figure.p99),
        )
        for name, value in values:
            if value is not None:
                store.append(name, labels, value, now)
                written += 1
            else:  # no requests in the window: the last latency must not linger
                store.mark_stale(name, labels, now)
    return written
