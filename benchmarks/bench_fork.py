"""What the pre-fork rebuild costs a child: time from ``os.fork()`` until the child runs.

Under ``gunicorn --preload`` every worker rebuilds the handle configured in the master inside
the after-fork hook (:mod:`paca_otel._prefork`), before the worker's own code runs. The anchor
is the same fork with paca-otel not configured, measured in the same run.

    python benchmarks/bench_fork.py [--forks N]

Goal: a few tens of milliseconds per child, far below a worker's own start-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from paca_otel import configure, testing

_SETUPS: dict[str, dict[str, Any] | None] = {
    "not configured (anchor)": None,
    "prometheus + alerting": {},
    "otlp http, 3 signals": {
        "traces_exporter": "otlp", "metrics_exporter": "otlp,prometheus",
        "logs_exporter": "otlp", "otlp_protocol": "http/protobuf",
    },
    "otlp grpc, 3 signals": {
        "traces_exporter": "otlp", "metrics_exporter": "otlp,prometheus", "logs_exporter": "otlp",
    },
}  # fmt: skip


def _fork_to_child_ms(forks: int) -> list[float]:
    """Milliseconds from fork() in the parent until the child's first line of code."""
    times = []
    for _ in range(forks):
        read, write = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.write(write, repr(time.monotonic() - started).encode())
            os._exit(0)
        os.close(write)
        times.append(float(os.read(read, 64)) * 1000)
        os.close(read)
        os.waitpid(pid, 0)
    return times


def main() -> None:
    """Fork N children per set-up and print the median and maximum against the anchor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=10, help="children per set-up (default 10)")
    args = parser.parse_args()
    anchor = None
    for name, overrides in _SETUPS.items():
        if overrides is not None:
            telemetry = configure(
                service_name="paca-bench-fork",
                otlp_endpoint="http://127.0.0.1:9",  # nothing listens: exports fail quietly
                otlp_timeout=500,
                **overrides,
            )
            telemetry.runtime.attach(telemetry)
        times = _fork_to_child_ms(args.forks)
        median = statistics.median(times)
        anchor = anchor or median
        print(
            f"{name:26} median {median:6.1f} ms   max {max(times):6.1f} ms   "
            f"({median / anchor:4.1f}x the anchor)"
        )
        testing.reset()


if __name__ == "__main__":
    main()
