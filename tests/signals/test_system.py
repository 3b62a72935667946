"""Tests for the system, process and container gauges (paca_otel.signals._system)."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    InMemoryMetricReader,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)

from paca_otel._internal import reset_warnings
from paca_otel.errors import ConfigError
from paca_otel.signals._cgroup import CgroupV2
from paca_otel.signals._system import CPU_WINDOW, SystemMetrics
from paca_otel.signals._system_aliases import seed_aliases
from paca_otel.signals._system_source import PsutilSource, StaticSource, SystemSource
from paca_otel.signals._system_stats import FilesystemUsage, MemoryStats, ProcessStats


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Reader(InMemoryMetricReader):
    """An in-memory reader that knows its MeterProvider."""

    provider: MeterProvider


@pytest.fixture
def reader() -> Iterator[Reader]:
    reader = Reader()
    reader.provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield reader
    reader.provider.shutdown()


@pytest.fixture
def source() -> StaticSource:
    return StaticSource()


def make(
    reader: Reader,
    source: SystemSource,
    clock: FakeClock,
    tmp_path: Path,
    **kwargs: Any,
) -> SystemMetrics:
    """SystemMetrics on the reader's provider, with no cgroup unless the test makes one."""
    kwargs.setdefault("cgroup_root", str(tmp_path / "no-cgroup"))
    kwargs.setdefault("sleep", clock.advance)
    return SystemMetrics(reader.provider, source=source, clock=clock, **kwargs)


def collect(reader: InMemoryMetricReader) -> dict[str, Metric]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }


def points(metric: Metric) -> dict[frozenset[tuple[str, Any]], float]:
    out = {}
    for p in metric.data.data_points:
        assert isinstance(p, NumberDataPoint)
        out[frozenset((p.attributes or {}).items())] = float(p.value)
    return out


def by(metric: Metric, key: str) -> dict[Any, float]:
    return {dict(k)[key]: v for k, v in points(metric).items()}


EXPECTED = {
    # name: (unit, kind, attribute keys)
    "system.cpu.utilization": ("1", Gauge, {"cpu.mode"}),
    "system.cpu.time": ("s", Sum, {"cpu.mode"}),
    "system.memory.usage": ("By", Sum, {"system.memory.state"}),
    "system.memory.utilization": ("1", Gauge, {"system.memory.state"}),
    "system.paging.usage": ("By", Sum, {"system.paging.state"}),
    "system.paging.utilization": ("1", Gauge, {"system.paging.state"}),
    "system.disk.io": ("By", Sum, {"system.device", "disk.io.direction"}),
    "system.disk.operations": ("{operation}", Sum, {"system.device", "disk.io.direction"}),
    "system.disk.operation_time": ("s", Sum, {"system.device", "disk.io.direction"}),
    "system.disk.io_time": ("s", Sum, {"system.device"}),
    "system.filesystem.usage": (
        "By",
        Sum,
        {
            "system.device",
            "system.filesystem.mountpoint",
            "system.filesystem.type",
            "system.filesystem.state",
        },
    ),
    "system.filesystem.utilization": (
        "1",
        Gauge,
        {
            "system.device",
            "system.filesystem.mountpoint",
            "system.filesystem.type",
            "system.filesystem.state",
        },
    ),
    "system.network.io": ("By", Sum, {"network.interface.name", "network.io.direction"}),
    "system.network.errors": ("{error}", Sum, {"network.interface.name", "network.io.direction"}),
    "system.network.packet.count": (
        "{packet}",
        Sum,
        {"network.interface.name", "network.io.direction"},
    ),
    "system.network.packet.dropped": (
        "{packet}",
        Sum,
        {"network.interface.name", "network.io.direction"},
    ),
    "process.cpu.utilization": ("1", Gauge, {"cpu.mode"}),
    "process.cpu.time": ("s", Sum, {"cpu.mode"}),
    "process.context_switches": ("{context_switch}", Sum, {"process.context_switch.type"}),
    "process.memory.usage": ("By", Sum, set()),
    "process.memory.virtual": ("By", Sum, set()),
    "process.thread.count": ("{thread}", Sum, set()),
    "process.unix.file_descriptor.count": ("{file_descriptor}", Sum, set()),
    "cpython.gc.collections": ("{collection}", Sum, {"cpython.gc.generation"}),
    "cpython.gc.collected_objects": ("{object}", Sum, {"cpython.gc.generation"}),
    "cpython.gc.uncollectable_objects": ("{object}", Sum, {"cpython.gc.generation"}),
}
COUNTERS = {name for name, (_, kind, _) in EXPECTED.items() if kind is Sum} - {
    "system.memory.usage",
    "system.paging.usage",
    "system.filesystem.usage",
    "process.memory.usage",
    "process.memory.virtual",
    "process.thread.count",
    "process.unix.file_descriptor.count",
}


def test_every_gauge_has_semconv_name_unit_kind_and_attributes(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """Each default instrument reports with its semconv name, unit, kind and attribute keys."""
    make(reader, source, clock, tmp_path)
    got = collect(reader)
    assert set(got) == set(EXPECTED)
    for name, (unit, kind, keys) in EXPECTED.items():
        metric = got[name]
        assert metric.unit == unit, name
        assert isinstance(metric.data, kind), name
        if isinstance(metric.data, Sum):
            assert metric.data.is_monotonic == (name in COUNTERS), name
        for p in metric.data.data_points:
            assert set((p.attributes or {}).keys()) == keys, name


def test_values_follow_the_source(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """Memory, swap, disk, filesystem, network, process and GC values map to the right points."""
    make(reader, source, clock, tmp_path)
    got = collect(reader)
    gib = 1 << 30
    assert by(got["system.memory.usage"], "system.memory.state")["used"] == 2 * gib
    assert by(got["system.memory.utilization"], "system.memory.state")["used"] == 0.25
    assert by(got["system.paging.utilization"], "system.paging.state") == {
        "used": 0.25,
        "free": 0.75,
    }
    disk = {
        (dict(k)["system.device"], dict(k)["disk.io.direction"]): v
        for k, v in points(got["system.disk.io"]).items()
    }
    assert disk == {("sda", "read"): 4096_000, ("sda", "write"): 8192_000}
    ops = by(got["system.disk.operations"], "disk.io.direction")
    assert ops == {"read": 1000, "write": 2000}
    root = {
        dict(k)["system.filesystem.state"]: v
        for k, v in points(got["system.filesystem.usage"]).items()
        if dict(k)["system.filesystem.mountpoint"] == "/"
    }
    assert root == {"used": 40 * gib, "free": 55 * gib, "reserved": 5 * gib}
    assert by(got["system.network.io"], "network.io.direction") == {
        "transmit": 1_000_000,
        "receive": 2_000_000,
    }
    assert by(got["system.network.errors"], "network.io.direction") == {"transmit": 1, "receive": 2}
    assert points(got["process.memory.usage"]) == {frozenset(): 50 << 20}
    assert points(got["process.memory.virtual"]) == {frozenset(): 500 << 20}
    assert points(got["process.thread.count"]) == {frozenset(): 4}
    assert points(got["process.unix.file_descriptor.count"]) == {frozenset(): 12}
    assert by(got["system.disk.operation_time"], "disk.io.direction") == {"read": 1.5, "write": 3.0}
    assert points(got["system.disk.io_time"]) == {frozenset({("system.device", "sda")}): 2.0}
    assert by(got["system.network.packet.count"], "network.io.direction") == {
        "transmit": 100,
        "receive": 200,
    }
    assert by(got["system.network.packet.dropped"], "network.io.direction") == {
        "transmit": 3,
        "receive": 4,
    }
    assert by(got["system.cpu.time"], "cpu.mode") == source.cpu
    assert by(got["process.cpu.time"], "cpu.mode") == {"user": 1.5, "system": 0.5}
    assert by(got["process.context_switches"], "process.context_switch.type") == {
        "voluntary": 10,
        "involuntary": 5,
    }
    assert by(got["cpython.gc.collections"], "cpython.gc.generation") == {0: 100, 1: 9, 2: 1}
    assert by(got["cpython.gc.uncollectable_objects"], "cpython.gc.generation")[2] == 1


def test_cpu_utilization_is_the_share_of_time_since_last_collection(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """Utilisation comes from cpu_times deltas, not from the cumulative counters since boot."""
    make(reader, source, clock, tmp_path)
    source.cpu = {"user": 130.0, "system": 60.0, "idle": 860.0, "iowait": 10.0}  # +30/+10/+60
    clock.advance(10)
    shares = by(collect(reader)["system.cpu.utilization"], "cpu.mode")
    assert shares == pytest.approx({"user": 0.3, "system": 0.1, "idle": 0.6, "iowait": 0.0})
    source.cpu = {"user": 130.0, "system": 60.0, "idle": 960.0, "iowait": 10.0}  # all idle
    clock.advance(10)
    assert by(collect(reader)["system.cpu.utilization"], "cpu.mode")["idle"] == 1.0


def test_first_collection_is_primed_at_construction(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """The first collection uses the sample taken at construction, so it is a real delta."""
    make(reader, source, clock, tmp_path)
    source.cpu = {k: v + (50.0 if k == "user" else 0.0) for k, v in source.cpu.items()}
    clock.advance(1)
    assert by(collect(reader)["system.cpu.utilization"], "cpu.mode")["user"] == 1.0


def test_first_cpu_value_is_measured_over_the_window(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """A collection right after construction waits out the 100 ms window and measures it."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the CPU works while the collection waits
        waits.append(seconds)
        clock.advance(seconds)
        source.cpu = {"user": 103.0, "system": 50.0, "idle": 801.0, "iowait": 10.0}

    make(reader, source, clock, tmp_path, sleep=sleep)
    clock.advance(0.03)
    first = by(collect(reader)["system.cpu.utilization"], "cpu.mode")
    assert waits == [pytest.approx(CPU_WINDOW - 0.03)]
    assert first == pytest.approx({"user": 0.75, "system": 0.0, "idle": 0.25, "iowait": 0.0})
    clock.advance(0.05)  # within the window of that measurement: repeated, no second wait
    source.cpu = {"user": 104.0, "system": 50.0, "idle": 801.0, "iowait": 10.0}
    assert by(collect(reader)["system.cpu.utilization"], "cpu.mode") == first
    assert len(waits) == 1
    clock.advance(0.1)  # past the window: a new measurement
    assert by(collect(reader)["system.cpu.utilization"], "cpu.mode")["user"] == 1.0


def test_first_cpu_value_is_a_real_measurement_with_psutil(reader: Reader, tmp_path: Path) -> None:
    """With psutil, the first collection waits until CPU_WINDOW has passed since priming."""
    primed = time.monotonic()  # no later than the priming sample inside the constructor
    SystemMetrics(reader.provider, cgroup_root=str(tmp_path / "no-cgroup"))
    shares = by(collect(reader)["system.cpu.utilization"], "cpu.mode")
    assert time.monotonic() - primed >= CPU_WINDOW
    assert sum(shares.values()) == pytest.approx(1.0)


def test_collection_before_counters_move_is_never_a_spurious_zero(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """Counters that do not move (a frozen source): the average since boot, then the last value."""
    make(reader, source, clock, tmp_path)
    first = by(collect(reader)["system.cpu.utilization"], "cpu.mode")
    assert first == pytest.approx(
        {"user": 100 / 960, "system": 50 / 960, "idle": 800 / 960, "iowait": 10 / 960}
    )
    source.cpu = {"user": 200.0, "system": 50.0, "idle": 900.0, "iowait": 10.0}
    clock.advance(5)
    real = by(collect(reader)["system.cpu.utilization"], "cpu.mode")
    assert real["user"] == 0.5
    clock.advance(5)  # counters did not move this time
    assert by(collect(reader)["system.cpu.utilization"], "cpu.mode") == real


def test_per_cpu_reports_each_logical_cpu_instead_of_the_aggregate(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """per_cpu=True adds cpu.logical_number and drops the aggregate points."""
    make(reader, source, clock, tmp_path, per_cpu=True)
    source.per_cpu = [
        {"user": 60.0, "system": 25.0, "idle": 400.0 + 10, "iowait": 5.0},  # +10 idle
        {"user": 50.0 + 10, "system": 25.0, "idle": 400.0, "iowait": 5.0},  # +10 user
    ]
    clock.advance(1)
    both = collect(reader)
    got = points(both["system.cpu.utilization"])
    assert len(got) == 8
    assert len(points(both["system.cpu.time"])) == 8
    assert all("cpu.logical_number" in dict(k) for k in got)
    assert got[frozenset({("cpu.mode", "idle"), ("cpu.logical_number", 0)})] == 0.5
    assert got[frozenset({("cpu.mode", "user"), ("cpu.logical_number", 1)})] == 1.0


def test_connections_are_opt_in(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """system.network.connection.count appears only with connections=True, by transport/state."""
    make(reader, source, clock, tmp_path, connections=True)
    metric = collect(reader)["system.network.connection.count"]
    assert metric.unit == "{connection}"
    assert points(metric) == {
        frozenset({("network.transport", "tcp"), ("network.connection.state", "established")}): 3,
        frozenset({("network.transport", "tcp"), ("network.connection.state", "listen")}): 2,
        frozenset({("network.transport", "udp")}): 1,
    }


def test_one_snapshot_is_shared_by_all_callbacks_and_readers(
    source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """Two readers collecting at once read the source once; a later collection reads again."""
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[first, second], shutdown_on_exit=False)
    try:
        SystemMetrics(
            provider, source=source, clock=clock, connections=True, cgroup_root=str(tmp_path)
        )
        source.calls.clear()
        first.get_metrics_data()
        second.get_metrics_data()
        reads = dict(source.calls)
        assert reads == {
            "cpu_times": 1,
            "cpu_count": 1,
            "memory": 1,
            "swap": 1,
            "disk_io": 1,
            "filesystems": 1,
            "network_io": 1,
            "connections": 1,
            "process": 1,
            "gc_stats": 1,
        }
        clock.advance(1)
        first.get_metrics_data()
        assert source.calls["cpu_times"] == 2
    finally:
        provider.shutdown()


def test_without_ttl_each_collection_reads_once(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """snapshot_ttl=0: a fresh snapshot per collection, still one for all its callbacks."""
    make(reader, source, clock, tmp_path, snapshot_ttl=0.0)
    source.calls.clear()
    for _ in range(3):
        collect(reader)
    assert source.calls["cpu_times"] == 3
    assert source.calls["process"] == 3


def test_process_cpu_utilization_is_per_available_cpu(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """process.cpu.utilization divides CPU seconds by elapsed time and CPU count."""
    make(reader, source, clock, tmp_path)
    source.proc = dataclasses.replace(source.proc, cpu_user=1.5 + 2.0, cpu_system=0.5 + 1.0)
    clock.advance(10)
    got = by(collect(reader)["process.cpu.utilization"], "cpu.mode")
    assert got == pytest.approx({"user": 0.1, "system": 0.05})


def test_process_first_collection_uses_average_since_start(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """With no CPU window and no time elapsed, process CPU is the average since it began."""
    make(reader, source, clock, tmp_path, cpu_window=0)
    got = by(collect(reader)["process.cpu.utilization"], "cpu.mode")
    assert got == pytest.approx({"user": 1.5 / 20, "system": 0.5 / 20})


def test_pid_change_reprimes_the_process_baseline(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """After a fork the child's counters restart: report its own average, not a negative delta."""
    make(reader, source, clock, tmp_path)
    source.proc = ProcessStats(
        pid=9999, cpu_user=0.2, cpu_system=0.0, rss=1, vms=2, threads=1, fds=3, uptime=1.0
    )
    clock.advance(10)
    got = collect(reader)
    assert by(got["process.cpu.utilization"], "cpu.mode") == pytest.approx(
        {"user": 0.1, "system": 0.0}
    )
    assert points(got["process.memory.usage"]) == {frozenset(): 1}
    source.proc = dataclasses.replace(source.proc, cpu_user=0.2 + 2.0)
    clock.advance(10)
    assert by(collect(reader)["process.cpu.utilization"], "cpu.mode")["user"] == pytest.approx(0.1)


def test_psutil_source_rebuilds_the_process_when_the_pid_changes() -> None:
    """PsutilSource re-reads /proc for the new pid (contrib keeps reporting the parent)."""
    pids = [os.getpid()]
    src = PsutilSource(getpid=lambda: pids[-1])
    assert src.process().pid == os.getpid()
    pids.append(os.getppid())
    assert src.process().pid == os.getppid()


def test_sources_satisfy_the_protocol() -> None:
    """Both shipped sources are SystemSource implementations."""
    assert isinstance(StaticSource(), SystemSource)
    assert isinstance(PsutilSource(), SystemSource)


def test_psutil_source_reads_swap_from_meminfo(tmp_path: Path) -> None:
    """On Linux swap comes from /proc/meminfo's SwapTotal/SwapFree (kB), used = total - free."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100 kB\nSwapCached: 0 kB\nSwapTotal: 2048 kB\nSwapFree: 512 kB\n")
    src = PsutilSource()
    src._meminfo = str(meminfo)
    assert src.swap() == MemoryStats(
        total=2048 * 1024, states={"used": 1536 * 1024, "free": 512 * 1024}
    )
    meminfo.write_text("garbage\n")
    assert src.swap().total >= 0  # falls back to psutil
    assert src._meminfo is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="netlink sock_diag is Linux")
def test_psutil_source_counts_connections_through_netlink() -> None:
    """On Linux a listening socket we open shows up as tcp/listen, counted via sock_diag."""
    import socket

    src = PsutilSource()
    before = src.connections().get(("tcp", "listen"), 0)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert src.connections().get(("tcp", "listen"), 0) >= before + 1
    assert src._sock_diag, "netlink was not used"


def test_psutil_source_connection_fallback_uses_semconv_states() -> None:
    """Without netlink, psutil's status names are mapped to semconv values."""
    src = PsutilSource()
    src._sock_diag = False
    counts = src.connections()
    assert all(t in ("tcp", "udp") for t, _ in counts)
    assert not {s for _, s in counts} & {"fin_wait1", "fin_wait2", "syn_recv", "none"}


_FORK_CHILD = """
import os
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from paca_otel.signals._system import CPU_WINDOW, SystemMetrics
from paca_otel.signals._system_source import PsutilSource

reader = InMemoryMetricReader()
metrics = SystemMetrics(MeterProvider(metric_readers=[reader], shutdown_on_exit=False),
                        source=PsutilSource())
reader.get_metrics_data()
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    ok = 0
    try:
        view = metrics._current(refresh=False)
        proc = metrics._source.process()
        ok = int(view is not None and view.pid == os.getpid() and proc.pid == os.getpid())
    finally:
        os.write(write_end, str(ok).encode())
        os._exit(0)
os.close(write_end)
answer = os.read(read_end, 8)
os.waitpid(pid, 0)
print(answer.decode())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_reports_itself_and_drops_the_parents_snapshot() -> None:
    """In a real fork child the snapshot is rebuilt for the child's pid.

    Runs in a fresh single-threaded interpreter: forking the multi-threaded test process
    itself is unsafe.
    """
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _FORK_CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def write_cgroup(root: Path, **files: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name.replace("_", ".", 1)).write_text(text)


def test_cgroup_limits_give_container_utilization(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """With cpu.max and memory.max set, container usage and utilisation against them appear."""
    root = tmp_path / "cg"
    write_cgroup(
        root,
        cpu_max="200000 100000\n",
        cpu_stat="usage_usec 1000000\nuser_usec 800000\n",
        memory_max=str(1 << 30) + "\n",
        memory_current=str(600 << 20) + "\n",
        memory_stat="anon 1\ninactive_file " + str(88 << 20) + "\n",
    )
    make(reader, source, clock, tmp_path, cgroup_root=str(root))
    write_cgroup(root, cpu_stat="usage_usec 6000000\n")  # +5 s of CPU
    clock.advance(10)
    got = collect(reader)
    assert got["container.cpu.usage"].unit == "{cpu}"
    assert points(got["container.cpu.usage"]) == {frozenset(): 0.5}
    assert points(got["container.cpu.utilization"]) == {frozenset(): 0.25}
    assert points(got["container.memory.usage"]) == {frozenset(): 600 << 20}
    assert points(got["container.memory.working_set"]) == {frozenset(): 512 << 20}
    assert points(got["container.memory.utilization"]) == {frozenset(): 0.5}


def test_cgroup_without_limits_reports_usage_only(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """A "max" limit means unlimited: usage is reported, utilisation is not registered."""
    root = tmp_path / "cg"
    write_cgroup(
        root,
        cpu_max="max 100000\n",
        cpu_stat="usage_usec 0\n",
        memory_max="max\n",
        memory_current="1000\n",
    )
    metrics = make(reader, source, clock, tmp_path, cgroup_root=str(root))
    assert "container.cpu.utilization" not in metrics.instrument_names
    assert "container.memory.utilization" not in metrics.instrument_names
    write_cgroup(root, cpu_stat="usage_usec 1000000\n")
    clock.advance(1)
    got = collect(reader)
    assert points(got["container.cpu.usage"]) == {frozenset(): 1.0}
    assert points(got["container.memory.usage"]) == {frozenset(): 1000}


def test_no_cgroup_means_no_container_instruments(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """Without cgroup v2 files (v1 hosts, macOS) no container.* instrument is registered."""
    metrics = make(reader, source, clock, tmp_path)
    assert not [n for n in metrics.instrument_names if n.startswith("container.")]


def test_cgroup_reader_follows_the_process_cgroup_path(tmp_path: Path) -> None:
    """Without a cgroup namespace the process's own cgroup (0::/path) is read below the root."""
    write_cgroup(tmp_path / "system.slice" / "app.service", memory_max="4096\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/system.slice/app.service\n")
    cg = CgroupV2(tmp_path, proc_cgroup=str(proc))
    assert cg.path == tmp_path / "system.slice" / "app.service"
    assert cg.sample().memory_limit == 4096


def test_swap_without_total_reports_no_utilization(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """A host without swap reports zero usage and no utilisation (no division by zero)."""
    source.swap_stats = MemoryStats(total=0, states={"used": 0, "free": 0})
    make(reader, source, clock, tmp_path)
    got = collect(reader)
    assert by(got["system.paging.usage"], "system.paging.state") == {"used": 0, "free": 0}
    assert "system.paging.utilization" not in got


def test_shutdown_stops_reporting(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """After shutdown() the callbacks observe nothing and the source is not read."""
    metrics = make(reader, source, clock, tmp_path)
    metrics.shutdown()
    source.calls.clear()
    clock.advance(1)
    data = reader.get_metrics_data()
    names = (
        {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        if data
        else set()
    )
    assert not names & set(EXPECTED)
    assert not source.calls


class BrokenDisks(StaticSource):
    """A source whose disk counters always fail."""

    def disk_io(self) -> Any:
        raise OSError("simulated /proc/diskstats failure")


def test_failing_source_part_never_raises_into_the_app(
    reader: Reader, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One failing read drops only its own gauges; the rest of the collection goes on."""
    monkeypatch.setenv("PACA_OTEL_RAISE_INTERNAL", "0")
    reset_warnings()
    make(reader, BrokenDisks(), clock, tmp_path)
    got = collect(reader)
    assert "system.disk.io" not in got
    assert "system.memory.usage" in got
    assert "process.memory.usage" in got


def collect_data(reader: InMemoryMetricReader) -> MetricsData:
    data = reader.get_metrics_data()
    assert data is not None
    return data


def test_seed_aliases_from_collected_points(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """cpu_usage is 100*(1-idle), memory_usage 100*used share, disk_usage used/(used+free) of /."""
    make(reader, source, clock, tmp_path)
    source.cpu = {"user": 130.0, "system": 60.0, "idle": 860.0, "iowait": 10.0}
    clock.advance(10)
    aliases = seed_aliases(collect_data(reader))
    assert aliases == pytest.approx(
        {"cpu_usage": 40.0, "memory_usage": 25.0, "disk_usage": 100 * 40 / 95}
    )


def test_seed_aliases_per_cpu_and_largest_filesystem(
    reader: Reader, source: StaticSource, clock: FakeClock, tmp_path: Path
) -> None:
    """Per-core idle shares are averaged; without "/" the largest filesystem is used."""
    source.mounts = [
        FilesystemUsage("/dev/a", "/small", "ext4", 10, 9, 1),
        FilesystemUsage("/dev/b", "/big", "xfs", 1000, 250, 750),
    ]
    make(reader, source, clock, tmp_path, per_cpu=True)
    source.per_cpu = [
        {"user": 50.0, "system": 25.0, "idle": 410.0, "iowait": 5.0},
        {"user": 60.0, "system": 25.0, "idle": 400.0, "iowait": 5.0},
    ]
    clock.advance(1)
    aliases = seed_aliases(collect_data(reader))
    assert aliases["cpu_usage"] == pytest.approx(50.0)
    assert aliases["disk_usage"] == pytest.approx(25.0)


def test_seed_aliases_leave_out_what_is_missing() -> None:
    """No system data points: no alias, rather than a misleading 0."""
    assert seed_aliases(MetricsData(resource_metrics=[])) == {}


def test_real_psutil_collection_is_plausible(reader: Reader, tmp_path: Path) -> None:
    """On this machine, with psutil, every default gauge reports and aliases are percentages."""
    metrics = SystemMetrics(reader.provider, cgroup_root=str(tmp_path))
    got = collect(reader)
    expected = set(EXPECTED)
    if sys.platform == "win32":
        expected.discard("process.unix.file_descriptor.count")
    if "system.paging.utilization" not in got:  # a host without swap
        expected.discard("system.paging.utilization")
    assert expected <= set(got)
    shares = by(got["system.cpu.utilization"], "cpu.mode")
    assert sum(shares.values()) == pytest.approx(1.0)
    assert points(got["process.memory.usage"])[frozenset()] > 1 << 20
    assert points(got["process.thread.count"])[frozenset()] >= 1
    aliases = seed_aliases(collect_data(reader))
    assert set(aliases) == {"cpu_usage", "memory_usage", "disk_usage"}
    assert all(0.0 <= v <= 100.0 for v in aliases.values())
    metrics.shutdown()


def test_negative_snapshot_ttl_is_a_config_error(reader: Reader, tmp_path: Path) -> None:
    """A set-up mistake fails fast with ConfigError naming the setting and the value."""
    with pytest.raises(ConfigError, match=r"snapshot_ttl.*-1"):
        SystemMetrics(
            reader.provider, source=StaticSource(), snapshot_ttl=-1, cgroup_root=str(tmp_path)
        )


class BrokenCpu(StaticSource):
    """A source whose CPU counters fail, at priming and afterwards."""

    def cpu_times(self) -> Any:
        raise OSError("simulated /proc/stat failure")


def test_failing_priming_does_not_break_construction(
    reader: Reader, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If priming fails, construction still succeeds and the other gauges report."""
    monkeypatch.setenv("PACA_OTEL_RAISE_INTERNAL", "0")
    reset_warnings()
    make(reader, BrokenCpu(), clock, tmp_path)
    clock.advance(1)
    got = collect(reader)
    assert "system.cpu.utilization" not in got
    assert by(got["process.cpu.utilization"], "cpu.mode")["user"] == pytest.approx(1.5 / 20)


def test_real_psutil_with_per_cpu_and_connections(reader: Reader, tmp_path: Path) -> None:
    """The opt-ins work on real data: one point per CPU and mode, connection counts by state."""
    SystemMetrics(reader.provider, per_cpu=True, connections=True, cgroup_root=str(tmp_path))
    got = collect(reader)
    cores = {dict(k)["cpu.logical_number"] for k in points(got["system.cpu.utilization"])}
    assert len(cores) == len(PsutilSource().per_cpu_times())
    for attrs, count in points(got["system.network.connection.count"]).items():
        assert dict(attrs)["network.transport"] in ("tcp", "udp")
        assert count >= 0


def test_psutil_source_leaves_out_loop_ram_and_partition_devices() -> None:
    """Real psutil: the default exclusion drops loop/ram/partition devices, '' keeps all."""
    import re

    import psutil

    from paca_otel.signals._system_source import DEFAULT_DISK_EXCLUDE, PsutilSource

    every = set(psutil.disk_io_counters(perdisk=True) or {})
    kept = set(PsutilSource().disk_io())
    assert kept == {d for d in every if not re.match(DEFAULT_DISK_EXCLUDE, d)}
    assert set(PsutilSource(disk_exclude="").disk_io()) == every
    for name in ("loop0", "zram0", "ram1", "sda1", "nvme0n1p2"):
        assert re.match(DEFAULT_DISK_EXCLUDE, name), name
    for name in ("sda", "vda", "nvme0n1", "xvdb"):
        assert not re.match(DEFAULT_DISK_EXCLUDE, name), name
