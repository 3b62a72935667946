"""Tests for ScrubbingSpanExporter: spans leave scrubbed, clean spans leave untouched."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode, Tracer

from paca_otel.privacy import REDACTED, Scrubber, ScrubbingSpanExporter

SECRET = "hunter2-s3cr3t-VALUE"


@pytest.fixture
def sink() -> InMemorySpanExporter:
    """Where scrubbed spans land."""
    return InMemorySpanExporter()


@pytest.fixture
def tracer(sink: InMemorySpanExporter) -> Iterator[Tracer]:
    """A tracer whose spans are exported through the scrubbing wrapper."""
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=5))
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(sink, Scrubber())))
    yield provider.get_tracer("test")
    provider.shutdown()


def everything_emitted(spans: Sequence[ReadableSpan]) -> str:
    """Every rendering of the spans: JSON, repr, and the OTLP protobuf bytes."""
    encoded = encode_spans(spans).SerializeToString()
    return "\n".join([*(span.to_json() for span in spans), repr(spans), encoded.decode("latin-1")])


def test_sensitive_span_attributes_never_leave(tracer: Tracer, sink: InMemorySpanExporter) -> None:
    """password/authorization attributes are replaced in JSON, repr and OTLP bytes."""
    with tracer.start_as_current_span("login", attributes={"password": SECRET}) as span:
        span.set_attribute("http.request.header.authorization", (f"Bearer {SECRET}",))
        span.set_attribute("url.full", f"https://h/cb?token={SECRET}")
        span.set_attribute("http.route", "/login")
    (exported,) = sink.get_finished_spans()
    assert SECRET not in everything_emitted([exported])
    assert exported.attributes is not None
    assert exported.attributes["password"] == REDACTED
    assert exported.attributes["http.request.header.authorization"] == REDACTED
    assert exported.attributes["url.full"] == f"https://h/cb?token={REDACTED}"
    assert exported.attributes["http.route"] == "/login"


def test_events_links_and_status_are_scrubbed(tracer: Tracer, sink: InMemorySpanExporter) -> None:
    """Exception events, link attributes and the status description are scrubbed too."""
    with tracer.start_as_current_span("parent") as parent:
        context = parent.get_span_context()
    link = Link(context, {"session_id": SECRET})
    with tracer.start_as_current_span("job", links=[link], record_exception=False) as span:
        try:
            raise ValueError(f"bad api_key={SECRET}")
        except ValueError as exc:
            span.record_exception(exc, attributes={"cookie": SECRET})
            span.set_status(Status(StatusCode.ERROR, f"failed with token={SECRET}"))
    exported = sink.get_finished_spans()[-1]
    assert SECRET not in everything_emitted([exported])
    assert exported.links[0].attributes == {"session_id": REDACTED}
    assert exported.events[0].attributes is not None
    assert exported.events[0].attributes["cookie"] == REDACTED
    assert exported.status.description == f"failed with token={REDACTED}"
    assert exported.links[0].context == context


@pytest.mark.parametrize("where", ["event", "link", "status"])
def test_a_secret_in_one_place_only_is_found(where: str) -> None:
    """A span whose attributes are known clean is still scrubbed when only an event, a link or
    the status description holds the secret."""
    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent:
        pass
    links = [Link(parent.get_span_context(), {"session": SECRET})] if where == "link" else []
    with tracer.start_as_current_span("job", attributes={"n": 1}, links=links) as span:
        if where == "event":
            span.add_event("retry", {"exception.message": f"token={SECRET}"})
        if where == "status":
            span.set_status(Status(StatusCode.ERROR, f"token={SECRET}"))
    sink = InMemorySpanExporter()
    wrapper = ScrubbingSpanExporter(sink, Scrubber())
    wrapper.export(finished.get_finished_spans()[:1])  # the parent: "n" unseen, so not cached
    wrapper.export([ReadableSpan("warm", attributes={"n": 1})])  # now "n": 1 is known clean
    wrapper.export(finished.get_finished_spans()[1:])
    assert SECRET not in everything_emitted(sink.get_finished_spans()[-1:])
    provider.shutdown()


def test_keys_only_mode_leaves_attribute_values_but_scans_events() -> None:
    """attribute_values=False: attributes are scrubbed by key only; events still by value."""
    sink = InMemorySpanExporter()
    provider = TracerProvider()
    exporter = ScrubbingSpanExporter(sink, Scrubber(), attribute_values=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("a", attributes={"note": f"token={SECRET}"}) as span:
        span.add_event("e", {"exception.message": f"token={SECRET}"})
    with tracer.start_as_current_span("b", attributes={"password": SECRET, "n": f"token={SECRET}"}):
        pass
    first, second = sink.get_finished_spans()
    assert first.attributes == {"note": f"token={SECRET}"}
    assert first.events[0].attributes == {"exception.message": f"token={REDACTED}"}
    assert second.attributes == {"password": REDACTED, "n": f"token={SECRET}"}
    provider.shutdown()


def test_clean_spans_pass_through_as_the_same_object() -> None:
    """A span without sensitive data is exported as is: no copy is made."""
    seen: list[ReadableSpan] = []

    class Keep(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            seen.extend(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    wrapper = ScrubbingSpanExporter(Keep(), Scrubber())
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /items/{id}", attributes={"http.route": "/x"}) as span:
        pass
    assert isinstance(span, ReadableSpan)
    assert wrapper.export([span]) is SpanExportResult.SUCCESS
    assert seen[0] is span


class _PlainMapping(Mapping[str, object]):
    """A mapping with no copy() of its own, as a hand-built ReadableSpan might carry."""

    def __init__(self, data: dict[str, object]) -> None:
        self.data = data

    def __getitem__(self, key: str) -> object:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class _OddCopy(_PlainMapping):
    """A mapping whose copy() is not a dict."""

    def copy(self) -> _OddCopy:
        return _OddCopy(dict(self.data))


@pytest.mark.parametrize("mapping", [_PlainMapping, _OddCopy, dict])
def test_spans_with_any_attribute_mapping_are_scrubbed(
    mapping: Callable[[dict[str, object]], Mapping[str, Any]],
) -> None:
    """The cheap dict copy is an optimisation only: other mappings are scrubbed the same way."""
    sink = InMemorySpanExporter()
    wrapper = ScrubbingSpanExporter(sink, Scrubber())
    dirty = ReadableSpan("x", attributes=mapping({"password": SECRET, "note": f"token={SECRET}"}))
    listed = ReadableSpan("l", attributes=mapping({"tags": ["a", f"token={SECRET}"]}))
    clean = ReadableSpan("y", attributes=mapping({"url.path": "/a", "n": 1, "tags": ["a"]}))
    for _ in range(2):  # the second time from the caches
        sink.clear()
        wrapper.export([dirty, listed, clean])
        out_dirty, out_listed, out_clean = sink.get_finished_spans()
        assert dict(out_dirty.attributes or {}) == {
            "password": REDACTED,
            "note": f"token={REDACTED}",
        }
        assert dict(out_listed.attributes or {}) == {"tags": ["a", f"token={REDACTED}"]}
        assert out_clean is clean


def test_span_path_caches_stay_bounded() -> None:
    """Thousands of spans with never-seen values and keys leave every cache within its bound."""
    scrubber = Scrubber(cache_size=64)
    wrapper = ScrubbingSpanExporter(InMemorySpanExporter(), scrubber)
    spans = [
        ReadableSpan(name="s", attributes={f"k{i % 200}": f"/items/{i}", "port": 20000 + i})
        for i in range(3000)
    ]
    assert wrapper.export(spans) is SpanExportResult.SUCCESS
    assert len(scrubber._clean) <= 64
    assert len(scrubber._key_verdicts) <= 64
    assert len(scrubber._plain_keys) <= 64


def test_clean_spans_with_events_links_and_status_pass_through() -> None:
    """Events, links and a status description send a span the long way, which still copies
    nothing when nothing matches."""
    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent:
        pass
    link = Link(parent.get_span_context(), {"peer": "a"})
    with tracer.start_as_current_span("job", links=[link]) as span:
        span.add_event("retry", {"attempt": 2})
        span.set_status(Status(StatusCode.ERROR, "upstream timed out"))
    spans = finished.get_finished_spans()
    sink = InMemorySpanExporter()
    wrapper = ScrubbingSpanExporter(sink, Scrubber())
    for _ in range(2):  # the second time from the caches
        sink.clear()
        wrapper.export(spans)
        assert all(a is b for a, b in zip(sink.get_finished_spans(), spans, strict=True))
    provider.shutdown()


def test_copy_keeps_every_other_field_and_drop_counts(
    tracer: Tracer, sink: InMemorySpanExporter
) -> None:
    """The scrubbed copy has the original's ids, times, kind, scope, resource and drop counts."""
    with tracer.start_as_current_span("many", attributes={f"a{i}": i for i in range(7)}) as span:
        span.set_attribute("secret", SECRET)
    (exported,) = sink.get_finished_spans()
    assert isinstance(span, ReadableSpan)
    assert exported is not span
    assert exported.dropped_attributes == span.dropped_attributes == 3
    for name in ("name", "kind", "parent", "start_time", "end_time", "resource", "status"):
        assert getattr(exported, name) == getattr(span, name), name
    assert exported.get_span_context() == span.get_span_context()
    assert exported.instrumentation_scope == span.instrumentation_scope


def test_readable_span_public_surface_is_what_the_copy_covers() -> None:
    """Fails loudly if the SDK adds a public ReadableSpan field the copy would not carry."""
    public = {name for name in dir(ReadableSpan) if not name.startswith("_")}
    assert public == {
        "attributes", "context", "dropped_attributes", "dropped_events", "dropped_links",
        "end_time", "events", "get_span_context", "instrumentation_info",
        "instrumentation_scope", "kind", "links", "name", "parent", "resource", "start_time",
        "status", "to_json",
    }  # fmt: skip


def test_scrub_failure_drops_the_batch_instead_of_leaking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If scrubbing raises, nothing is exported and the export reports failure."""
    monkeypatch.setenv("PACA_OTEL_RAISE_INTERNAL", "0")
    sink = InMemorySpanExporter()

    class Broken(Scrubber):
        def needs_scrub(self, attributes: Mapping[str, object], *, values: bool = True) -> bool:
            raise RuntimeError("boom")

    wrapper = ScrubbingSpanExporter(sink, Broken())
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("x", attributes={"password": SECRET}) as span:
        pass
    assert isinstance(span, ReadableSpan)
    assert wrapper.export([span]) is SpanExportResult.FAILURE
    assert sink.get_finished_spans() == ()


def test_shutdown_and_flush_reach_the_wrapped_exporter(sink: InMemorySpanExporter) -> None:
    """force_flush and shutdown are delegated."""
    wrapper = ScrubbingSpanExporter(sink, Scrubber())
    assert wrapper.force_flush() is True
    wrapper.shutdown()
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("x") as span:
        pass
    assert isinstance(span, ReadableSpan)
    wrapper.export([span])
    assert sink.get_finished_spans() == ()  # a shut-down in-memory exporter keeps nothing
