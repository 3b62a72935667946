"""Wall time of ``configure`` and ``Telemetry.shutdown`` with the OTLP collector unreachable.

The start-up probe runs on a background thread, so pointing ``configure`` at a collector that is
down must not slow the host app's start; shutdown is bounded by the timeout it is given. These
were timing asserts in the test suite (``tests/test_setup.py``,
``tests/integration/test_otlp_collector.py``), which now check the behaviour only; the
numbers live here. Each run uses a freshly closed local port and ends one span before the
shutdown, per OTLP protocol.

    python benchmarks/bench_setup.py [--repeat R]

Goal: ``configure`` well under 2 s (no connect attempt on the calling thread), ``shutdown``
within about its ``timeout_millis`` (1.5 s here).
"""

from __future__ import annotations

import argparse
import socket
import time

from paca_otel import configure


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def main() -> None:
    """Time configure() and shutdown() against an unreachable collector, per protocol."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per protocol (default 3)")
    args = parser.parse_args()
    for protocol in ("grpc", "http/protobuf"):
        starts: list[float] = []
        stops: list[float] = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            telemetry = configure(
                service_name="paca-bench-unreachable",
                traces_exporter="otlp", metrics_exporter="otlp", logs_exporter="otlp",
                otlp_endpoint=f"http://127.0.0.1:{_closed_port()}", otlp_protocol=protocol,
                otlp_timeout=1_000, logs=False, system_metrics=False,
            )  # fmt: skip
            starts.append(time.perf_counter() - started)
            with telemetry.tracer_provider.get_tracer("bench").start_as_current_span("lost"):
                pass  # one span the shutdown has to try to export
            started = time.perf_counter()
            telemetry.shutdown(timeout_millis=1_500)
            stops.append(time.perf_counter() - started)
        print(
            f"{protocol:14} configure max {max(starts) * 1000:7.1f} ms   "
            f"shutdown max {max(stops) * 1000:7.1f} ms   (goal: < 2000 / ~1500 ms)"
        )


if __name__ == "__main__":
    main()
