"""Per-span cost of the RED span processor, measured against the SDK span alone.

Two TracerProviders run side by side in one process: A has a BatchSpanProcessor to a no-op
exporter (the anchor: what every user of the SDK already pays), B has the same plus
:class:`~paca_otel.pipeline._spans.REDSpanProcessor`. Rounds alternate A and B so drift
(CPU frequency, GC) hits both; the best and median round of each are printed with the
delta, the median of the per-round (paired) deltas, the processor's own ``on_end`` called
alone on one finished span (what it adds above the SDK's dispatch to a second processor), plus
the cost of one drain. The goal is a delta of at most ~1 us per span.

Run: ``python benchmarks/bench_span_processor.py [spans_per_round] [rounds]`` (defaults 20000
and 15).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Tracer

from paca_otel.pipeline._aliases import write_red
from paca_otel.pipeline._spans import REDSpanProcessor
from paca_otel.pipeline._store import SeriesStore

ATTRS = {"http.route": "/items/{id}", "http.request.method": "GET"}


class NullExporter(SpanExporter):
    """Accepts every batch and does nothing: only the SDK's own cost remains."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def make_tracer(*, red: REDSpanProcessor | None) -> tuple[TracerProvider, Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(NullExporter(), max_queue_size=1_000_000, max_export_batch_size=4096)
    )
    if red is not None:
        provider.add_span_processor(red)
    return provider, provider.get_tracer("bench")


def one_round(tracer: Tracer, n: int) -> float:
    """Microseconds per span for ``n`` SERVER spans with a route, a method and a status."""
    start = time.perf_counter()
    for i in range(n):
        span = tracer.start_span("GET /items/{id}", kind=SpanKind.SERVER, attributes=ATTRS)
        span.set_attribute("http.response.status_code", 500 if i % 50 == 0 else 200)
        span.end()
    return (time.perf_counter() - start) / n * 1e6


def on_end_alone(calls: int = 200_000) -> float:
    """Microseconds per ``REDSpanProcessor.on_end`` call on one finished SERVER span."""
    finished: list[ReadableSpan] = []

    class Keep(NullExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            finished.extend(spans)
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Keep()))
    span = provider.get_tracer("bench").start_span("GET /items/{id}", kind=SpanKind.SERVER)
    span.set_attributes({**ATTRS, "http.response.status_code": 200})
    span.end()
    red = REDSpanProcessor(max_pending=calls + 1)
    best = float("inf")
    for _ in range(5):
        red.drain(time.time())
        start = time.perf_counter()
        for _ in range(calls // 5):
            red.on_end(finished[0])
        best = min(best, (time.perf_counter() - start) / (calls // 5) * 1e6)
    provider.shutdown()
    return best


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 20_000
    rounds = int(argv[2]) if len(argv) > 2 else 15
    red = REDSpanProcessor(max_pending=n * 2)
    provider_a, tracer_a = make_tracer(red=None)
    provider_b, tracer_b = make_tracer(red=red)
    store = SeriesStore()
    one_round(tracer_a, 2_000)  # warm-up both paths
    one_round(tracer_b, 2_000)
    write_red(store, red.drain(time.time()), time.time())
    a: list[float] = []
    b: list[float] = []
    drain_ms: list[float] = []
    for _ in range(rounds):
        gc.collect()
        a.append(one_round(tracer_a, n))
        provider_a.force_flush()
        gc.collect()
        b.append(one_round(tracer_b, n))
        provider_b.force_flush()
        started = time.perf_counter()
        write_red(store, red.drain(time.time()), time.time())
        drain_ms.append((time.perf_counter() - started) * 1e3)
    provider_a.shutdown()
    provider_b.shutdown()
    print(f"spans/round={n} rounds={rounds} python={sys.version.split()[0]}")
    print(f"{'':28}{'best':>9}{'median':>9}  us/span")
    print(f"{'SDK + BatchSpanProcessor':28}{min(a):9.2f}{statistics.median(a):9.2f}")
    print(f"{'  + REDSpanProcessor':28}{min(b):9.2f}{statistics.median(b):9.2f}")
    delta_best = min(b) - min(a)
    delta_median = statistics.median(b) - statistics.median(a)
    print(f"{'delta':28}{delta_best:9.2f}{delta_median:9.2f}")
    paired = statistics.median(y - x for x, y in zip(a, b, strict=True))
    print(f"{'median of paired deltas':28}{paired:18.2f}")
    print(f"{'on_end alone, one span':28}{on_end_alone():18.2f}")
    print(f"drain of {n} spans: median {statistics.median(drain_ms):.2f} ms")


if __name__ == "__main__":
    main(sys.argv)
