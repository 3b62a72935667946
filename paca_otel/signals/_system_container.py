"""The ``container.*`` gauges that ``SystemMetrics`` registers, from cgroup v2.

Why a module of its own: which of these instruments exist is decided by the cgroup at set-up
(a limit of ``max`` registers no utilisation; no cgroup v2, as on v1 hosts and macOS, registers
none), and their CPU rate has a baseline of its own, apart from the host's and the process's.
:mod:`paca_otel.signals._cgroup` reads the files; this module turns a read into observations.

Instruments (observable; G gauge, U up-down counter), none with attributes:
``container.cpu.usage`` (G, {cpu}) and ``container.memory.usage`` / ``.working_set`` (U, By)
are semantic conventions; ``container.cpu.utilization`` (G, 1: CPUs used / ``cpu.max``
quota) and ``container.memory.utilization`` (G, 1: working set / ``memory.max``, what the OOM
killer and kubelet eviction act on) are paca-otel names, registered only when the limit is
not ``max``.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.metrics import (
    Asynchronous,
    ObservableGauge,
    ObservableUpDownCounter,
    Observation,
)
from opentelemetry.semconv._incubating.metrics import container_metrics as cm

from paca_otel.signals._cgroup import CgroupSample, CgroupV2

__all__ = [
    "CONTAINER_CPU_UTILIZATION",
    "CONTAINER_MEMORY_UTILIZATION",
    "ContainerGauges",
    "container_specs",
]

CONTAINER_CPU_UTILIZATION: Final = "container.cpu.utilization"
CONTAINER_MEMORY_UTILIZATION: Final = "container.memory.utilization"

_GAUGE, _UPDOWN = ObservableGauge, ObservableUpDownCounter

# (instrument name, kind, unit, description)
_CONTAINER_CPU_SPECS: Final = (
    (cm.CONTAINER_CPU_USAGE, _GAUGE, "{cpu}", "CPUs used by the container's cgroup."),
)
_CONTAINER_CPU_LIMIT_SPECS: Final = (
    (CONTAINER_CPU_UTILIZATION, _GAUGE, "1", "Container CPU use against its cpu.max quota."),
)
_CONTAINER_MEMORY_SPECS: Final = (
    (cm.CONTAINER_MEMORY_USAGE, _UPDOWN, "By", "Memory charged to the container."),
    (cm.CONTAINER_MEMORY_WORKING_SET, _UPDOWN, "By", "Container memory minus inactive cache."),
)
_CONTAINER_MEMORY_LIMIT_SPECS: Final = (
    (CONTAINER_MEMORY_UTILIZATION, _GAUGE, "1", "Container working set against memory.max."),
)


def container_specs(
    cgroup: CgroupSample | None,
) -> list[tuple[str, type[Asynchronous], str, str]]:
    """The container instruments to register: only for what this cgroup exposes."""
    specs: list[tuple[str, type[Asynchronous], str, str]] = []
    if cgroup is not None:
        if cgroup.cpu_usage_seconds is not None:
            specs.extend(_CONTAINER_CPU_SPECS)
            if cgroup.cpu_limit is not None:
                specs.extend(_CONTAINER_CPU_LIMIT_SPECS)
        if cgroup.memory_current is not None:
            specs.extend(_CONTAINER_MEMORY_SPECS)
            if cgroup.memory_limit is not None:
                specs.extend(_CONTAINER_MEMORY_LIMIT_SPECS)
    return specs


class ContainerGauges:
    """Turns one read of this process's cgroup v2 into ``container.*`` observations.

    Args:
        cgroup_root: The cgroup v2 mount to read container limits from.
        min_interval: Seconds between reads below which the CPU rate is not recomputed (the
            previous one is repeated rather than noise divided by almost nothing).
    """

    def __init__(self, cgroup_root: str, min_interval: float) -> None:
        self._cgroup = CgroupV2(cgroup_root)
        self._min_interval = min_interval
        self._prev: tuple[float, float] | None = None
        self._cpu_last: float | None = None

    def prime(self, now: float) -> CgroupSample | None:
        """Read the cgroup once at set-up: the instruments to register, and the CPU baseline.

        ``None`` where there is no cgroup v2 to read.
        """
        sample = self._cgroup.sample() if self._cgroup.available else None
        if sample is not None and sample.cpu_usage_seconds is not None:
            self._prev = (sample.cpu_usage_seconds, now)
        return sample

    def observe(self, out: dict[str, list[Observation]], now: float) -> None:
        """Read the cgroup and add its ``container.*`` observations to ``out``."""
        s = self._cgroup.sample()
        if s.cpu_usage_seconds is not None:
            cores: float | None = self._cpu_last
            prev = self._prev
            if prev is None or s.cpu_usage_seconds < prev[0]:
                self._prev = (s.cpu_usage_seconds, now)
            elif now - prev[1] >= self._min_interval:
                cores = (s.cpu_usage_seconds - prev[0]) / (now - prev[1])
                self._prev = (s.cpu_usage_seconds, now)
                self._cpu_last = cores
            if cores is not None:
                out[cm.CONTAINER_CPU_USAGE] = [Observation(cores)]
                if s.cpu_limit:
                    out[CONTAINER_CPU_UTILIZATION] = [Observation(cores / s.cpu_limit)]
        if s.memory_current is not None:
            out[cm.CONTAINER_MEMORY_USAGE] = [Observation(s.memory_current)]
            if s.memory_working_set is not None:
                out[cm.CONTAINER_MEMORY_WORKING_SET] = [Observation(s.memory_working_set)]
                if s.memory_limit:
                    out[CONTAINER_MEMORY_UTILIZATION] = [
                        Observation(s.memory_working_set / s.memory_limit)
                    ]
