"""The seed's percent aliases ``cpu_usage``, ``memory_usage`` and ``disk_usage``, defined once.

``get_current_metrics()`` computes them from an SDK collection and the alerting pipeline from
the series store; both call these functions so the dashboard and the rules always agree.

* ``cpu_usage``: ``100 * (1 - idle share)`` of ``system.cpu.utilization`` (mean over CPUs
  when the points are per CPU).
* ``memory_usage``: ``100 *`` ``system.memory.utilization`` of state ``used``.
* ``disk_usage``: of the ``/`` filesystem, or the largest one if ``/`` is absent,
  ``100 * used / (used + free)`` from ``system.filesystem.usage``: what ``df`` and
  ``psutil.disk_usage().percent`` show (blocks reserved for root are left out, whereas the
  ``used`` utilization counts them in the total).

Both the current semantic-convention attribute names and the older ones (``state``,
``mountpoint``, as contrib's system-metrics instrumentation uses) are understood. A value is
``None`` (left out) when its data is missing, never a misleading 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from opentelemetry.sdk.metrics.export import MetricsData, NumberDataPoint

Point = tuple[Mapping[str, object], float]
"""One data point as these functions read it: its attributes and its value."""

CPU_MODE_KEYS = ("cpu.mode", "system.cpu.state", "state")
MEMORY_STATE_KEYS = ("system.memory.state", "state")
FS_MOUNT_KEYS = ("system.filesystem.mountpoint", "mountpoint")
FS_STATE_KEYS = ("system.filesystem.state", "state")
SOURCES = {
    "cpu_usage": "system.cpu.utilization",
    "memory_usage": "system.memory.utilization",
    "disk_usage": "system.filesystem.usage",
}
"""Alias -> the metric it is computed from."""


def _first(attributes: Mapping[str, object], keys: Sequence[str]) -> str:
    for key in keys:
        value = attributes.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def cpu_percent(points: Iterable[Point]) -> float | None:
    """CPU busy percent from ``system.cpu.utilization`` points (fractions).

    With a mode attribute, busy = 1 - the mean idle fraction over CPUs; without one the points
    are taken to be busy fractions already and averaged.
    """
    idle: list[float] = []
    plain: list[float] = []
    for attributes, value in points:
        mode = _first(attributes, CPU_MODE_KEYS)
        if mode == "idle":
            idle.append(value)
        elif not mode:
            plain.append(value)
    if idle:
        return max(0.0, min(100.0, 100.0 * (1.0 - sum(idle) / len(idle))))
    if plain:
        return 100.0 * sum(plain) / len(plain)
    return None


def memory_percent(points: Iterable[Point]) -> float | None:
    """Used-memory percent from ``system.memory.utilization`` points (fractions)."""
    for attributes, value in points:
        if _first(attributes, MEMORY_STATE_KEYS) in ("used", ""):
            return 100.0 * value
    return None


def disk_percent(points: Iterable[Point], mountpoint: str | None = None) -> float | None:
    """Used-space percent (as df shows it) from ``system.filesystem.usage`` points (bytes).

    ``mountpoint`` chooses the filesystem; by default ``/``, or the largest one without it.
    """
    by_mount: dict[str, dict[str, float]] = {}
    for attributes, value in points:
        mount = _first(attributes, FS_MOUNT_KEYS)
        state = _first(attributes, FS_STATE_KEYS)
        by_mount.setdefault(mount, {})[state] = by_mount.get(mount, {}).get(state, 0.0) + value
    if mountpoint is None:
        if "/" in by_mount:
            mountpoint = "/"
        elif by_mount:
            mountpoint = max(by_mount, key=lambda m: sum(by_mount[m].values()))
    states = by_mount.get(mountpoint or "")
    if not states:
        return None
    used, free = states.get("used", 0.0), states.get("free", 0.0)
    return 100.0 * used / (used + free) if used + free > 0 else None


def percent_aliases(points: Mapping[str, Iterable[Point]]) -> dict[str, float]:
    """The three aliases from the points of their source metrics (see :data:`SOURCES`)."""
    aliases: dict[str, float] = {}
    for alias, compute in (
        ("cpu_usage", cpu_percent),
        ("memory_usage", memory_percent),
        ("disk_usage", disk_percent),
    ):
        value = compute(points.get(SOURCES[alias], ()))
        if value is not None:
            aliases[alias] = value
    return aliases


def seed_aliases(metrics_data: MetricsData) -> dict[str, float]:
    """The aliases from one SDK collection (what ``get_current_metrics()`` shows)."""
    wanted = set(SOURCES.values())
    points: dict[str, list[Point]] = {}
    for rm in metrics_data.resource_metrics:
        for scope in rm.scope_metrics:
            for metric in scope.metrics:
                if metric.name in wanted:
                    points.setdefault(metric.name, []).extend(
                        (p.attributes or {}, float(p.value))
                        for p in metric.data.data_points
                        if isinstance(p, NumberDataPoint)
                    )
    return percent_aliases(points)
