"""The ``process.*`` and ``cpython.gc.*`` gauges that ``SystemMetrics`` registers.

Why a module of its own: the host gauges read counters that only grow until the next boot,
while the process has a baseline of its own that ``fork`` resets (a new pid, CPU seconds back
near zero) and that must be re-primed rather than differenced. Keeping that baseline and its
rules here keeps them apart from the host's, and the host module to the host.

Instruments (observable; G gauge, C counter, U up-down counter), by attribute set:

* ``cpu.mode`` (user, system): process.cpu.utilization (G, 1), process.cpu.time (C, s);
  ``process.context_switch.type``: process.context_switches (C, {context_switch}).
* none: process.memory.usage, process.memory.virtual (U, By), process.thread.count
  (U, {thread}), process.unix.file_descriptor.count (U, {file_descriptor}).
* ``cpython.gc.generation``: cpython.gc.collections (C, {collection}),
  cpython.gc.collected_objects and cpython.gc.uncollectable_objects (C, {object}).

``process.cpu.utilization`` is per available CPU (affinity), over the time since the previous
collection; the first one, and the first after a fork, is the average since the process
started instead of a meaningless 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from opentelemetry.metrics import (
    Asynchronous,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    Observation,
)
from opentelemetry.semconv._incubating.attributes.cpu_attributes import CPU_MODE
from opentelemetry.semconv._incubating.attributes.cpython_attributes import CPYTHON_GC_GENERATION
from opentelemetry.semconv._incubating.attributes.process_attributes import (
    PROCESS_CONTEXT_SWITCH_TYPE,
)
from opentelemetry.semconv._incubating.metrics import cpython_metrics as gm
from opentelemetry.semconv._incubating.metrics import process_metrics as pm
from opentelemetry.util.types import Attributes

from paca_otel.signals._system_source import SystemSource
from paca_otel.signals._system_stats import ProcessStats

__all__ = ["PROCESS_SPECS", "ProcessGauges"]

_GAUGE, _COUNTER, _UPDOWN = ObservableGauge, ObservableCounter, ObservableUpDownCounter

# (instrument name, kind, unit, description)
PROCESS_SPECS: Final[tuple[tuple[str, type[Asynchronous], str, str], ...]] = (
    (pm.PROCESS_CPU_UTILIZATION, _GAUGE, "1", "CPU time of this process per available CPU."),
    (pm.PROCESS_CPU_TIME, _COUNTER, "s", "CPU seconds of this process by mode."),
    (pm.PROCESS_CONTEXT_SWITCHES, _COUNTER, "{context_switch}", "Context switches by type."),
    (pm.PROCESS_MEMORY_USAGE, _UPDOWN, "By", "Resident memory of this process."),
    (pm.PROCESS_MEMORY_VIRTUAL, _UPDOWN, "By", "Virtual memory of this process."),
    (pm.PROCESS_THREAD_COUNT, _UPDOWN, "{thread}", "Threads of this process."),
    (pm.PROCESS_UNIX_FILE_DESCRIPTOR_COUNT, _UPDOWN, "{file_descriptor}", "Open descriptors."),
    (gm.CPYTHON_GC_COLLECTIONS, _COUNTER, "{collection}", "Collections per GC generation."),
    (gm.CPYTHON_GC_COLLECTED_OBJECTS, _COUNTER, "{object}", "Objects collected per generation."),
    (gm.CPYTHON_GC_UNCOLLECTABLE_OBJECTS, _COUNTER, "{object}", "Uncollectable objects found."),
)

_PROC_USER: Final = {CPU_MODE: "user"}
_PROC_SYSTEM: Final = {CPU_MODE: "system"}
_VOLUNTARY: Final = {PROCESS_CONTEXT_SWITCH_TYPE: "voluntary"}
_INVOLUNTARY: Final = {PROCESS_CONTEXT_SWITCH_TYPE: "involuntary"}


class ProcessGauges:
    """Turns one :meth:`SystemSource.process` and ``gc_stats`` read into observations.

    Args:
        source: The collection's source (shared with the host gauges).
        attributes: The owner's attribute cache (``key, value, ...`` -> one shared set).
        min_interval: Seconds between samples below which CPU counters have not moved: the
            previous utilisation is repeated rather than noise divided by almost nothing.
    """

    def __init__(
        self,
        source: SystemSource,
        attributes: Callable[..., Attributes],
        min_interval: float,
    ) -> None:
        self._source = source
        self._a = attributes
        self._min_interval = min_interval
        self._prev: tuple[ProcessStats, float] | None = None
        self._last: tuple[float, float] | None = None

    def prime(self, now: float) -> None:
        """Take the baseline the first collection computes its CPU deltas against."""
        self._prev = (self._source.process(), now)

    def observe(self, out: dict[str, list[Observation]], now: float) -> None:
        """Add the ``process.*`` observations of a new process sample to ``out``."""
        min_interval = self._min_interval
        p = self._source.process()
        ncpu = max(self._source.cpu_count(), 1)
        prev, prev_at = self._prev or (p, now)
        elapsed = now - prev_at
        restarted = (
            p.pid != prev.pid or p.cpu_user < prev.cpu_user or p.cpu_system < prev.cpu_system
        )
        if restarted or (elapsed < min_interval and self._last is None):
            # A new process (fork) or no time elapsed yet: the average since it started.
            span = max(p.uptime, min_interval) * ncpu
            user, system = p.cpu_user / span, p.cpu_system / span
            self._prev = (p, now)
        elif elapsed < min_interval and self._last is not None:
            user, system = self._last
        else:
            span = elapsed * ncpu
            user = (p.cpu_user - prev.cpu_user) / span
            system = (p.cpu_system - prev.cpu_system) / span
            self._prev = (p, now)
        user, system = min(max(user, 0.0), 1.0), min(max(system, 0.0), 1.0)
        self._last = (user, system)
        out[pm.PROCESS_CPU_UTILIZATION] = [
            Observation(user, _PROC_USER),
            Observation(system, _PROC_SYSTEM),
        ]
        out[pm.PROCESS_CPU_TIME] = [
            Observation(p.cpu_user, _PROC_USER),
            Observation(p.cpu_system, _PROC_SYSTEM),
        ]
        out[pm.PROCESS_CONTEXT_SWITCHES] = [
            Observation(p.voluntary_switches, _VOLUNTARY),
            Observation(p.involuntary_switches, _INVOLUNTARY),
        ]
        out[pm.PROCESS_MEMORY_USAGE] = [Observation(p.rss)]
        out[pm.PROCESS_MEMORY_VIRTUAL] = [Observation(p.vms)]
        out[pm.PROCESS_THREAD_COUNT] = [Observation(p.threads)]
        if p.fds is not None:
            out[pm.PROCESS_UNIX_FILE_DESCRIPTOR_COUNT] = [Observation(p.fds)]

    def observe_gc(self, out: dict[str, list[Observation]]) -> None:
        """Add the ``cpython.gc.*`` observations, one attribute set per generation."""
        collections: list[Observation] = []
        collected: list[Observation] = []
        uncollectable: list[Observation] = []
        for gen, g in enumerate(self._source.gc_stats()):
            attrs = self._a(CPYTHON_GC_GENERATION, gen)
            collections.append(Observation(g.collections, attrs))
            collected.append(Observation(g.collected, attrs))
            uncollectable.append(Observation(g.uncollectable, attrs))
        out[gm.CPYTHON_GC_COLLECTIONS] = collections
        out[gm.CPYTHON_GC_COLLECTED_OBJECTS] = collected
        out[gm.CPYTHON_GC_UNCOLLECTABLE_OBJECTS] = uncollectable
