"""Child process for the multiprocess tests: one "worker" of a service sharing a directory.

Run as ``python multiprocess_child.py DIR PORT N``. It configures paca-otel with
``multiprocess_dir=DIR`` and its Prometheus server on 127.0.0.1:PORT, then records N
increments of the counter ``mp.requests``, N observations of the histogram ``mp.duration``,
the gauge ``mp.temperature`` = N, and N server spans on route ``/work`` lasting 1..N ms (every
other one a 500). It prints ``ready`` and then answers one JSON line per command read from stdin:

* ``add K``: adds K to ``mp.requests`` (answers ``"added"``);
* ``red``: the service-wide all-routes RED figure (``Pipeline.red_figures``);
* ``exit``: shuts telemetry down cleanly (its file is marked closed) and exits.
"""

from __future__ import annotations

import json
import sys
import time

from opentelemetry.trace import SpanKind

import paca_otel


def main(directory: str, port: int, n: int) -> None:
    """Record, report ``ready``, then serve commands until ``exit`` or a signal."""
    telemetry = paca_otel.configure(
        service_name="mp-test",
        multiprocess_dir=directory,
        metrics_exporter="prometheus",
        traces_exporter="none",
        logs_exporter="none",
        prometheus_host="127.0.0.1",
        prometheus_port=port,
    )
    meter = telemetry.meter_provider.get_meter("mp.test")
    counter = meter.create_counter("mp.requests")
    histogram = meter.create_histogram("mp.duration", unit="s")
    meter.create_gauge("mp.temperature").set(n)
    tracer = telemetry.tracer_provider.get_tracer("mp.test")
    for i in range(n):
        counter.add(1, {"route": "/work"})
        histogram.record(0.01 * (i + 1), {"route": "/work"})
        status = 500 if i % 2 else 200
        attributes = {"http.route": "/work", "http.request.method": "GET",
                      "http.response.status_code": status}  # fmt: skip
        start = time.time_ns()
        span = tracer.start_span("GET /work", kind=SpanKind.SERVER, attributes=attributes,
                                 start_time=start)  # fmt: skip
        span.end(end_time=start + (i + 1) * 1_000_000)  # i + 1 milliseconds
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command.startswith("add "):
            counter.add(int(command.split()[1]), {"route": "/work"})
            print(json.dumps("added"), flush=True)
        elif command == "red":
            overall = [f for f in telemetry.pipeline.red_figures() if f.route is None]
            reply = [{"requests": f.requests, "errors": f.errors, "p50": f.p50} for f in overall]
            print(json.dumps(reply[0] if reply else None), flush=True)
        elif command == "exit":
            telemetry.shutdown()
            print(json.dumps("bye"), flush=True)
            return


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
