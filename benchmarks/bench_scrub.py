"""Per-span cost of scrubbing on the export path, with no sensitive keys present.

Finished SDK spans with a typical HTTP server span's 10 attributes (method, scheme, path,
server address/port, protocol, route, status, client address, user agent) are exported in
batches of 512, as a ``BatchSpanProcessor`` would, to:

- A: a no-op exporter (the anchor: what export costs without scrubbing);
- B: the same exporter wrapped in :class:`~paca_otel.privacy.ScrubbingSpanExporter`.

Two workloads for B: ``repeated`` (path values cycle through 100 ids, so the clean-value cache
answers) and ``unique`` (every span has a never-seen path, so one value regex runs per span:
the worst case). Rounds alternate A and B so drift hits both; the best and median per-span
delta are printed in ns, plus the SDK's own cost to start and end such a span (measured in the
same run) and the delta as a fraction of it, and one ``dict.get`` as a machine-speed anchor.
The goal is a delta of at most 1 us per span.

Run: ``python benchmarks/bench_scrub.py [spans] [rounds]``.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from paca_otel.privacy import Scrubber, ScrubbingSpanExporter

BATCH = 512


class NullExporter(SpanExporter):
    """Accepts every batch and does nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class Collect(SpanExporter):
    """Keeps finished spans so the benchmark can export them again and again."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def attributes(i: int) -> dict[str, str | int]:
    return {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": f"/items/{i}",
        "server.address": "localhost",
        "server.port": 8000,
        "network.protocol.version": "1.1",
        "http.route": "/items/{id}",
        "http.response.status_code": 200,
        "client.address": "127.0.0.1",
        "user_agent.original": "python-httpx/0.28.1",
    }


def make_spans(n: int, *, unique: bool) -> tuple[list[ReadableSpan], float]:
    """``n`` finished spans, and the SDK's microseconds per span to make them."""
    sink = Collect()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(sink))
    tracer = provider.get_tracer("bench")
    started = time.perf_counter()
    for i in range(n):
        span = tracer.start_span(
            "GET /items/{id}", kind=SpanKind.SERVER, attributes=attributes(i if unique else i % 100)
        )
        span.end()
    elapsed = (time.perf_counter() - started) / n * 1e6
    provider.shutdown()
    return sink.spans, elapsed


def export_all(exporter: SpanExporter, spans: list[ReadableSpan]) -> float:
    """Nanoseconds per span to export ``spans`` in batches."""
    started = time.perf_counter()
    for i in range(0, len(spans), BATCH):
        exporter.export(spans[i : i + BATCH])
    return (time.perf_counter() - started) / len(spans) * 1e9


def dict_get_ns() -> float:
    table = {"a": 1}
    get = table.get
    started = time.perf_counter()
    for _ in range(1_000_000):
        get("a")
    return (time.perf_counter() - started) * 1e3


def measure(label: str, spans: list[ReadableSpan], rounds: int, fresh: bool) -> list[float]:
    plain = NullExporter()
    deltas: list[float] = []
    wrapped = ScrubbingSpanExporter(NullExporter(), Scrubber())
    export_all(wrapped, spans[:BATCH])  # warm the key cache
    for _ in range(rounds):
        if fresh:  # every path unseen: no clean-value cache hits
            wrapped = ScrubbingSpanExporter(NullExporter(), Scrubber())
            export_all(wrapped, spans[:1])  # keys known, values not
        gc.collect()
        a = export_all(plain, spans)
        gc.collect()
        b = export_all(wrapped, spans)
        deltas.append(b - a)
    print(f"{label:34}{min(deltas):9.0f}{statistics.median(deltas):9.0f}")
    return deltas


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 20_000
    rounds = int(argv[2]) if len(argv) > 2 else 7
    repeated, sdk_us = make_spans(n, unique=False)
    unique, _ = make_spans(n, unique=True)
    print(f"spans={n} rounds={rounds} batch={BATCH} python={sys.version.split()[0]}")
    print(f"machine anchor: one dict.get = {dict_get_ns():.0f} ns")
    print(f"SDK start+end of one such span: {sdk_us * 1e3:.0f} ns")
    print(f"{'scrubbing delta per span (ns)':34}{'best':>9}{'median':>9}")
    rep = measure("repeated values (cache hits)", repeated, rounds, fresh=False)
    uni = measure("unique path per span (worst)", unique, rounds, fresh=True)
    for label, deltas in (("repeated", rep), ("unique", uni)):
        ratio = statistics.median(deltas) / (sdk_us * 1e3)
        print(f"{label}: median delta = {ratio:.1%} of the SDK's own per-span cost")


if __name__ == "__main__":
    main(sys.argv)
