"""paca_otel.testing: the fixtures a user's own tests can use."""

from __future__ import annotations

from opentelemetry import trace

from paca_otel import MetricsCollector, testing


def test_capture_records_spans_metrics_and_logs() -> None:
    """capture() configures in-memory exporters and hands them over."""
    import logging

    with testing.capture(service_name="t", system_metrics=False, logs=True) as captured:
        with trace.get_tracer("t").start_as_current_span("work"):
            MetricsCollector().increment("jobs.done")
            logging.getLogger("t.app").warning("careful")
        captured.telemetry.force_flush()
        assert [s.name for s in captured.spans.get_finished_spans()] == ["work"]
        assert "jobs.done" in captured.metric_names()
        bodies = [r.log_record.body for r in captured.logs.get_finished_logs()]
        assert "careful" in bodies


def test_static_source_is_exported_for_user_tests() -> None:
    """Users get the fake system source without reaching into internals."""
    source = testing.StaticSource()
    source.mem = testing.MemoryStats(total=100, states={"used": 50, "free": 50})
    assert source.memory().total == 100
