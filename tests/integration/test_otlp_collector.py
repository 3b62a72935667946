"""Traces, metrics and logs reach a real OTLP collector (rotel) over gRPC and HTTP/protobuf.

What users deploy is ``configure(...)`` pointed at a collector. These tests do the same: rotel
listens on 127.0.0.1 and forwards everything to an in-memory OTLP receiver, so a signal counts
as delivered only once it has crossed a real collector. The second half checks the failure
mode users hit first: a collector that is not there must not stop the app or flood its logs.
"""

from __future__ import annotations

import logging

import pytest

from paca_otel._setup import Telemetry, configure
from paca_otel.signals._metrics import MetricsCollector
from tests.integration.conftest import RotelCollector, port_open, wait_until
from tests.integration.otlp_receiver import OtlpReceiver
from tests.peers import free_port

pytestmark = [pytest.mark.peer("rotel"), pytest.mark.timeout(40)]

DELIVERY_TIMEOUT_S = 15.0


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_span_metric_and_log_arrive_through_rotel(
    rotel_collector: RotelCollector, protocol: str
) -> None:
    """A span, a metric and a log record each cross rotel to the receiver after force_flush."""
    service = f"paca-it-{protocol.replace('/', '-')}"
    telemetry = configure(
        service_name=service,
        traces_exporter="otlp",
        metrics_exporter="otlp",
        logs_exporter="otlp",
        otlp_endpoint=rotel_collector.endpoint(protocol),
        otlp_protocol=protocol,
        metric_export_interval=60_000,  # only force_flush exports, so the test proves it does
        logs=True,
        system_metrics=False,
    )

    with telemetry.tracer_provider.get_tracer("paca_it").start_as_current_span("checkout"):
        MetricsCollector().increment("paca_it.orders", 1, {"shop": "a"})
        logging.getLogger("paca_it").warning("order placed %s", 42)
    assert telemetry.force_flush(timeout_millis=10_000)

    receiver = rotel_collector.receiver

    def delivered(r: OtlpReceiver) -> bool:
        return (
            "checkout" in r.span_names()
            and "paca_it.orders" in r.metric_names()
            and any("order placed 42" in str(body) for body in r.log_bodies())
        )

    assert receiver.wait_for(delivered, DELIVERY_TIMEOUT_S), receiver.summary()
    assert service in receiver.service_names(), receiver.summary()


def test_log_record_is_linked_to_its_span(rotel_collector: RotelCollector) -> None:
    """A log emitted inside a span arrives carrying that span's trace and span ids."""
    telemetry = configure(
        service_name="paca-it-correlation",
        traces_exporter="otlp",
        metrics_exporter="none",
        logs_exporter="otlp",
        otlp_endpoint=rotel_collector.grpc_endpoint,
        otlp_protocol="grpc",
        logs=True,
        system_metrics=False,
    )
    tracer = telemetry.tracer_provider.get_tracer("paca_it")
    with tracer.start_as_current_span("charge") as span:
        logging.getLogger("paca_it").warning("charging card")
        context = span.get_span_context()
    assert telemetry.force_flush(timeout_millis=10_000)

    receiver = rotel_collector.receiver

    def has_log(r: OtlpReceiver) -> bool:
        return any("charging card" in str(body) for body in r.log_bodies())

    assert receiver.wait_for(has_log, DELIVERY_TIMEOUT_S), receiver.summary()
    record = next(rec for rec in receiver.log_records() if "charging card" in str(rec.body))
    assert record.trace_id == context.trace_id.to_bytes(16, "big")
    assert record.span_id == context.span_id.to_bytes(8, "big")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_unreachable_collector_starts_and_warns_once(
    caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    """With nothing listening on the endpoint, configure returns at once and warns exactly once."""
    closed_port = free_port()  # bound and released: nothing listens there
    caplog.set_level(logging.WARNING)

    telemetry = configure(
        service_name="paca-it-unreachable",
        traces_exporter="otlp",
        metrics_exporter="otlp",
        logs_exporter="otlp",
        otlp_endpoint=f"http://127.0.0.1:{closed_port}",
        otlp_protocol=protocol,
        # Bounds each export attempt: the SDK's force_flush waits out the exporter's whole
        # retry budget (7 s with the 10 s default), whatever timeout it is given.
        otlp_timeout=1_000,
        logs=False,
        system_metrics=False,
    )

    # Exercise the export path too: its failures must not add warnings of their own.
    with telemetry.tracer_provider.get_tracer("paca_it").start_as_current_span("lost"):
        MetricsCollector().increment("paca_it.lost", 1)
    telemetry.force_flush(timeout_millis=1_500)

    def warnings() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.levelno >= logging.WARNING]

    assert wait_until(lambda: bool(warnings()), timeout=5.0), "no warning about the collector"
    telemetry.shutdown(timeout_millis=1_000)  # joins the exporters: no late duplicate after it
    found = warnings()
    assert len(found) == 1, [f"{r.name}: {r.getMessage()}" for r in found]
    assert str(closed_port) in found[0].getMessage()


def _dropped_spans(telemetry: Telemetry) -> dict[str, int]:
    """paca_otel.dropped{signal="traces"} by reason, read from the handle's in-memory reader."""
    data = telemetry.collection.collect_now()
    found: dict[str, int] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name != "paca_otel.dropped":
                    continue
                for point in metric.data.data_points:  # type: ignore[union-attr]  # a Sum
                    attrs = point.attributes or {}
                    if attrs.get("signal") == "traces":
                        found[str(attrs.get("reason"))] = int(point.value)  # type: ignore[union-attr]  # a Sum point
    return found


def test_spans_lost_while_the_collector_is_down_are_counted(
    rotel_collector: RotelCollector,
) -> None:
    """Collector down: lost spans are counted; back up: spans arrive; every span is accounted."""
    telemetry = configure(
        service_name="paca-it-drops",
        traces_exporter="otlp",
        metrics_exporter="none",
        otlp_endpoint=rotel_collector.grpc_endpoint,
        otlp_protocol="grpc",
        otlp_timeout=1_000,  # bounds the exporter's retries while the collector is down
        system_metrics=False,
    )
    tracer = telemetry.tracer_provider.get_tracer("paca_it")
    receiver = rotel_collector.receiver

    rotel_collector.peer.stop()
    for i in range(40):
        tracer.start_span(f"lost-{i}").end()
    telemetry.force_flush(timeout_millis=5_000)
    assert wait_until(lambda: _dropped_spans(telemetry).get("export_failed", 0) == 40, 10.0), (
        _dropped_spans(telemetry)
    )

    rotel_collector.peer.start()
    rotel_collector.peer.wait_ready(
        lambda: port_open(int(rotel_collector.grpc_endpoint.rsplit(":", 1)[1]))
    )
    created = 40
    attempts = 0

    def one_arrives() -> bool:
        # gRPC reconnects with backoff, so an early batch may still fail (and is counted).
        nonlocal created, attempts
        attempts += 1
        created += 1
        tracer.start_span(f"kept-{attempts}").end()
        telemetry.force_flush(timeout_millis=3_000)
        return receiver.wait_for(lambda r: f"kept-{attempts}" in r.span_names(), 2.0)

    assert wait_until(one_arrives, DELIVERY_TIMEOUT_S), receiver.summary()

    def accounted() -> int:
        arrived = {n for n in receiver.span_names() if n.startswith(("lost-", "kept-"))}
        return len(arrived) + sum(_dropped_spans(telemetry).values())

    # No silent loss: every span created arrived or was counted as dropped. (At least, not
    # exactly: an export that timed out may still have reached the collector; and a batch
    # may still be inside rotel when a later one has arrived, hence the bounded poll.)
    assert wait_until(lambda: accounted() >= created, DELIVERY_TIMEOUT_S), (
        accounted(),
        created,
        _dropped_spans(telemetry),
    )


def _round_values(receiver: OtlpReceiver) -> set[float]:
    """Values of the ``paca_it.round`` gauge in every metric export the receiver got."""
    seen: set[float] = set()
    for request in receiver.metric_requests():
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == "paca_it.round":
                        seen.update(p.as_double for p in metric.gauge.data_points)
    return seen


def test_bad_values_and_labels_do_not_cost_the_batch(rotel_collector: RotelCollector) -> None:
    """After True, 10**400, 2**70 and a lone surrogate were offered, 5 of 5 exports arrive."""
    telemetry = configure(
        service_name="paca-it-bad-values",
        traces_exporter="none",
        metrics_exporter="otlp",
        logs_exporter="none",
        otlp_endpoint=rotel_collector.grpc_endpoint,
        otlp_protocol="grpc",
        metric_export_interval=60_000,  # only force_flush exports: one export per round
        system_metrics=False,
    )
    collector = MetricsCollector()
    collector.set_gauge("paca_it.flag", True)  # type: ignore[arg-type]  # the bad value is the test
    collector.set_gauge("paca_it.huge", 10**400)
    collector.increment("paca_it.big", 2**70)
    collector.set_gauge("paca_it.user", 1.0, {"user": "\udcff", "id": 2**70, "gone": None})  # type: ignore[dict-item]  # the bad labels are the test
    for round_number in range(5):
        collector.set_gauge("paca_it.round", float(round_number))
        assert telemetry.force_flush(timeout_millis=10_000)

    receiver = rotel_collector.receiver

    def all_rounds(r: OtlpReceiver) -> bool:
        return _round_values(r) == {0.0, 1.0, 2.0, 3.0, 4.0}

    assert receiver.wait_for(all_rounds, DELIVERY_TIMEOUT_S), (
        f"rounds seen: {sorted(_round_values(receiver))}; {receiver.summary()}"
    )
    assert "paca_it.flag" not in receiver.metric_names()
    user = [
        {a.key: a.value.string_value for a in point.attributes}
        for request in receiver.metric_requests()
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "paca_it.user"
        for point in metric.gauge.data_points
    ]
    assert user
    assert user[0] == {"user": "\ufffd", "id": str(2**70)}
