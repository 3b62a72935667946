"""Per-request cost of FastAPI instrumentations, as ratios to an uninstrumented app.

Every variant is the same FastAPI app (one JSON route with a path parameter) called directly
through ASGI (no server, no sockets), so only the instrumentation's own cost differs. All
variants are built in one process and measured in interleaved rounds (the order rotates each
round), so CPU-frequency drift and GC hit them alike; the median round of each is printed
against the uninstrumented app with FastAPI's built-in telemetry off.

Variants: FastAPI's built-in telemetry, prometheus-fastapi-instrumentator (metrics only),
contrib's ``FastAPIInstrumentor``, an "SDK floor" (the same span and histogram record made
by a bare wrapper with no semconv logic: what any such middleware pays the SDK), paca-otel's
``instrument_fastapi`` on no-op providers (its own Python) and on bare SDK providers, and
the paca-otel full stack: ``paca_otel.configure(...)`` (RED span processor, the snapshot,
alerting and Prometheus readers, system gauges) with ``instrument_fastapi`` on its
providers. Spans are exported in-process (a batch processor to a no-op exporter) by default;
``--otlp`` exports the spans of the paca full stack, of contrib and of the SDK floor over
OTLP/gRPC to a local rotel (started on 127.0.0.1, stopped by its PID). Goals: paca full
stack <= 2.0x in-process, <= 2.5x over OTLP.

Run: ``python benchmarks/bench_fastapi.py [--otlp] [--rounds N] [--requests N]
[--profile VARIANT]`` (``--profile`` prints a cProfile of one variant instead;
``BENCH_PROFILE_DUMP=FILE`` also writes it for ``pstats``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import paca_otel
from paca_otel import instrument_fastapi

App = Callable[..., Awaitable[None]]
OFF: Any = {"tracing": False, "metrics": False, "logs": False}
BASELINE = "uninstrumented"
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/items/42",
    "raw_path": b"/items/42",
    "query_string": b"q=1",
    "root_path": "",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench/1.0"),
        (b"accept", b"*/*"),
        (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ],
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
}
REQUEST = {"type": "http.request", "body": b"", "more_body": False}
PROVIDERS: list[Any] = []  # shut down at the end, before rotel stops


class NullExporter(SpanExporter):
    """Accepts every batch and does nothing: the in-process stand-in for an exporter."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def make_app(telemetry: Any = OFF) -> FastAPI:
    app = FastAPI(telemetry=telemetry)

    @app.get("/items/{item_id}")
    async def item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"id": item_id, "q": q}

    return app


def sdk_providers(span_exporter: SpanExporter | None = None) -> tuple[TracerProvider, Any]:
    """What a user of the bare SDK pays: batch span export and one metric reader."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(
        BatchSpanProcessor(span_exporter or NullExporter())  # SDK defaults
    )
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    PROVIDERS.extend((tracer_provider, meter_provider))
    return tracer_provider, meter_provider


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_rotel(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """rotel on 127.0.0.1 with a blackhole exporter: the OTLP/gRPC hop without a backend."""
    local = Path(__file__).resolve().parents[1] / ".peers" / "bin" / "rotel-agent"
    bundled = Path(sysconfig.get_paths()["purelib"]) / "rotel" / "rotel-agent"
    binary = next((str(p) for p in (local, bundled) if p.is_file()), shutil.which("rotel-agent"))
    if binary is None:
        sys.exit("rotel-agent not found (pip install the dev extra)")
    grpc_port, http_port = free_port(), free_port()
    command = [binary, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}"]
    command += ["--otlp-http-endpoint", f"127.0.0.1:{http_port}", "--exporter", "blackhole"]
    command += ["--pid-file", str(workdir / "rotel.pid"), "--log-file", str(workdir / "log")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", grpc_port)) == 0:
                return process, f"http://127.0.0.1:{grpc_port}"
        time.sleep(0.05)
    process.kill()
    sys.exit("rotel did not start")


def build_variants(otlp_endpoint: str | None) -> dict[str, App]:
    """Every variant's ASGI app, keyed by the name printed in the table."""
    variants: dict[str, App] = {BASELINE: make_app()}

    tracer_provider, meter_provider = sdk_providers()
    variants["fastapi built-in telemetry"] = make_app(
        {"tracer_provider": tracer_provider, "meter_provider": meter_provider, "logs": False}
    )

    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator

    app = make_app()
    Instrumentator(registry=CollectorRegistry()).instrument(app)
    variants["prometheus-fastapi-instrumentator"] = app

    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    for label, exporter in [("contrib FastAPIInstrumentor", None)] + (
        [("contrib, spans over OTLP", _otlp_exporter(otlp_endpoint))] if otlp_endpoint else []
    ):
        app = make_app()
        tracer_provider, meter_provider = sdk_providers(exporter)
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        variants[label] = app

    from opentelemetry import metrics, trace

    for label, exporter in [("SDK floor: bare span + histogram", None)] + (
        [("SDK floor, spans over OTLP", _otlp_exporter(otlp_endpoint))] if otlp_endpoint else []
    ):
        tracer_provider, meter_provider = sdk_providers(exporter)
        variants[label] = sdk_floor(make_app(), tracer_provider, meter_provider)

    app = make_app()  # the middleware's own Python: no-op providers record nothing
    instrument_fastapi(
        app,
        tracer_provider=trace.NoOpTracerProvider(),
        meter_provider=metrics.NoOpMeterProvider(),
    )
    variants["paca middleware, no-op providers"] = app

    app = make_app()
    tracer_provider, meter_provider = sdk_providers()
    instrument_fastapi(app, tracer_provider=tracer_provider, meter_provider=meter_provider)
    variants["paca middleware alone (SDK providers)"] = app

    # The full stack: configure() without app (it still installs contrib today), then the
    # middleware on the configured providers, as configure(app=...) will do.
    settings: dict[str, Any] = {
        "service_name": "bench",
        "metrics_exporter": "prometheus",
        "prometheus_port": free_port(),
        "logs_exporter": "none",
    }
    if otlp_endpoint:
        settings.update(
            traces_exporter="otlp", otlp_traces_endpoint=otlp_endpoint, otlp_protocol="grpc"
        )
        label = "paca full stack, spans over OTLP"
        processors: list[Any] = []
    else:
        settings.update(traces_exporter="none")
        label = "paca full stack (in-process)"
        processors = [BatchSpanProcessor(NullExporter())]
    telemetry = paca_otel.configure(span_processors=processors, **settings)
    app = make_app()
    instrument_fastapi(
        app, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    variants[label] = app
    return variants


def sdk_floor(app: App, tracer_provider: TracerProvider, meter_provider: Any) -> App:
    """The least any stable-semconv middleware pays the SDK: the same span (same attributes,
    context extracted and attached) and histogram record, with no semconv logic at all."""
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import SpanKind

    from paca_otel.signals._http_semconv import ASGI_GETTER
    from paca_otel.signals.http_server import DURATION_BUCKETS

    tracer = tracer_provider.get_tracer("floor")
    histogram = meter_provider.get_meter("floor").create_histogram(
        "http.server.request.duration", "s", explicit_bucket_boundaries_advisory=DURATION_BUCKETS
    )
    start_attributes: dict[str, Any] = {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/items/42",
        "url.query": "q=1",
        "server.address": "127.0.0.1",
        "server.port": 8000,
        "client.address": "127.0.0.1",
        "client.port": 50000,
        "user_agent.original": "bench/1.0",
        "network.protocol.version": "1.1",
    }
    end_attributes: dict[str, Any] = {
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
    }
    metric_attributes = {
        "http.request.method": "GET",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        **end_attributes,
    }

    async def floor(scope: Any, receive: Any, send: Any) -> None:
        parent = propagate.extract(scope["headers"], getter=ASGI_GETTER)
        span = tracer.start_span(
            "GET", context=parent, kind=SpanKind.SERVER, attributes=start_attributes
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        start = time.perf_counter()
        try:
            await app(scope, receive, send)
        finally:
            span.update_name("GET /items/{item_id}")
            span.set_attributes(end_attributes)
            histogram.record(time.perf_counter() - start, metric_attributes)
            context.detach(token)
            span.end()

    return floor


def _otlp_exporter(endpoint: str | None) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, insecure=True)


async def receive() -> dict[str, Any]:
    return REQUEST


async def send(message: Any) -> None:
    return None


async def one_round(app: App, requests: int) -> float:
    """Microseconds per request over ``requests`` sequential ASGI calls."""
    start = time.perf_counter()
    for _ in range(requests):
        await app(dict(SCOPE), receive, send)
    return (time.perf_counter() - start) / requests * 1e6


async def measure(variants: dict[str, App], rounds: int, requests: int) -> dict[str, list[float]]:
    names = list(variants)
    for name in names:  # warm-up: first sightings, lazy imports, caches
        await one_round(variants[name], 300)
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            results[name].append(await one_round(variants[name], requests))
    return results


def report(results: dict[str, list[float]]) -> None:
    """Per variant: median and best round, and the ratio to the uninstrumented app.

    The ratio is the median over rounds of (variant / uninstrumented in the same round):
    pairing rounds cancels the slow drifts of a shared machine; the ratio of best rounds
    (least disturbed) is printed beside it.
    """
    base = results[BASELINE]
    print(f"\n{'variant':40} {'median us':>9} {'best us':>8} {'x uninstr.':>10} {'x (best)':>9}")
    ratios: dict[str, float] = {}
    for name, values in results.items():
        ratios[name] = statistics.median(v / b for v, b in zip(values, base, strict=True))
        print(
            f"{name:40} {statistics.median(values):9.1f} {min(values):8.1f} "
            f"{ratios[name]:10.2f} {min(values) / min(base):9.2f}"
        )
    goal = 2.5 if any("OTLP" in name for name in results) else 2.0
    for name, ratio in ratios.items():
        if name.startswith("paca full stack"):
            verdict = "meets" if ratio <= goal else "MISSES"
            print(f"\n{name}: {ratio:.2f}x, {verdict} the goal of <= {goal}x")


def profile(app: App, requests: int) -> None:
    profiler = cProfile.Profile()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(one_round(app, 500))
    profiler.enable()
    loop.run_until_complete(one_round(app, requests))
    profiler.disable()
    loop.close()
    stats = pstats.Stats(profiler)
    if os.environ.get("BENCH_PROFILE_DUMP"):
        stats.dump_stats(os.environ["BENCH_PROFILE_DUMP"])
    stats.sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--otlp", action="store_true", help="export spans to a local rotel")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--profile", metavar="VARIANT", help="cProfile one variant")
    args = parser.parse_args()
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")  # contrib: stable names
    rotel: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory() as workdir:
        endpoint = None
        if args.otlp:
            rotel, endpoint = start_rotel(Path(workdir))
        try:
            variants = build_variants(endpoint)
            if args.profile:
                profile(variants[args.profile], args.requests * 5)
                return
            print(f"{args.rounds} interleaved rounds x {args.requests} direct ASGI requests")
            report(asyncio.run(measure(variants, args.rounds, args.requests)))
        finally:
            for provider in PROVIDERS:
                provider.shutdown()
            telemetry = paca_otel.get_telemetry()
            if telemetry is not None:
                telemetry.shutdown(timeout_millis=2_000)
            if rotel is not None:
                rotel.terminate()
                try:
                    rotel.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    rotel.kill()


if __name__ == "__main__":
    main()
