"""Tests for paca_otel.signals._tracing: @traced and span() on a private TracerProvider."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, Tracer

from paca_otel.signals import _tracing as tracing
from paca_otel.signals._tracing import get_tracer, span, traced


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def tracer(provider: TracerProvider) -> Tracer:
    return provider.get_tracer("test")


def _only(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    return spans[0]


def _assert_error(finished: ReadableSpan, exc_type: type[BaseException], message: str) -> None:
    assert finished.status.status_code is StatusCode.ERROR
    events = [e for e in finished.events if e.name == "exception"]
    assert len(events) == 1
    attributes = events[0].attributes or {}
    assert attributes["exception.type"] == exc_type.__name__
    assert attributes["exception.message"] == message


def test_span_context_manager(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    """span() opens a current span with the given name and attributes; status stays UNSET."""
    with span("load", {"user.id": 7}, tracer=tracer) as current:
        assert trace.get_current_span() is current
        current.set_attribute("extra", "yes")
    finished = _only(exporter)
    assert finished.name == "load"
    assert dict(finished.attributes or {}) == {"user.id": 7, "extra": "yes"}
    assert finished.status.status_code is StatusCode.UNSET


def test_span_records_exception(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    """An exception leaving span() is recorded, sets ERROR, and propagates."""
    with pytest.raises(KeyError), span("boom", tracer=tracer):
        raise KeyError("k")
    _assert_error(_only(exporter), KeyError, "'k'")


def test_spans_nest(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    """A span opened inside another is its child."""
    with span("outer", tracer=tracer) as outer, span("inner", tracer=tracer):
        pass
    inner, finished_outer = exporter.get_finished_spans()
    assert inner.parent is not None
    assert inner.parent.span_id == outer.get_span_context().span_id
    assert finished_outer.name == "outer"


def test_traced_names_span_after_function(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    """@traced names the span after the function and keeps its result and metadata."""
    tracing_tracer = tracer

    @traced(tracer=tracing_tracer)
    def compute(x: int) -> int:
        """Doc."""
        return x + 1

    assert compute(1) == 2
    assert compute.__doc__ == "Doc."
    finished = _only(exporter)
    assert finished.name.endswith("compute")
    assert finished.attributes is not None
    assert str(finished.attributes["code.function.name"]).startswith(__name__)


def test_traced_without_parentheses_uses_global_tracer(
    provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """@traced with no call at all works, resolving the tracer at call time, not import time."""

    @traced
    def compute() -> str:
        return "ok"

    # The "global" provider appears only after decoration, as with configure() after import.
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(tracing, "_cached", None)
    assert compute() == "ok"
    assert _only(exporter).name.endswith("compute")


def test_traced_with_name_and_attributes(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    """@traced('name', attributes=...) sets both on every span."""

    @traced("charge card", attributes={"payment.provider": "acme"}, tracer=tracer)
    def charge() -> None:
        pass

    @traced(name="charge card", attributes={"payment.provider": "acme"}, tracer=tracer)
    def charge_again() -> None:
        pass

    charge()
    charge_again()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["charge card", "charge card"]
    assert all((s.attributes or {})["payment.provider"] == "acme" for s in spans)


def test_traced_sync_exception(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    """A sync function that raises gets an ERROR span with an exception event."""

    @traced(tracer=tracer)
    def fail() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        fail()
    _assert_error(_only(exporter), ValueError, "bad input")


async def test_traced_async(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    """An async function's span covers the awaited body, which sees it as current."""
    seen: list[int] = []

    @traced("fetch", tracer=tracer)
    async def fetch() -> int:
        await asyncio.sleep(0)
        seen.append(trace.get_current_span().get_span_context().span_id)
        return 42

    assert asyncio.iscoroutinefunction(fetch)
    assert await fetch() == 42
    finished = _only(exporter)
    assert finished.context is not None
    assert seen == [finished.context.span_id]
    assert finished.status.status_code is StatusCode.UNSET


async def test_traced_async_exception(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    """An async function that raises gets an ERROR span with an exception event."""

    @traced(tracer=tracer)
    async def fail() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        await fail()
    _assert_error(_only(exporter), RuntimeError, "down")


async def test_concurrent_async_spans_stay_separate(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    """Concurrent tasks each get their own root span, not each other's children."""

    @traced("task", tracer=tracer)
    async def task() -> None:
        await asyncio.sleep(0)

    await asyncio.gather(task(), task(), task())
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    assert all(s.parent is None for s in spans)


def test_get_tracer_follows_the_global_provider(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_tracer() is cached per provider and switches when the global provider changes."""
    monkeypatch.setattr(tracing, "_cached", None)
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    first = get_tracer()
    assert get_tracer() is first
    other = TracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: other)
    assert get_tracer() is not first
    other.shutdown()
