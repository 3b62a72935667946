"""Service-wide RED figures: latency sketches and the merge of workers' windows."""

from __future__ import annotations

import random

import pytest
from opentelemetry.sdk.trace import TracerProvider

from paca_otel.pipeline._mpfile import FileFormatError
from paca_otel.pipeline._mpred import (
    RELATIVE_ACCURACY,
    decode_section,
    encode_section,
    merge_sections,
    quantile,
    section_of,
    sketch_of,
)
from paca_otel.pipeline._spans import REDSpanProcessor, REDWindow, percentile
from tests.pipeline.test_spans import FakeClock, request


def test_sketch_percentiles_are_within_the_relative_accuracy() -> None:
    """p50/p95/p99 read from a sketch are within 1 % (plus a rank) of the exact ones."""
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(-3, 1.2) for _ in range(5000))
    sketch = sketch_of(values)
    for q in (0.5, 0.95, 0.99):
        exact = percentile(values, q)
        estimate = quantile(sketch, q)
        assert estimate is not None
        assert abs(estimate - exact) <= 2 * RELATIVE_ACCURACY * exact


def test_zero_and_empty() -> None:
    """Zero durations land in the zero bucket; an empty sketch has no quantile."""
    assert quantile(sketch_of([0.0, 0.0, 0.0]), 0.5) == 0.0
    assert quantile({}, 0.5) is None


def test_thinned_samples_stand_for_all_requests() -> None:
    """A window thinned to few samples still weighs as many requests as it counted."""
    (pair,) = section_of([REDWindow("/a", "GET", 1000, 10, [0.1] * 10)], 60.0)[1]
    assert sum(pair[4].values()) == pytest.approx(1000)


def test_workers_windows_merge_into_service_figures() -> None:
    """Counts and rates add up per route and overall; percentiles come from all samples."""
    fast = section_of([REDWindow("/a", "GET", 100, 0, [0.01] * 100)], 50.0)
    slow = section_of([REDWindow("/a", "GET", 100, 50, [1.0] * 100),
                       REDWindow("/b", None, 10, 10, [0.5] * 10)], 25.0)  # fmt: skip
    figures = merge_sections([fast, slow])
    by_route = {f.route: f for f in figures}
    a, b, overall = by_route["/a"], by_route["/b"], by_route[None]
    assert (a.requests, a.errors, a.error_ratio) == (200, 50, 0.25)
    assert a.rate == pytest.approx(100 / 50 + 100 / 25)
    assert a.p50 == pytest.approx((0.01 + 1.0) / 2, rel=2 * RELATIVE_ACCURACY)
    assert a.p99 == pytest.approx(1.0, rel=RELATIVE_ACCURACY)
    assert (b.method, b.requests, b.error_ratio) == (None, 10, 1.0)
    assert (overall.requests, overall.errors) == (210, 60)
    assert figures[-1].route is None


def test_a_section_round_trips_and_bad_ones_are_refused() -> None:
    """Encoding keeps every figure; anything malformed raises FileFormatError."""
    section = section_of([REDWindow("/a", "GET", 3, 1, [0.1, 0.2, 0.3])], 12.5)
    assert decode_section(encode_section(section)) == section
    for bad in (b"", b"[]", b'{"span": -1, "pairs": []}', b'{"span": 1, "pairs": [[1]]}',
                b'{"span": 1, "pairs": [["/a", null, -1, 0, []]]}',
                b'{"span": 1, "pairs": [["/a", null, 1, 0, [[1.5, 1]]]]}'):  # fmt: skip
        with pytest.raises(FileFormatError):
            decode_section(bad)


def test_the_processor_hands_out_the_windows_its_figures_come_from() -> None:
    """drain_windows gives per (route, method) counts and sorted durations, and the span."""
    clock = FakeClock()
    processor = REDSpanProcessor(window=60.0, clock=clock)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for ms, status in ((30, 200), (10, 500), (20, 200)):
        request(tracer, "/a", ms=ms, status=status)
    clock.now += 30
    windows, span_s = processor.drain_windows()
    provider.shutdown()
    assert span_s == 30.0
    assert windows == [REDWindow("/a", "GET", 3, 1, [0.01, 0.02, 0.03])]
    (figure, _) = merge_sections([section_of(windows, span_s)])
    assert (figure.requests, figure.errors, figure.rate) == (3, 1, 0.1)
    assert figure.p50 == pytest.approx(0.02, rel=RELATIVE_ACCURACY)
