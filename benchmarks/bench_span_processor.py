"""Per-span cost of the RED span processor, measured against the SDK span alone.

Four TracerProviders run side by side in one process: A has a BatchSpanProcessor to a no-op
exporter (the anchor: what every user of the SDK already pays); B has the same plus
:class:`~paca_otel.pipeline._spans.REDSpanProcessor` registered as a second processor (what
adding it to one's own provider costs); C has both behind one
:class:`~paca_otel.telemetry._fanout.SpanFanOut`, the way ``paca_otel.configure()`` registers
its own processors; D is C with RED replaced by :class:`PublicReads`, the public reads RED
needs and one append, with no logic: the floor of any such processor. Printed: the best and
median round of each, the medians of the per-round (paired) deltas to A, RED's ``on_end``
called alone on one finished span (what it adds above the SDK's dispatch, with a hot cache),
and the cost of one drain. The goal is a delta of at most ~1 us per span.

Rounds are short (200 spans) and many (1,500), rotating A to D, and the delta is the median
of per-round paired deltas: on this shared machine, speed drifts by tens of percent within
seconds, and rounds of 20,000 spans gave deltas from 0.05 to 2.8 us for the same code.

Run: ``python benchmarks/bench_span_processor.py [spans_per_round] [rounds]`` (defaults 200
and 1500).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections import deque
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Tracer

from paca_otel.pipeline._aliases import write_red
from paca_otel.pipeline._spans import REDSpanProcessor
from paca_otel.pipeline._store import SeriesStore
from paca_otel.telemetry._fanout import SpanFanOut

ATTRS = {"http.route": "/items/{id}", "http.request.method": "GET"}


class NullExporter(SpanExporter):
    """Accepts every batch and does nothing: only the SDK's own cost remains."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class PublicReads(SpanProcessor):
    """The floor of any RED processor: the public reads RED needs (attributes, status, start
    and end time) and one append of them, with no logic at all."""

    def __init__(self) -> None:
        self.pending: deque[object] = deque(maxlen=1_000_000)

    def on_end(self, span: ReadableSpan) -> None:
        raw = span.attributes.copy()  # type: ignore[union-attr]  # a MappingProxyType here
        self.pending.append((raw, span.status.status_code, span.end_time, span.start_time))


def make_tracer(
    *, red: SpanProcessor | None, fan_out: bool = False
) -> tuple[TracerProvider, Tracer]:
    provider = TracerProvider()
    batch = BatchSpanProcessor(NullExporter(), max_queue_size=1_000_000, max_export_batch_size=4096)
    if red is not None and fan_out:
        provider.add_span_processor(SpanFanOut([red, batch]))
    else:
        provider.add_span_processor(batch)
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
    n = int(argv[1]) if len(argv) > 1 else 200
    rounds = int(argv[2]) if len(argv) > 2 else 1_500
    red = REDSpanProcessor(max_pending=1_000_000)
    red_c = REDSpanProcessor(max_pending=1_000_000)
    floor = PublicReads()
    providers = {
        "A": make_tracer(red=None),
        "B": make_tracer(red=red),
        "C": make_tracer(red=red_c, fan_out=True),
        "D": make_tracer(red=floor, fan_out=True),
    }
    store = SeriesStore()
    for _, tracer in providers.values():  # warm-up every path
        one_round(tracer, 2_000)
    write_red(store, red.drain(time.time()), time.time())
    red_c.drain(time.time())
    times: dict[str, list[float]] = {name: [] for name in providers}
    names = list(providers)
    for r in range(rounds):
        # Short rounds, rotated: this machine's speed drifts by tens of percent within
        # seconds, and a round of a few milliseconds sees A, B and C at nearly the same speed.
        for name in names[r % 4 :] + names[: r % 4]:
            times[name].append(one_round(providers[name][1], n))
        if r % 50 == 49:  # housekeeping outside the timed rounds
            red.drain(time.time())
            red_c.drain(time.time())
            floor.pending.clear()
            for provider, _ in providers.values():
                provider.force_flush()
            gc.collect()
    red.drain(time.time())
    one_round(providers["B"][1], 20_000)
    started = time.perf_counter()
    write_red(store, red.drain(time.time()), time.time())
    drain_ms = (time.perf_counter() - started) * 1e3
    for provider, _ in providers.values():
        provider.shutdown()
    a = times["A"]
    print(f"spans/round={n} rounds={rounds} python={sys.version.split()[0]}")
    print(f"{'':38}{'best':>9}{'median':>9}{'paired delta':>14}  us/span")
    labels = {
        "A": "SDK + BatchSpanProcessor",
        "B": "  + REDSpanProcessor (2nd processor)",
        "C": "  + RED in one SpanFanOut (configure)",
        "D": "  + public reads only (RED's floor)",
    }
    for name, label in labels.items():
        b = times[name]
        paired = statistics.median(y - x for x, y in zip(a, b, strict=True))
        print(f"{label:38}{min(b):9.2f}{statistics.median(b):9.2f}{paired:14.2f}")
    print(f"{'on_end alone, one span':28}{on_end_alone():18.2f}")
    print(f"drain of 20000 spans: {drain_ms:.2f} ms")


if __name__ == "__main__":
    main(sys.argv)
