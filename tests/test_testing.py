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


async def test_capotel_fixture_captures_every_signal_and_notifications(
    capotel: testing.Captured,
) -> None:
    """The pytest plugin's fixture sees spans, metrics, logs and alert notifications."""
    import asyncio
    import logging
    import time

    from paca_otel import AlertManager, MetricsCollector, span

    with span("checkout"):
        pass
    await MetricsCollector().record_metric("orders_placed", 1, {"shop": "a"})
    logging.getLogger("shop").warning("low stock")
    alerts = AlertManager()
    await alerts.add_rule("orders", "orders_placed > 0", action="capture", cooldown=0)
    await alerts.evaluate()
    deadline = time.monotonic() + 10
    while not capotel.notifications and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert [s.name for s in capotel.spans.get_finished_spans()] == ["checkout"]
    assert "orders_placed" in capotel.metric_names()
    assert capotel.notifications[0].events[0].rule == "orders"


async def test_capture_leaves_the_collector_unfrozen() -> None:
    """A test session's heap is not frozen by an app captured in it (gc_freeze defaults off)."""
    import gc

    import httpx
    from fastapi import FastAPI

    gc.unfreeze()
    app = FastAPI()

    @app.get("/x")
    async def x() -> str:
        return "x"

    with testing.capture(app=app, system_metrics=False) as captured:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/x")).status_code == 200
        assert captured.telemetry.settings.gc_freeze is False
    assert gc.get_freeze_count() == 0
