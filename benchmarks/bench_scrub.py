"""Per-span cost of scrubbing on the export path, with no sensitive keys present.

Finished SDK spans with a typical HTTP server span's 10 attributes (method, scheme, path,
server address/port, protocol, route, status, client address, user agent) are exported in
batches of 512, as a ``BatchSpanProcessor`` would, to:

- A: a no-op exporter (the anchor: what export costs without scrubbing);
- B: the same exporter wrapped in :class:`~paca_otel.privacy.ScrubbingSpanExporter`.

Three workloads for B: ``keys only`` (value patterns off: key verdicts alone), ``repeated``
(path values cycle through 100 ids, so the clean-value cache answers) and ``unique`` (every
span has a never-seen path, so the value detectors run once per span: the worst case). Rounds
alternate A and B so drift hits both; the best and median per-span delta are printed in ns.
Anchors measured in the same run: one ``dict.get`` (machine speed), the SDK's cost to start
and end such a span, OTLP's protobuf encoding of it (what a real exporter spends anyway), and
the floor: reading the span's attributes, events, links and status through ReadableSpan's
public properties, which the wrapper cannot avoid. The goal is a delta of at most 1 us per
span. Times are process CPU time, not wall time, so other processes competing for the CPU do
not inflate them (they still share caches).

Run from the repository root: ``PYTHONPATH=. python benchmarks/bench_scrub.py [spans] [rounds]``.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
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
    started = time.process_time()
    for i in range(n):
        span = tracer.start_span(
            "GET /items/{id}", kind=SpanKind.SERVER, attributes=attributes(i if unique else i % 100)
        )
        span.end()
    elapsed = (time.process_time() - started) / n * 1e6
    provider.shutdown()
    return sink.spans, elapsed


def export_all(exporter: SpanExporter, spans: list[ReadableSpan]) -> float:
    """Nanoseconds per span to export ``spans`` in batches."""
    started = time.process_time()
    for i in range(0, len(spans), BATCH):
        exporter.export(spans[i : i + BATCH])
    return (time.process_time() - started) / len(spans) * 1e9


def dict_get_ns() -> float:
    table = {"a": 1}
    get = table.get
    started = time.process_time()
    for _ in range(1_000_000):
        get("a")
    return (time.process_time() - started) * 1e3


def accessors(spans: list[ReadableSpan]) -> float:
    """Nanoseconds per span to read the public fields the wrapper must read, and nothing else.

    The SDK builds a fresh proxy or tuple (under a lock) on every property read: this is the
    floor any exporter-path scrubbing pays through the public API.
    """
    started = time.process_time()
    for span in spans:
        _ = (span.attributes, span.events, span.links, span.status.description)
    return (time.process_time() - started) / len(spans) * 1e9


def otlp_encode(spans: list[ReadableSpan]) -> float:
    """Nanoseconds per span for OTLP's protobuf encoding alone (what a real exporter does)."""
    started = time.process_time()
    for i in range(0, len(spans), BATCH):
        encode_spans(spans[i : i + BATCH]).SerializeToString()
    return (time.process_time() - started) / len(spans) * 1e9


def labels_cost(rounds: int) -> tuple[float, float]:
    """Nanoseconds per call: ``scrub_labels`` of a repeated 3-label set, and one SDK
    ``Counter.add`` with the same labels (the record path it would sit on)."""
    from opentelemetry.sdk.metrics import MeterProvider

    counter = MeterProvider().get_meter("bench").create_counter("requests")
    scrubber = Scrubber()
    labels = {"http.route": "/items/{id}", "http.request.method": "GET", "status": "200"}
    n = 200_000
    scrub: list[float] = []
    add: list[float] = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(n):
            scrubber.scrub_labels(labels)
        scrub.append((time.process_time() - started) / n * 1e9)
        started = time.process_time()
        for _ in range(n):
            counter.add(1, labels)
        add.append((time.process_time() - started) / n * 1e9)
    return statistics.median(scrub), statistics.median(add)


def measure(
    label: str,
    spans: list[ReadableSpan],
    rounds: int,
    *,
    fresh: bool,
    value_patterns: tuple[str, ...] | None = None,
) -> float:
    """Print and return the median per-span delta of the wrapped over the plain exporter."""

    def scrubber() -> Scrubber:
        return Scrubber() if value_patterns is None else Scrubber(value_patterns=value_patterns)

    plain = NullExporter()
    deltas: list[float] = []
    wrapped = ScrubbingSpanExporter(NullExporter(), scrubber())
    export_all(wrapped, spans[:BATCH])  # warm the key cache
    for _ in range(rounds):
        if fresh:  # every path unseen: no clean-value cache hits
            wrapped = ScrubbingSpanExporter(NullExporter(), scrubber())
            export_all(wrapped, spans[:1])  # keys known, values not
        gc.collect()
        a = export_all(plain, spans)
        gc.collect()
        b = export_all(wrapped, spans)
        deltas.append(b - a)
    median = statistics.median(deltas)
    print(f"{label:40}{min(deltas):9.0f}{median:9.0f}")
    return median


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 20_000
    rounds = int(argv[2]) if len(argv) > 2 else 7
    repeated, sdk_us = make_spans(n, unique=False)
    unique, _ = make_spans(n, unique=True)
    print(f"spans={n} rounds={rounds} batch={BATCH} python={sys.version.split()[0]}")
    print(f"machine anchor: one dict.get = {dict_get_ns():.0f} ns")
    print(f"anchor: SDK start+end of one such span  {sdk_us * 1e3:9.0f} ns")
    encode = statistics.median(otlp_encode(unique) for _ in range(rounds))
    print(f"anchor: OTLP protobuf encoding per span  {encode:9.0f} ns")
    floor = min(accessors(unique) for _ in range(rounds))
    print(f"floor: public ReadableSpan reads         {floor:9.0f} ns")
    print(f"{'scrubbing delta per span (ns)':40}{'best':>9}{'median':>9}")
    rows = {
        "keys only": measure(
            "keys only (no value patterns)", unique, rounds, fresh=True, value_patterns=()
        ),
        "repeated": measure(
            "defaults, repeated values (cache hits)", repeated, rounds, fresh=False
        ),
        "unique": measure("defaults, a new path per span (worst)", unique, rounds, fresh=True),
    }
    scrub_ns, add_ns = labels_cost(rounds)
    print(
        f"metric labels: scrub_labels {scrub_ns:.0f} ns per call (cached label set), "
        f"SDK Counter.add {add_ns:.0f} ns: +{scrub_ns / add_ns:.0%} on the record path"
    )
    for label, median in rows.items():
        print(
            f"{label}: median {median:.0f} ns = {median / (sdk_us * 1e3):.1%} of the SDK span, "
            f"{median / encode:.1%} of OTLP encoding; {median - floor:.0f} ns above the "
            "public-read floor"
        )


if __name__ == "__main__":
    main(sys.argv)
