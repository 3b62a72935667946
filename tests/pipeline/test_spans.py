"""Tests for the RED span processor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from paca_otel._internal import drops
from paca_otel.errors import ConfigError
from paca_otel.pipeline._spans import OVERFLOW_ROUTE, REDSpanProcessor, REDStats, percentile

MS = 1_000_000  # nanoseconds


class FakeClock:
    """A settable clock for the processor's window arithmetic."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at t=1000 s."""
    return FakeClock()


@pytest.fixture
def red(clock: FakeClock) -> REDSpanProcessor:
    """A processor with a 60 s window on the fake clock."""
    return REDSpanProcessor(window=60.0, clock=clock)


@pytest.fixture
def tracer(red: REDSpanProcessor) -> Iterator[Tracer]:
    """A real SDK tracer whose only processor is ``red``."""
    provider = TracerProvider()
    provider.add_span_processor(red)
    yield provider.get_tracer("test")
    provider.shutdown()


def request(
    tracer: Tracer,
    route: str | None = "/a",
    *,
    method: str = "GET",
    ms: int = 10,
    status: int = 200,
    kind: SpanKind = SpanKind.SERVER,
    error: bool = False,
) -> None:
    """End one span that took ``ms`` milliseconds (explicit timestamps)."""
    attrs: dict[str, str | int] = {
        "http.request.method": method,
        "http.response.status_code": status,
    }
    if route is not None:
        attrs["http.route"] = route
    span = tracer.start_span(f"{method} {route}", kind=kind, attributes=attrs, start_time=0)
    if error:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=ms * MS)


def by_key(stats: list[REDStats]) -> dict[tuple[str | None, str | None], REDStats]:
    return {(s.route, s.method): s for s in stats}


def test_percentile_linear_interpolation() -> None:
    """percentile matches numpy's linear method on known inputs."""
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.95) == pytest.approx(95.05)
    assert percentile(values, 0.99) == pytest.approx(99.01)
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="empty"):
        percentile([], 0.5)


def test_red_figures_per_route_and_overall(
    red: REDSpanProcessor, tracer: Tracer, clock: FakeClock
) -> None:
    """Counts, error ratio, rate and exact percentiles per (route, method) and for all routes."""
    for ms in range(1, 101):
        request(tracer, "/a", ms=ms, status=500 if ms <= 10 else 200)
    request(tracer, "/b", method="POST", ms=1000, error=True)
    clock.now += 10.0  # 10 s after start: the rate divides by elapsed time, not the window
    stats = by_key(red.drain())
    a = stats[("/a", "GET")]
    assert (a.requests, a.errors) == (100, 10)
    assert a.error_ratio == pytest.approx(0.1)
    assert a.rate == pytest.approx(10.0)
    assert a.p50 == pytest.approx(0.0505)
    assert a.p95 == pytest.approx(0.09505)
    assert a.p99 == pytest.approx(0.09901)
    b = stats[("/b", "POST")]
    assert (b.requests, b.errors) == (1, 1)
    assert b.p50 == pytest.approx(1.0)
    overall = stats[(None, None)]
    assert (overall.requests, overall.errors) == (101, 11)
    assert overall.rate == pytest.approx(10.1)
    assert list(stats)[-1] == (None, None)


def test_non_server_spans_without_route_are_ignored(red: REDSpanProcessor, tracer: Tracer) -> None:
    """INTERNAL/CLIENT spans count only when they carry http.route."""
    request(tracer, None, kind=SpanKind.INTERNAL)
    request(tracer, None, kind=SpanKind.CLIENT)
    request(tracer, "/r", kind=SpanKind.INTERNAL)
    request(tracer, None, kind=SpanKind.SERVER, method="GET")  # route falls back to span name
    stats = by_key(red.drain())
    assert set(stats) == {("/r", "GET"), ("GET None", "GET"), (None, None)}


def test_status_code_as_string_and_4xx(red: REDSpanProcessor, tracer: Tracer) -> None:
    """A string "503" counts as an error; 4xx does not."""
    span = tracer.start_span("x", kind=SpanKind.SERVER, attributes={"http.status_code": "503"})
    span.end()
    request(tracer, "x", status=404)
    stats = by_key(red.drain())
    assert stats[(None, None)].errors == 1


def test_sliding_window_expires_and_reports_zero(
    red: REDSpanProcessor, tracer: Tracer, clock: FakeClock
) -> None:
    """Requests leave the window after `window` seconds; a quiet route then reports 0."""
    request(tracer, "/a", ms=5)
    clock.now += 30.0
    red.drain()
    request(tracer, "/a", ms=7)
    clock.now += 30.0
    stats = by_key(red.drain())
    assert stats[("/a", "GET")].requests == 2
    clock.now += 30.0  # the first drain's bucket (t=1030) is now 60 s old
    stats = by_key(red.drain())
    assert stats[("/a", "GET")].requests == 1
    assert stats[("/a", "GET")].p50 == pytest.approx(0.007)
    clock.now += 60.0
    quiet = by_key(red.drain())[("/a", "GET")]
    assert (quiet.requests, quiet.rate, quiet.error_ratio, quiet.p50) == (0, 0.0, 0.0, None)


def test_quiet_routes_forgotten_after_forget_after(clock: FakeClock) -> None:
    """A route with no requests for forget_after seconds is no longer reported."""
    red = REDSpanProcessor(window=10.0, forget_after=100.0, clock=clock)
    provider = TracerProvider()
    provider.add_span_processor(red)
    request(provider.get_tracer("t"), "/a")
    red.drain()
    clock.now += 50.0
    assert len(red.drain()) == 2
    clock.now += 60.0
    assert red.drain() == []
    provider.shutdown()


def test_pending_deque_is_bounded_and_counts_drops(clock: FakeClock) -> None:
    """Beyond max_pending the oldest spans are dropped and counted."""
    red = REDSpanProcessor(max_pending=5, clock=clock)
    provider = TracerProvider()
    provider.add_span_processor(red)
    tracer = provider.get_tracer("t")
    for ms in range(1, 9):
        request(tracer, "/a", ms=ms)
    assert red.dropped == 3
    stats = by_key(red.drain())
    assert stats[("/a", "GET")].requests == 5
    assert stats[("/a", "GET")].p50 == pytest.approx(0.006)  # 4..8 ms survived
    provider.shutdown()


def test_max_routes_folds_into_other(clock: FakeClock) -> None:
    """Distinct (route, method) pairs beyond max_routes are reported as __other__."""
    red = REDSpanProcessor(max_routes=2, clock=clock)
    provider = TracerProvider()
    provider.add_span_processor(red)
    tracer = provider.get_tracer("t")
    for route in ("/1", "/2", "/3", "/4"):
        request(tracer, route)
    stats = by_key(red.drain())
    assert stats[(OVERFLOW_ROUTE, None)].requests == 2
    assert stats[(None, None)].requests == 4
    provider.shutdown()


def test_max_samples_thins_percentile_input(clock: FakeClock) -> None:
    """Percentiles use at most max_samples evenly spread samples; counts stay exact."""
    red = REDSpanProcessor(max_samples=10, clock=clock)
    provider = TracerProvider()
    provider.add_span_processor(red)
    tracer = provider.get_tracer("t")
    for ms in range(1, 101):
        request(tracer, "/a", ms=ms)
    stats = by_key(red.drain())
    assert stats[("/a", "GET")].requests == 100
    assert stats[("/a", "GET")].p50 == pytest.approx(0.046, abs=0.01)
    provider.shutdown()


def test_config_errors() -> None:
    """Bad windows and bounds are rejected when the processor is built."""
    with pytest.raises(ConfigError, match="window"):
        REDSpanProcessor(window=0)
    with pytest.raises(ConfigError, match="max_pending"):
        REDSpanProcessor(max_pending=0)


def test_flush_and_shutdown_are_noops(red: REDSpanProcessor) -> None:
    """force_flush succeeds immediately and shutdown has nothing to release."""
    assert red.force_flush() is True
    red.shutdown()


def test_routes_and_methods_become_safe_label_values(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone surrogate in a route, span name or method becomes U+FFFD; long routes are cut."""
    counted: list[str] = []
    monkeypatch.setattr(drops, "add", lambda reason, amount=1: counted.append(reason))
    red = REDSpanProcessor(window=60.0, clock=clock, label_value_max_length=8)
    provider = TracerProvider()
    provider.add_span_processor(red)
    tracer = provider.get_tracer("test")
    request(tracer, "/u/\udcff", method="G\udcffT")
    request(tracer, "/" + "x" * 10_000)
    request(tracer, None, method="GET")  # route from the span name "GET None"
    provider.shutdown()
    stats = by_key(red.drain())
    assert set(stats) == {
        ("/u/\ufffd", "G\ufffdT"),
        ("/xxxxxxx", "GET"),
        ("GET None", "GET"),
        (None, None),
    }
    for route, method in stats:
        (route or "").encode("utf-8")
        (method or "").encode("utf-8")
    assert sorted(counted) == [
        "label_value_truncated",
        "label_value_unencodable",
        "label_value_unencodable",
    ]


def test_route_limit_defaults_to_the_process_setting(clock: FakeClock) -> None:
    """Without an explicit limit the processor takes label_value_max_length at construction."""
    from paca_otel.signals._labels import DEFAULT_LABEL_VALUE_MAX_LENGTH

    assert REDSpanProcessor(clock=clock).label_value_max_length == DEFAULT_LABEL_VALUE_MAX_LENGTH
