"""Cost of one collection of paca-otel's system gauges vs contrib's SystemMetricsInstrumentor.

Both run on this machine in this run, each on its own MeterProvider + InMemoryMetricReader,
collected alternately so that load changes hit both alike. Printed: milliseconds per
collection (median and p90), data points per collection, and the ratio contrib / ours.
Goal: ours <= 1 ms per collection with at least contrib's data points. The last section
interleaves ours with its two parts, the OTel SDK's share (the same observations, ready, through
the same meter, view and instrument kinds) and our psutil snapshot, and prints what is left:
our own glue.

Run: ``python benchmarks/bench_system.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from paca_otel.signals._system import SystemMetrics


def count_points(reader: InMemoryMetricReader) -> tuple[float, int]:
    """Collect once; return (seconds taken, data points)."""
    start = time.perf_counter()
    data = reader.get_metrics_data()
    elapsed = time.perf_counter() - start
    points = 0
    if data is not None:
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    points += len(metric.data.data_points)
    return elapsed, points


def ours(per_cpu: bool, connections: bool, *, all_disks: bool = False) -> InMemoryMetricReader:
    """Our gauges; TTL 0 so that every collection takes a fresh snapshot (no cache help).

    ``all_disks`` turns off the default node_exporter-style exclusion of loop/ram devices and
    partitions, so the data points are the same as contrib's.
    """
    from paca_otel.signals._system import system_views
    from paca_otel.signals._system_source import DEFAULT_DISK_EXCLUDE, PsutilSource

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=system_views(), shutdown_on_exit=False)
    SystemMetrics(
        provider,
        source=PsutilSource(disk_exclude=None if all_disks else DEFAULT_DISK_EXCLUDE),
        per_cpu=per_cpu,
        connections=connections,
        snapshot_ttl=0.0,
        cgroup_root="/sys/fs/cgroup",
    )
    return reader


def contrib(config: dict[str, list[str] | None] | None = None) -> InMemoryMetricReader:
    """contrib's instrumentor with its default config (or ``config``)."""
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    instrumentor = SystemMetricsInstrumentor(config=config)
    instrumentor.instrument(meter_provider=provider)
    return reader


def measure(
    readers: dict[str, InMemoryMetricReader], rounds: int
) -> dict[str, tuple[list[float], int]]:
    """Collect every reader ``rounds`` times, alternating; keep timings and last point count."""
    results: dict[str, tuple[list[float], int]] = {name: ([], 0) for name in readers}
    for reader in readers.values():  # warm-up: first collections prime caches
        count_points(reader)
    for _ in range(rounds):
        for name, reader in readers.items():
            elapsed, points = count_points(reader)
            results[name][0].append(elapsed)
            results[name] = (results[name][0], points)
    return results


def report(label: str, timings: list[float], points: int) -> float:
    median = statistics.median(timings) * 1e3
    p90 = statistics.quantiles(timings, n=10)[-1] * 1e3
    print(f"{label:<46} {median:8.3f} ms  p90 {p90:8.3f} ms  {points:5d} points")
    return median


def compare(readers: dict[str, InMemoryMetricReader], anchor: str, rounds: int) -> None:
    """Measure ``readers`` side by side and print each against ``anchor``."""
    results = measure(readers, rounds)
    medians: dict[str, float] = {}
    points: dict[str, int] = {}
    for name, (timings, n) in results.items():
        medians[name] = report(name, timings, n)
        points[name] = n
    for name in readers:
        if name != anchor:
            print(
                f"  ratio contrib/ours x{medians[anchor] / medians[name]:6.1f}"
                f"  points ours/contrib {points[name] / max(points[anchor], 1):4.2f}  ({name})"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"{args.rounds} collections each, alternated; median and p90 per collection")

    # contrib's instrumentor is a process-wide singleton, so its two configurations are
    # measured one after the other, each side by side with ours.
    print("-- contrib default (includes per-CPU utilisation and psutil.net_connections)")
    default = "contrib SystemMetricsInstrumentor (default)"
    compare(
        {
            default: contrib(),
            "paca-otel SystemMetrics (default)": ours(per_cpu=False, connections=False),
            "paca-otel, all block devices (as contrib)": ours(
                per_cpu=False, connections=False, all_disks=True
            ),
            "paca-otel (per_cpu+connections)": ours(per_cpu=True, connections=True),
        },
        default,
        args.rounds,
    )

    from opentelemetry.instrumentation.system_metrics import (
        _DEFAULT_CONFIG,
        SystemMetricsInstrumentor,
    )

    SystemMetricsInstrumentor().uninstrument()
    print("-- both without connection counting")
    cheap = "contrib without system.network.connections"
    config = {k: v for k, v in _DEFAULT_CONFIG.items() if k != "system.network.connections"}
    compare(
        {
            cheap: contrib(config),
            "paca-otel SystemMetrics (default)": ours(per_cpu=False, connections=False),
            "paca-otel, all block devices (as contrib)": ours(
                per_cpu=False, connections=False, all_disks=True
            ),
            "paca-otel SystemMetrics (per_cpu)": ours(per_cpu=True, connections=False),
        },
        cheap,
        args.rounds,
    )
    print("-- ours and its parts, interleaved")
    breakdown(args.rounds)


def breakdown(rounds: int) -> None:
    """Ours against its two parts, interleaved collection by collection (the machine's speed
    drifts, so parts measured minutes apart do not add up): the SDK's share (the floor) and
    the psutil side (our snapshot: psutil reads + observation building, without the SDK)."""
    readers = {
        "paca-otel SystemMetrics (default)": ours(per_cpu=False, connections=False),
        "OTel SDK floor (ready observations, no psutil)": floor_reader(),
    }
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    with tempfile.TemporaryDirectory() as no_cgroup:
        gauges = SystemMetrics(provider, snapshot_ttl=0.0, cgroup_root=no_cgroup)
    build: Callable[[float], object] = gauges._build
    results: dict[str, tuple[list[float], int]] = {name: ([], 0) for name in readers}
    snapshot: list[float] = []
    for reader in readers.values():
        count_points(reader)
    for _ in range(rounds):
        for name, reader in readers.items():
            elapsed, points = count_points(reader)
            results[name][0].append(elapsed)
            results[name] = (results[name][0], points)
        start = time.perf_counter()
        build(time.monotonic())
        snapshot.append(time.perf_counter() - start)
    medians = [report(name, timings, n) for name, (timings, n) in results.items()]
    part = statistics.median(snapshot) * 1e3
    print(f"{'paca-otel snapshot only (no SDK, default)':<46} {part:8.3f} ms")
    print(f"  ours - floor - snapshot: {medians[0] - medians[1] - part:+.3f} ms (our glue)")


def floor_reader() -> InMemoryMetricReader:
    """The OTel SDK's own cost for our data points: callbacks that return ready observations.

    The same instrument kinds (gauge, counter, up-down counter), meter and view as ours, so the
    SDK does exactly the work it does for our gauges, minus the psutil side. This is the floor
    no psutil-side work can go below; ours = floor + snapshot.
    """
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics.export import Gauge, Sum

    from paca_otel.signals._system import SYSTEM_METER, system_views

    source = InMemoryMetricReader()
    SystemMetrics(MeterProvider(metric_readers=[source], shutdown_on_exit=False), snapshot_ttl=0.0)
    data = source.get_metrics_data()
    assert data is not None
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=system_views(), shutdown_on_exit=False)
    meter = provider.get_meter(SYSTEM_METER)
    for scope in data.resource_metrics[0].scope_metrics:
        for metric in scope.metrics:
            ready = [Observation(p.value, p.attributes) for p in metric.data.data_points]  # type: ignore[union-attr]  # number points only

            def callback(
                options: CallbackOptions, ready: list[Observation] = ready
            ) -> list[Observation]:
                return ready

            kind = metric.data
            create: Callable[..., object]
            if isinstance(kind, Sum) and kind.is_monotonic:
                create = meter.create_observable_counter
            elif isinstance(kind, Sum):
                create = meter.create_observable_up_down_counter
            else:
                assert isinstance(kind, Gauge)
                create = meter.create_observable_gauge
            create(metric.name, callbacks=[callback], unit=metric.unit or "")
    return reader


if __name__ == "__main__":
    main()
