"""SpanFanOut: paca-otel's own span processors behind one provider slot."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from paca_otel.telemetry._fanout import SpanFanOut


class _Recorder(SpanProcessor):
    def __init__(self, log: list[str], name: str, *, flushed: bool = True) -> None:
        self.log = log
        self.name = name
        self.flushed = flushed

    def on_end(self, span: ReadableSpan) -> None:
        self.log.append(f"{self.name}.end:{span.name}")

    def shutdown(self) -> None:
        self.log.append(f"{self.name}.shutdown")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.log.append(f"{self.name}.flush")
        return self.flushed


class _Starter(_Recorder):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.log.append(f"{self.name}.start:{span.name}")


def test_each_processor_sees_each_span_in_order() -> None:
    """on_end reaches every processor in order; on_start only those that implement it."""
    log: list[str] = []
    provider = TracerProvider()
    provider.add_span_processor(SpanFanOut([_Recorder(log, "a"), _Starter(log, "b")]))
    provider.get_tracer("t").start_span("s").end()
    assert log == ["b.start:s", "a.end:s", "b.end:s"]


def test_processors_without_on_start_are_not_called_at_start() -> None:
    """A processor that keeps the base no-op on_start costs nothing when a span starts."""
    fan_out = SpanFanOut([_Recorder([], "a"), _Recorder([], "b")])
    assert fan_out._on_start == ()


def test_shutdown_and_flush_reach_every_processor() -> None:
    """shutdown and force_flush reach all; force_flush is False when one did not finish."""
    log: list[str] = []
    fan_out = SpanFanOut([_Recorder(log, "a", flushed=False), _Recorder(log, "b")])
    assert fan_out.force_flush(1_000) is False
    fan_out.shutdown()
    assert log == ["a.flush", "b.flush", "a.shutdown", "b.shutdown"]


def test_flush_past_its_deadline_is_false() -> None:
    """A zero timeout leaves nothing to flush with: False, not a hang."""
    log: list[str] = []
    assert SpanFanOut([_Recorder(log, "a")]).force_flush(0) is False
    assert log == []
