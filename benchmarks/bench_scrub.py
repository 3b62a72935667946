"""Per-span cost of scrubbing on the export path, with no sensitive keys present.

The goal (issue #8): scrubbing costs at most 1 us per span. The cost is the scrubbed export
minus the unscrubbed export of the same spans through the same exporter, per span.

Spans: finished SDK spans shaped like the ones our HTTP server middleware makes, with its 11
stable-semconv attributes (method, scheme, path, server address and port, client address and
port, a browser's user agent, protocol version, then route and status code set at the end).
Two workloads:

- ``repeated``: paths and client ports cycle through 100 values, so after the first sightings
  the clean-value cache answers for every value;
- ``unique``: every span has a never-seen path and client port, so two values per span are
  judged afresh (the path through the cheap candidate test): the worst case for value patterns.

They are exported in batches of 512, as a ``BatchSpanProcessor`` would, to two base exporters,
each plain (A) and wrapped in :class:`~paca_otel.privacy.ScrubbingSpanExporter` (B):

- ``null``: does nothing. B - A then charges to scrubbing the first touch of every span's
  memory (cache misses), which a real exporter would pay anyway: an upper bound;
- ``reading``: reads every public field of every span as an exporter must (attributes
  item by item, events, links, status, resource, scope). B - A is what scrubbing adds in
  front of a real exporter. (A real OTLP exporter as the base is too noisy: its own 40+ us
  per span swamps a 1 us difference.)

Scrubber settings: ``keys only`` (value patterns off) and ``defaults`` (every built-in value
detector on: cards, bearer/basic credentials, key=value, URL credentials, paca tokens). Each
pass gets a fresh scrubber, so its caches start empty. Every round runs every case once, in a
shuffled order, so drift hits all cases alike; deltas pair A and B of the same round, and
"best" pairs the fastest A with the fastest B (the least disturbed by other processes).
Times are process CPU time, not wall time.

The floor: any scrubbing on the export path must read each span's attributes, events, links
and status through ReadableSpan's public properties, and the SDK builds a fresh proxy or tuple
(under a lock) for each read. Each read is measured on its own, on one span again and again
(hot), and all four over the batches (cold memory). On a slow machine the floor alone exceeds
the goal, so the last table also gives the cost above the floor: scrubbing's own work.

Other anchors measured in the same run: one ``dict.get`` (machine speed), the SDK's cost to
start and end such a span, OTLP's protobuf encoding of it, and metric-label scrubbing against
the SDK's ``Counter.add``.

Run from the repository root: ``PYTHONPATH=. python benchmarks/bench_scrub.py [spans] [rounds]``
(defaults 4096 and 41: 4096 spans of each workload stay mostly in the CPU's last-level cache,
as a batch that has just ended does; 20000 measures colder memory).
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from paca_otel.privacy import Scrubber, ScrubbingSpanExporter

BATCH = 512
GOAL_NS = 1000.0
# Header bytes as the server hands them over: the middleware decodes a new string per request,
# whose hash the scrubber's value cache then computes afresh, as it would in production.
USER_AGENT = (
    b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/124.0.0.0 Safari/537.36"
)
HOST = b"api.example.com"
CLIENT = b"10.1.2.3"


class NullExporter(SpanExporter):
    """Accepts every batch and does nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class ReadingExporter(SpanExporter):
    """Reads every public field of every span, as any real exporter must, and sends nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            _ = (span.name, span.get_span_context(), span.parent, span.kind)
            _ = (span.start_time, span.end_time, span.resource, span.instrumentation_scope)
            _ = list(span.attributes.items())  # type: ignore[union-attr]  # never None on SDK spans
            for event in span.events:
                _ = (event.name, event.timestamp, event.attributes)
            for link in span.links:
                _ = (link.context, link.attributes)
            _ = (span.status.status_code, span.status.description)
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


def make_spans(n: int, *, unique: bool) -> tuple[list[ReadableSpan], float]:
    """``n`` finished server spans, and the SDK's microseconds per span to make them."""
    sink = Collect()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(sink))
    tracer = provider.get_tracer("bench")
    started = time.process_time()
    for i in range(n):
        k = i if unique else i % 100
        span = tracer.start_span(
            "GET",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "url.scheme": "http",
                "url.path": f"/items/{k}",
                "server.address": HOST.decode("latin-1"),
                "server.port": 8000,
                "client.address": CLIENT.decode("latin-1"),
                "client.port": 20000 + k,
                "user_agent.original": USER_AGENT.decode("latin-1"),
                "network.protocol.version": "1.1",
            },
        )
        span.update_name("GET /items/{item_id}")
        span.set_attributes({"http.route": "/items/{item_id}", "http.response.status_code": 200})
        span.end()
    elapsed = (time.process_time() - started) / n * 1e6
    provider.shutdown()
    return sink.spans, elapsed


def export_all(exporter: SpanExporter, spans: list[ReadableSpan]) -> float:
    """Nanoseconds per span to export ``spans`` in batches."""
    gc.collect()
    started = time.process_time()
    for i in range(0, len(spans), BATCH):
        exporter.export(spans[i : i + BATCH])
    return (time.process_time() - started) / len(spans) * 1e9


def read_fields(spans: list[ReadableSpan]) -> float:
    """Nanoseconds per span to read what the wrapper must read, and nothing else.

    The SDK builds a fresh proxy or tuple (under a lock) on every property read: this is the
    floor any exporter-path scrubbing pays through the public API.
    """
    gc.collect()
    started = time.process_time()
    for span in spans:
        _ = (span.attributes, span.events, span.links, span.status.description)
    return (time.process_time() - started) / len(spans) * 1e9


FLOOR_PARTS: dict[str, Callable[[ReadableSpan], object]] = {
    "the benchmark's own loop and call": lambda span: None,
    "span.attributes (a MappingProxyType)": lambda span: span.attributes,
    "span.events (a tuple, under a lock)": lambda span: span.events,
    "span.links (the same)": lambda span: span.links,
    "span.status.description": lambda span: span.status.description,
    "all four": lambda span: (span.attributes, span.events, span.links, span.status.description),
}


def hot_ns(read: Callable[[ReadableSpan], object], span: ReadableSpan, n: int = 100_000) -> float:
    """Nanoseconds per call of ``read(span)`` on one span again and again (hot caches)."""
    gc.collect()
    started = time.process_time()
    for _ in range(n):
        read(span)
    return (time.process_time() - started) / n * 1e9


def dict_get_ns() -> float:
    table = {"a": 1}
    get = table.get
    started = time.process_time()
    for _ in range(1_000_000):
        get("a")
    return (time.process_time() - started) * 1e3


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


BASES: dict[str, Callable[[], SpanExporter]] = {"null": NullExporter, "reading": ReadingExporter}
SETTINGS: dict[str, Callable[[], Scrubber] | None] = {
    "plain": None,  # A: no scrubbing
    "keys only": lambda: Scrubber(value_patterns=()),
    "defaults": Scrubber,
}


Case = tuple[str, str, str]  # (workload, base exporter, setting)


def run_rounds(
    workloads: dict[str, list[ReadableSpan]], rounds: int
) -> tuple[dict[Case, list[float]], dict[Case, list[float]], dict[str, list[float]]]:
    """Every (workload, base, setting) pass and every floor read, once per round, shuffled.

    Returns each case's time per round, per-round deltas (B - A of the same round) keyed by
    case, and the floor per workload.
    """
    order = random.Random(8)
    deltas: dict[Case, list[float]] = {}
    alltimes: dict[Case, list[float]] = {}
    floors: dict[str, list[float]] = {w: [] for w in workloads}
    cases: list[tuple[str, str, str]] = [
        (w, b, s) for w in workloads for b in BASES for s in SETTINGS
    ] + [(w, "floor", "") for w in workloads]
    for _ in range(rounds):
        order.shuffle(cases)
        times: dict[tuple[str, str, str], float] = {}
        for workload, base, setting in cases:
            spans = workloads[workload]
            if base == "floor":
                floors[workload].append(read_fields(spans))
                continue
            exporter = BASES[base]()
            make = SETTINGS[setting]
            if make is not None:
                exporter = ScrubbingSpanExporter(exporter, make())
            times[workload, base, setting] = export_all(exporter, spans)
            alltimes.setdefault((workload, base, setting), []).append(
                times[workload, base, setting]
            )
        for (workload, base, setting), ns in times.items():
            if setting != "plain":
                plain = times[workload, base, "plain"]
                deltas.setdefault((workload, base, setting), []).append(ns - plain)
    return alltimes, deltas, floors


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 4096
    rounds = int(argv[2]) if len(argv) > 2 else 41
    repeated, sdk_us = make_spans(n, unique=False)
    unique, _ = make_spans(n, unique=True)
    workloads = {"repeated": repeated, "unique": unique}
    print(f"spans={n} rounds={rounds} batch={BATCH} python={sys.version.split()[0]}")
    print("anchors")
    print(f"  one dict.get (machine speed)                    {dict_get_ns():7.0f} ns")
    print(f"  SDK start+end of one such span                  {sdk_us * 1e3:7.0f} ns")
    encode = statistics.median(otlp_encode(unique) for _ in range(3))
    print(f"  OTLP protobuf encoding per span                 {encode:7.0f} ns")
    alltimes, deltas, floors = run_rounds(workloads, rounds)
    print("floor: what any exporter-path scrubber reads per span (public ReadableSpan API)")
    parts = {
        label: min(hot_ns(read, unique[0]) for _ in range(5)) for label, read in FLOOR_PARTS.items()
    }
    loop = parts.pop("the benchmark's own loop and call")
    for label, ns in parts.items():
        print(f"  {label:46}{ns - loop:7.0f} ns  (one span, hot)")
    hot = parts["all four"] - loop
    cold = statistics.median(floors["unique"])
    print(f"  all four, over the batches (cold memory)      {cold:7.0f} ns")
    print(f"  the benchmark's own loop and call             {loop:7.0f} ns  (not counted above)")
    print()
    print("scrubbing cost per span, ns: scrubbed minus unscrubbed export, median of paired")
    print("rounds [min..max], then best scrubbed minus best unscrubbed")
    print(f"{'':24}{'vs null exporter':>30}{'vs reading exporter':>30}")
    for workload in workloads:
        for setting in ("keys only", "defaults"):
            cells = []
            for base in BASES:
                d = deltas[workload, base, setting]
                best = min(alltimes[workload, base, setting]) - min(
                    alltimes[workload, base, "plain"]
                )
                cells.append(
                    f"{statistics.median(d):6.0f} [{min(d):5.0f}..{max(d):5.0f}] {best:5.0f}"
                )
            print(f"{setting + ', ' + workload:24}{cells[0]:>30}{cells[1]:>30}")
    print()
    print(f"goal: <= {GOAL_NS:.0f} ns per span; medians, and their share of the goal. Above the")
    print("floor: the null-exporter delta minus the cold floor of the same round (scrubbing's own")
    print(f"work); the floor alone is {hot:.0f} ns hot, {cold:.0f} ns cold.")
    print(f"{'':24}{'vs null':>16}{'vs reading':>16}{'above floor':>14}")
    for workload in workloads:
        for setting in ("keys only", "defaults"):
            null = deltas[workload, "null", setting]
            own = statistics.median(d - f for d, f in zip(null, floors[workload], strict=True))
            read = statistics.median(deltas[workload, "reading", setting])
            print(
                f"{setting + ', ' + workload:24}"
                f"{statistics.median(null):7.0f} ns {statistics.median(null) / GOAL_NS:4.0%}"
                f"{read:7.0f} ns {read / GOAL_NS:4.0%}{own:11.0f} ns"
            )
    scrub_ns, add_ns = labels_cost(3)
    print()
    print(
        f"metric labels: scrub_labels {scrub_ns:.0f} ns per call (cached label set), "
        f"SDK Counter.add {add_ns:.0f} ns: +{scrub_ns / add_ns:.0%} on the record path"
    )
    worst = statistics.median(deltas["unique", "reading", "defaults"])
    print(
        f"defaults, unique values, vs reading exporter: {worst / (sdk_us * 1e3):.1%} of the SDK "
        f"span's own cost, {worst / encode:.1%} of OTLP encoding"
    )


if __name__ == "__main__":
    main(sys.argv)
