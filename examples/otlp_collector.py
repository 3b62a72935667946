"""Send traces, metrics and logs to an OTLP collector (gRPC or HTTP).

Run a collector on 127.0.0.1:4317 (gRPC) / 4318 (HTTP) first, e.g. rotel from PyPI:
    pip install rotel==0.0.1a15
    python -c "import rotel, os; print(os.path.dirname(rotel.__file__))"   # rotel-agent is there
    <that dir>/rotel-agent start --otlp-grpc-endpoint 127.0.0.1:4317 \
        --otlp-http-endpoint 127.0.0.1:4318 --exporter blackhole --debug-log traces
Then: python examples/otlp_collector.py [grpc|http/protobuf]
The standard variables work too: OTEL_EXPORTER_OTLP_ENDPOINT=... python examples/otlp_collector.py
"""

from __future__ import annotations

import logging
import sys

from paca_otel import MetricsCollector, configure, span


def main() -> None:
    protocol = sys.argv[1] if len(sys.argv) > 1 else "grpc"
    endpoint = "http://127.0.0.1:4317" if protocol == "grpc" else "http://127.0.0.1:4318"
    telemetry = configure(
        service_name="otlp-example",
        otlp_endpoint=endpoint,
        otlp_protocol=protocol,
        traces_exporter="otlp",
        metrics_exporter="otlp",
        logs_exporter="otlp",
        logs=True,
        system_metrics=False,
    )
    with span("checkout", attributes={"cart.items": 3}):
        MetricsCollector().increment("checkouts", labels={"region": "eu"})
        logging.getLogger("shop").info("checkout done", extra={"cart_items": 3})
    telemetry.force_flush()
    telemetry.shutdown()
    print(f"sent a span, a metric and a log record to {endpoint} over {protocol}")


if __name__ == "__main__":
    main()
