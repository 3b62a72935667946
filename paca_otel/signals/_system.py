"""System, process and container gauges as OpenTelemetry observable instruments.

One responsibility: turn one :class:`~paca_otel.signals._system_source.SystemSource` snapshot
per collection into semantic-convention observations. All callbacks share that snapshot
(contrib's ``SystemMetricsInstrumentor`` calls psutil once per callback); utilisations are
computed from deltas between snapshots, so they are what happened *since the last
collection*, not since boot.

Instruments (observable; G gauge, C counter, U up-down counter), by attribute set:

* ``cpu.mode`` [+ ``cpu.logical_number`` with ``per_cpu``]: system.cpu.utilization (G, 1),
  system.cpu.time (C, s).
* ``system.memory.state`` / ``system.paging.state``: system.memory.usage, system.paging.usage
  (U, By); system.memory.utilization, system.paging.utilization (G, 1).
* ``system.device`` + ``disk.io.direction``: system.disk.io (C, By), system.disk.operations
  (C, {operation}), system.disk.operation_time (C, s); ``system.device`` only:
  system.disk.io_time (C, s).
* ``system.device``, ``system.filesystem.mountpoint`` / ``.type`` / ``.state``:
  system.filesystem.usage (U, By), system.filesystem.utilization (G, 1).
* ``network.interface.name`` + ``network.io.direction``: system.network.io (C, By),
  system.network.errors (C, {error}), system.network.packet.count and
  system.network.packet.dropped (C, {packet}).
* ``network.transport`` [+ ``network.connection.state``]: system.network.connection.count
  (U, {connection}), opt-in.
* ``process.*`` and ``cpython.gc.*``: see :mod:`paca_otel.signals._system_process`;
  ``container.*`` (cgroup v2): see :mod:`paca_otel.signals._system_container`. They share
  this module's snapshot and attribute cache.

Notes on choices:

* ``system.cpu.utilization`` is the share of CPU time in each mode over all CPUs (0..1, the
  modes sum to 1). With ``per_cpu=True`` it is reported per logical CPU *instead* (so sums
  over attributes stay meaningful). ``irq`` and ``softirq`` are folded into ``interrupt``.
* ``system.memory.state=used`` is ``total - available``, as psutil and ``free`` compute it.
* ``system.filesystem.state`` includes ``reserved`` (root-only blocks), so states sum to total.
* ``system.network.connection.count`` (the current name of the deprecated
  ``system.network.connections``) is opt-in: ``connections=True``. Counted through netlink
  on Linux (~0.5 ms); psutil elsewhere costs ~10 ms or more per collection.

CPU utilisation is always measured over at least :data:`CPU_WINDOW` (100 ms) of wall time:
the first CPU sample is taken at construction, and a first collection that comes sooner waits
out the rest of that window (at most 100 ms, once, on the collecting thread: never the event
loop, as ``get_current_metrics()`` and the API collect in a worker thread). So the first
``cpu_usage`` after ``start()`` is a real measurement, not the average since boot, nor 0 or 100
from a single clock tick. A later collection that comes within the window of the previous
measurement repeats it. After ``fork`` the child rebuilds its process handle and re-primes,
and drops any snapshot it inherited from the parent.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from opentelemetry import metrics
from opentelemetry.metrics import (
    Asynchronous,
    CallbackOptions,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    Observation,
)
from opentelemetry.sdk.metrics import Exemplar, ExemplarReservoir
from opentelemetry.sdk.metrics.view import View
from opentelemetry.semconv._incubating.attributes.cpu_attributes import CPU_LOGICAL_NUMBER, CPU_MODE
from opentelemetry.semconv._incubating.attributes.disk_attributes import DISK_IO_DIRECTION
from opentelemetry.semconv._incubating.attributes.network_attributes import (
    NETWORK_CONNECTION_STATE,
    NETWORK_INTERFACE_NAME,
    NETWORK_IO_DIRECTION,
    NETWORK_TRANSPORT,
)
from opentelemetry.semconv._incubating.attributes.system_attributes import (
    SYSTEM_DEVICE,
    SYSTEM_FILESYSTEM_MOUNTPOINT,
    SYSTEM_FILESYSTEM_STATE,
    SYSTEM_FILESYSTEM_TYPE,
    SYSTEM_MEMORY_STATE,
    SYSTEM_PAGING_STATE,
)
from opentelemetry.semconv._incubating.metrics import system_metrics as sm
from opentelemetry.util.types import Attributes

from paca_otel._internal import handle_internal_errors
from paca_otel._version import __version__
from paca_otel.errors import ConfigError
from paca_otel.signals._cgroup import CgroupSample
from paca_otel.signals._system_container import ContainerGauges, container_specs
from paca_otel.signals._system_process import PROCESS_SPECS, ProcessGauges
from paca_otel.signals._system_source import PsutilSource, SystemSource

SYSTEM_METER: Final = "paca_otel.system"
"""The meter (instrumentation scope) every system gauge is registered on."""

__all__ = ["SystemMetrics"]

# Below this many seconds between snapshots, counters have not moved (10 ms clock ticks):
# keep the previous value rather than divide noise by almost nothing.
_MIN_INTERVAL: Final = 0.05

CPU_WINDOW: Final = 0.1
"""Seconds of wall time every CPU utilisation is measured over, at least (10 clock ticks)."""

_GAUGE, _COUNTER, _UPDOWN = ObservableGauge, ObservableCounter, ObservableUpDownCounter

# (instrument name, kind, unit, description)
_SYSTEM_SPECS: Final[tuple[tuple[str, type[Asynchronous], str, str], ...]] = (
    (sm.SYSTEM_CPU_UTILIZATION, _GAUGE, "1", "Share of CPU time in each mode."),
    (sm.SYSTEM_CPU_TIME, _COUNTER, "s", "CPU seconds in each mode."),
    (sm.SYSTEM_MEMORY_USAGE, _UPDOWN, "By", "Physical memory by state."),
    (sm.SYSTEM_MEMORY_UTILIZATION, _GAUGE, "1", "Share of physical memory in each state."),
    (sm.SYSTEM_PAGING_USAGE, _UPDOWN, "By", "Swap space by state."),
    (sm.SYSTEM_PAGING_UTILIZATION, _GAUGE, "1", "Share of swap space in each state."),
    (sm.SYSTEM_DISK_IO, _COUNTER, "By", "Bytes read and written by each block device."),
    (sm.SYSTEM_DISK_OPERATIONS, _COUNTER, "{operation}", "Reads and writes by each device."),
    (sm.SYSTEM_DISK_OPERATION_TIME, _COUNTER, "s", "Time reads and writes took, summed."),
    (sm.SYSTEM_DISK_IO_TIME, _COUNTER, "s", "Wall-clock time each device was busy."),
    (sm.SYSTEM_FILESYSTEM_USAGE, _UPDOWN, "By", "Filesystem space by state."),
    (sm.SYSTEM_FILESYSTEM_UTILIZATION, _GAUGE, "1", "Share of filesystem space in each state."),
    (sm.SYSTEM_NETWORK_IO, _COUNTER, "By", "Bytes transmitted and received by each interface."),
    (sm.SYSTEM_NETWORK_ERRORS, _COUNTER, "{error}", "Errors seen by each interface."),
    (sm.SYSTEM_NETWORK_PACKET_COUNT, _COUNTER, "{packet}", "Packets sent and received."),
    (sm.SYSTEM_NETWORK_PACKET_DROPPED, _COUNTER, "{packet}", "Packets dropped without error."),
)
_CONNECTION_SPEC: Final = (
    (sm.SYSTEM_NETWORK_CONNECTION_COUNT, _UPDOWN, "{connection}", "Inet connections by state."),
)
_Observations = dict[str, list[Observation]]
_Callback = Callable[[CallbackOptions], Iterable[Observation]]

_instances: weakref.WeakSet[SystemMetrics] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Give every live instance a fresh lock and forget the parent's snapshot.

    A lock held by another thread at fork time would stay locked forever in the child.
    """
    for inst in list(_instances):
        inst._lock = threading.Lock()
        inst._view = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# (cumulative times at the last real delta, the shares computed then)
_CpuState = tuple[dict[str, float], dict[str, float]]


def _step(state: _CpuState, cur: Mapping[str, float]) -> tuple[dict[str, float], _CpuState]:
    """Shares since the previous sample, and the state to keep for the next one.

    If no CPU time elapsed (collected too soon) the previous shares are repeated, or, the
    first time, the shares since boot: never a spurious 0.
    """
    prev, last = state
    shares, total = _shares(prev, cur)
    if total > 0:
        return shares, (dict(cur), shares)
    # counters did not move even over the window: only a frozen or fake source does that
    return (last or _cumulative_shares(cur)), state


def _shares(prev: Mapping[str, float], cur: Mapping[str, float]) -> tuple[dict[str, float], float]:
    """Share of each mode in the CPU time elapsed between two cumulative samples."""
    deltas = {mode: max(value - prev.get(mode, 0.0), 0.0) for mode, value in cur.items()}
    total = sum(deltas.values())
    if total <= 0:
        return {}, 0.0
    return {mode: d / total for mode, d in deltas.items()}, total


def _cumulative_shares(cur: Mapping[str, float]) -> dict[str, float]:
    """Shares since boot: the best first answer when no time has elapsed yet."""
    total = sum(cur.values())
    return {mode: v / total for mode, v in cur.items()} if total > 0 else {}


def _specs(
    connections: bool, cgroup: CgroupSample | None
) -> list[tuple[str, type[Asynchronous], str, str]]:
    """The instruments to register: container ones only for what this cgroup exposes."""
    return [
        *_SYSTEM_SPECS,
        *(_CONNECTION_SPEC if connections else ()),
        *PROCESS_SPECS,
        *container_specs(cgroup),
    ]


class _View:
    """One collection's observations, built once and handed to every callback."""

    __slots__ = ("observations", "pid", "taken")

    def __init__(self, taken: float, pid: int, observations: _Observations) -> None:
        self.taken = taken
        self.pid = pid
        self.observations = observations


class SystemMetrics:
    """Registers system, process and container gauges on a MeterProvider.

    Args:
        meter_provider: Where to register; the global provider when ``None``.
        source: Where the numbers come from; psutil when ``None``.
        per_cpu: Report ``system.cpu.utilization`` per logical CPU (``cpu.logical_number``)
            instead of the aggregate. Multiplies its data points by the CPU count.
        connections: Also report ``system.network.connection.count``: ~0.5 ms per
            collection on Linux (netlink), ~10 ms or more elsewhere (psutil).
        cgroup_root: The cgroup v2 mount to read container limits from.
        snapshot_ttl: Seconds a snapshot is shared by collections of other readers. Every
            callback of one collection shares one snapshot regardless of this.
        clock: Monotonic seconds; injectable for deterministic tests.
        cpu_window: Seconds every CPU utilisation is measured over, at least
            (:data:`CPU_WINDOW`); a first collection sooner after construction waits.
        sleep: How that wait is done (``time.sleep``); a test passes its fake clock's advance.
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        source: SystemSource | None = None,
        per_cpu: bool = False,
        connections: bool = False,
        cgroup_root: str = "/sys/fs/cgroup",
        snapshot_ttl: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        cpu_window: float = CPU_WINDOW,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not snapshot_ttl >= 0:  # also rejects NaN
            msg = f"snapshot_ttl must be >= 0 seconds, got {snapshot_ttl!r}"
            raise ConfigError(msg)
        if not 0 <= cpu_window <= 1:  # also rejects NaN
            msg = f"cpu_window must be 0..1 seconds, got {cpu_window!r}"
            raise ConfigError(msg)
        self._cpu_window = cpu_window
        self._sleep = sleep
        self._source: SystemSource = source if source is not None else PsutilSource()
        self._per_cpu = per_cpu
        self._connections = connections
        self._ttl = snapshot_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._view: _View | None = None
        self._closed = False
        self._attrs: dict[tuple[str | int, ...], Attributes] = {}

        # Prime: the first collection computes deltas against these, never against zero.
        now = clock()
        self._cpu_at = now  # when the CPU counters in self._cpu / self._percpu were read
        self._cpu_measured = False  # whether any utilisation was measured yet
        self._cpu: _CpuState = ({}, {})
        self._percpu: list[_CpuState] = []
        self._process = ProcessGauges(self._source, self._a, _MIN_INTERVAL)
        self._container = ContainerGauges(cgroup_root, _MIN_INTERVAL)
        sample: CgroupSample | None = None
        with handle_internal_errors("system_metrics.prime"):
            if per_cpu:
                self._percpu = [(dict(c), {}) for c in self._source.per_cpu_times()]
            else:
                self._cpu = (dict(self._source.cpu_times()), {})
            self._process.prime(now)
            sample = self._container.prime(now)

        specs = _specs(connections, sample)
        self._use_cgroup = sample is not None

        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter(SYSTEM_METER, __version__)
        create = {
            _GAUGE: meter.create_observable_gauge,
            _COUNTER: meter.create_observable_counter,
            _UPDOWN: meter.create_observable_up_down_counter,
        }
        self.instrument_names: tuple[str, ...] = tuple(spec[0] for spec in specs)
        for i, (name, kind, unit, description) in enumerate(specs):
            callback = self._callback(name, first=i == 0)
            create[kind](name, callbacks=[callback], unit=unit, description=description)
        _instances.add(self)

    def shutdown(self) -> None:
        """Stop reporting: callbacks return nothing from now on (instruments cannot be removed)."""
        self._closed = True
        self._view = None

    # -- collection -------------------------------------------------------------------------

    def _callback(self, name: str, *, first: bool) -> _Callback:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            view = self._current(refresh=first)
            return () if view is None else view.observations.get(name, ())

        callback.__qualname__ = f"SystemMetrics[{name}]"
        return callback

    def _current(self, *, refresh: bool) -> _View | None:
        """The shared snapshot; taken anew only by the first instrument's callback.

        The SDK runs one provider's collections one at a time and calls callbacks in
        registration order, so the first instrument opens each collection: it refreshes a
        snapshot older than the TTL, and every later callback of that collection reuses it,
        however long the collection takes. Readers collecting within the TTL share it too.
        A snapshot inherited across ``fork`` (another pid) is never reused.
        """
        if self._closed:
            return None
        now = self._clock()
        pid = os.getpid()
        view = self._view
        if view is not None and view.pid == pid and (not refresh or now - view.taken < self._ttl):
            return view
        with self._lock:
            view = self._view
            if view is None or view.pid != pid or (refresh and now - view.taken >= self._ttl):
                view = _View(now, pid, self._build(now))
                self._view = view
        return view

    def _build(self, now: float) -> _Observations:
        out: _Observations = {}
        with handle_internal_errors("system_metrics.cpu"):
            self._observe_cpu(out)
        now = max(now, self._clock())  # the first CPU measurement may have waited its window
        with handle_internal_errors("system_metrics.memory"):
            self._observe_memory(out)
        with handle_internal_errors("system_metrics.disk"):
            self._observe_disk(out)
        with handle_internal_errors("system_metrics.filesystem"):
            self._observe_filesystem(out)
        with handle_internal_errors("system_metrics.network"):
            self._observe_network(out)
        with handle_internal_errors("system_metrics.process"):
            self._process.observe(out, now)
        with handle_internal_errors("system_metrics.gc"):
            self._process.observe_gc(out)
        if self._use_cgroup:
            with handle_internal_errors("system_metrics.cgroup"):
                self._container.observe(out, now)
        return out

    def _a(self, *pairs: str | int) -> Attributes:
        """Attributes ``key, value, key, value...``, built once per distinct set and reused."""
        attrs = self._attrs.get(pairs)
        if attrs is None:
            attrs = self._attrs[pairs] = dict(zip(pairs[::2], pairs[1::2], strict=True))  # type: ignore[arg-type]  # keys are the str items
        return attrs

    def _cpu_due(self) -> bool:
        """Whether the CPU counters are read for a new measurement now (see ``cpu_window``).

        The first measurement waits until the window has passed since the priming sample; a
        later collection within the window of the last measurement repeats it instead.
        """
        elapsed = self._clock() - self._cpu_at
        if elapsed >= self._cpu_window:
            return True
        if self._cpu_measured:
            return False
        self._sleep(self._cpu_window - elapsed)
        return True

    def _observe_cpu(self, out: _Observations) -> None:
        a = self._a
        due = self._cpu_due()
        if due:
            self._cpu_at = self._clock()
            self._cpu_measured = True
        if not self._per_cpu:
            cur = self._source.cpu_times()
            if due:
                shares, self._cpu = _step(self._cpu, cur)
            else:
                shares = self._cpu[1] or _step(self._cpu, cur)[0]
            out[sm.SYSTEM_CPU_UTILIZATION] = [
                Observation(v, a(CPU_MODE, m)) for m, v in shares.items()
            ]
            out[sm.SYSTEM_CPU_TIME] = [Observation(v, a(CPU_MODE, m)) for m, v in cur.items()]
            return
        util: list[Observation] = []
        times: list[Observation] = []
        states = self._percpu
        for i, cur in enumerate(self._source.per_cpu_times()):
            prior = states[i] if i < len(states) else ({}, {})
            if due or i >= len(states):
                shares, state = _step(prior, cur)
            else:
                shares, state = prior[1] or _step(prior, cur)[0], prior
            if i < len(states):
                states[i] = state
            else:  # a CPU came online
                states.append(state)
            util.extend(
                Observation(v, a(CPU_MODE, m, CPU_LOGICAL_NUMBER, i)) for m, v in shares.items()
            )
            times.extend(
                Observation(v, a(CPU_MODE, m, CPU_LOGICAL_NUMBER, i)) for m, v in cur.items()
            )
        out[sm.SYSTEM_CPU_UTILIZATION] = util
        out[sm.SYSTEM_CPU_TIME] = times

    def _observe_memory(self, out: _Observations) -> None:
        for stats, usage, util, state_key in (
            (
                self._source.memory(),
                sm.SYSTEM_MEMORY_USAGE,
                sm.SYSTEM_MEMORY_UTILIZATION,
                SYSTEM_MEMORY_STATE,
            ),
            (
                self._source.swap(),
                sm.SYSTEM_PAGING_USAGE,
                sm.SYSTEM_PAGING_UTILIZATION,
                SYSTEM_PAGING_STATE,
            ),
        ):
            attrs = [(self._a(state_key, s), v) for s, v in stats.states.items()]
            out[usage] = [Observation(v, a) for a, v in attrs]
            if stats.total > 0:
                out[util] = [Observation(v / stats.total, a) for a, v in attrs]

    def _observe_disk(self, out: _Observations) -> None:
        io: list[Observation] = []
        ops: list[Observation] = []
        op_time: list[Observation] = []
        io_time: list[Observation] = []
        a = self._a
        for dev, c in self._source.disk_io().items():
            read = a(SYSTEM_DEVICE, dev, DISK_IO_DIRECTION, "read")
            write = a(SYSTEM_DEVICE, dev, DISK_IO_DIRECTION, "write")
            io += (Observation(c.read_bytes, read), Observation(c.write_bytes, write))
            ops += (Observation(c.read_count, read), Observation(c.write_count, write))
            op_time += (Observation(c.read_time, read), Observation(c.write_time, write))
            io_time.append(Observation(c.busy_time, a(SYSTEM_DEVICE, dev)))
        out[sm.SYSTEM_DISK_IO] = io
        out[sm.SYSTEM_DISK_OPERATIONS] = ops
        out[sm.SYSTEM_DISK_OPERATION_TIME] = op_time
        out[sm.SYSTEM_DISK_IO_TIME] = io_time

    def _observe_filesystem(self, out: _Observations) -> None:
        usage: list[Observation] = []
        util: list[Observation] = []
        for fs in self._source.filesystems():
            for state, value in (("used", fs.used), ("free", fs.free), ("reserved", fs.reserved)):
                attrs = self._a(
                    SYSTEM_DEVICE, fs.device,
                    SYSTEM_FILESYSTEM_MOUNTPOINT, fs.mountpoint,
                    SYSTEM_FILESYSTEM_TYPE, fs.fstype,
                    SYSTEM_FILESYSTEM_STATE, state,
                )  # fmt: skip
                usage.append(Observation(value, attrs))
                if fs.total > 0:
                    util.append(Observation(value / fs.total, attrs))
        out[sm.SYSTEM_FILESYSTEM_USAGE] = usage
        out[sm.SYSTEM_FILESYSTEM_UTILIZATION] = util

    def _observe_network(self, out: _Observations) -> None:
        io: list[Observation] = []
        errors: list[Observation] = []
        packets: list[Observation] = []
        dropped: list[Observation] = []
        a = self._a
        for nic, c in self._source.network_io().items():
            tx = a(NETWORK_INTERFACE_NAME, nic, NETWORK_IO_DIRECTION, "transmit")
            rx = a(NETWORK_INTERFACE_NAME, nic, NETWORK_IO_DIRECTION, "receive")
            io += (Observation(c.bytes_sent, tx), Observation(c.bytes_recv, rx))
            errors += (Observation(c.errors_out, tx), Observation(c.errors_in, rx))
            packets += (Observation(c.packets_sent, tx), Observation(c.packets_recv, rx))
            dropped += (Observation(c.dropped_out, tx), Observation(c.dropped_in, rx))
        out[sm.SYSTEM_NETWORK_IO] = io
        out[sm.SYSTEM_NETWORK_ERRORS] = errors
        out[sm.SYSTEM_NETWORK_PACKET_COUNT] = packets
        out[sm.SYSTEM_NETWORK_PACKET_DROPPED] = dropped
        if self._connections:
            out[sm.SYSTEM_NETWORK_CONNECTION_COUNT] = [
                Observation(
                    count,
                    a(NETWORK_TRANSPORT, transport, NETWORK_CONNECTION_STATE, state)
                    if state
                    else a(NETWORK_TRANSPORT, transport),
                )
                for (transport, state), count in self._source.connections().items()
            ]


class _NoExemplars(ExemplarReservoir):
    """A reservoir that keeps nothing: system gauges are observed outside any span."""

    def offer(self, value: float, time_unix_nano: int, attributes: Any, context: Any) -> None:
        return None

    def collect(self, point_attributes: Any) -> list[Exemplar]:
        return []


def _no_exemplars(aggregation: Any) -> Callable[..., ExemplarReservoir]:
    return lambda **_: _NoExemplars()


def system_views() -> list[View]:
    """Views for a MeterProvider that carries :class:`SystemMetrics` (``configure`` adds them).

    Exemplars link a measurement to the span it was taken in; callbacks of observable gauges
    run in no span, so the SDK's per-point reservoir work is pure cost (~7 % of a collection).
    """
    return [View(meter_name=SYSTEM_METER, exemplar_reservoir_factory=_no_exemplars)]
