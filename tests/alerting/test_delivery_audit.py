"""Audit regressions of delivery: payloads receivers accept, redirects, re-sends, hung peers."""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from paca_otel.alerting.channels import (
    AlertmanagerChannel,
    DeliveryError,
    EmailChannel,
    WebhookChannel,
)
from paca_otel.alerting.dispatcher import Dispatcher
from paca_otel.alerting.models import AlertEvent, Notification
from paca_otel.alerting.outbox import DEAD, Outbox
from tests.alerting.test_alertmanager_peer import (
    alertmanager,  # noqa: F401  # the real-Alertmanager fixture, shared with its own tests
    poll,
)
from tests.alerting.test_channels import Receiver, event, notification
from tests.alerting.test_outbox import Clock, MaxJitter, Scripted, down


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP receiver, stopped after the test."""
    peer = Receiver()
    yield peer
    peer.stop()


def test_webhook_delivers_an_infinite_value_as_null(receiver: Receiver) -> None:
    """A ratio over zero requests (+Inf) is still valid JSON: ``value`` is null, not a crash."""
    channel = WebhookChannel(receiver.url, timeout=5)
    try:
        channel.send(notification(event(value=math.inf)))
    finally:
        channel.close()
    [request] = receiver.wait_for(1)
    assert request["body"]["alerts"][0]["value"] is None


def test_redirect_is_a_failed_delivery_not_a_success() -> None:
    """A 301 means the POST did not reach the receiver: a non-retryable DeliveryError."""

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(301)
            self.send_header("Location", "https://hooks.example/new?token=secret")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    channel = WebhookChannel(f"http://127.0.0.1:{server.server_address[1]}/hook", timeout=5)
    try:
        with pytest.raises(DeliveryError, match="HTTP 301") as caught:
            channel.send(notification())
    finally:
        channel.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert caught.value.retryable is False
    assert "https://hooks.example/new" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_email_subject_with_line_breaks_is_one_header_line() -> None:
    """A label value with a line break does not make the message unbuildable."""
    base = event()
    multi = AlertEvent(
        rule=base.rule,
        state=base.state,
        labels={"error": "Traceback:\n  boom"},
        annotations={},
        value=1.0,
        severity=base.severity,
        starts_at=base.starts_at,
    )
    channel = EmailChannel("127.0.0.1", 25, sender="paca@example.org", recipients="ops@x.org")
    message = channel.build_message(notification(multi, channel="email"))
    assert "\n" not in str(message["Subject"])
    assert "error=Traceback: boom" in str(message["Subject"])


@pytest.mark.peer("alertmanager")
def test_alertmanager_accepts_otel_attribute_names(
    alertmanager: tuple[str, Receiver],  # noqa: F811  # the fixture imported above
) -> None:
    """Dotted OTel label/annotation names are made Prometheus-valid, so Alertmanager takes them."""
    url, _hook = alertmanager
    dotted = AlertEvent(
        rule="HighLatency",
        state=event().state,
        labels={"cpu.mode": "idle", "service.name": "shop"},
        annotations={"runbook.url": "http://runbooks/x"},
        value=97.0,
        severity=event().severity,
        starts_at=time.time() - 5,
    )
    channel = AlertmanagerChannel(url, timeout=5)
    try:
        channel.send(notification(dotted, channel="alertmanager"))
    finally:
        channel.close()

    def ours() -> dict[str, Any] | None:
        alerts: list[dict[str, Any]] = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
        found = [a for a in alerts if a["labels"].get("alertname") == "HighLatency"]
        return found[0] if found else None

    alert = poll("the dotted alert in GET /api/v2/alerts", ours)
    assert alert["labels"]["cpu_mode"] == "idle"
    assert alert["labels"]["service_name"] == "shop"
    assert alert["annotations"]["runbook_url"] == "http://runbooks/x"


def test_firing_alert_dead_lettered_at_deadline_is_resent_when_receiver_is_back() -> None:
    """Alertmanager down past the deadline: a dead letter, yet re-sent while the alert fires."""
    clock = Clock()
    box = Outbox(clock=clock)
    channel = Scripted(name="alertmanager", errors=down(1000))
    channel.resend_interval = 60
    dispatcher = Dispatcher(
        box, {"alertmanager": channel}, clock=clock, rng=MaxJitter(), deadline=600
    )
    firing = notification(event(), channel="alertmanager")
    box.enqueue(firing)
    for _ in range(50):
        dispatcher.deliver_due()
        if box.dead_letters():
            break
        clock.now += 30
    assert [e.status for e in box.entries()] == [DEAD]
    channel.errors = []  # Alertmanager is back
    clock.now += 60
    dispatcher.deliver_due()
    assert channel.sent == [firing]
    assert box.next_due("alertmanager") == clock.now + 60  # and it keeps being refreshed
    box.close()


def test_failing_resends_do_not_each_wait_for_the_receiver() -> None:
    """Once a re-send fails in a pass, the other due re-sends are postponed, not attempted."""
    clock = Clock()
    box = Outbox(clock=clock)
    channel = Scripted(name="alertmanager")
    channel.resend_interval = 60
    dispatcher = Dispatcher(box, {"alertmanager": channel}, clock=clock)
    for rule in ("A", "B", "C"):
        box.enqueue(
            Notification(
                channel="alertmanager",
                group_key=rule,
                events=(event(rule=rule),),
                created_at=clock.now,
            )
        )
    assert dispatcher.deliver_due() == 3
    attempts = 0

    def failing(_: Notification) -> None:
        nonlocal attempts
        attempts += 1
        msg = "alertmanager hangs"
        raise DeliveryError(msg)

    channel.send = failing  # type: ignore[method-assign]  # the receiver goes down
    clock.now += 60
    dispatcher.deliver_due()
    assert attempts == 1
    assert box.next_due("alertmanager") == clock.now + 60
    box.close()


def test_hung_receiver_is_bounded_by_timeout_and_blocks_no_other_channel() -> None:
    """A webhook that accepts and never answers costs one timeout; the log channel goes on."""
    hung = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(hung.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    box = Outbox()
    webhook = WebhookChannel(f"http://127.0.0.1:{hung.getsockname()[1]}/", timeout=1.0)
    log = Scripted(name="log")
    dispatcher = Dispatcher(
        box, {"webhook": webhook, "log": log}, base_delay=30, max_delay=60, poll_interval=60
    )
    dispatcher.start()
    try:
        started = time.monotonic()
        box.enqueue(notification())
        box.enqueue(notification(channel="log"))
        poll("the log channel", lambda: log.sent or None, timeout=5)
        assert time.monotonic() - started < 0.9  # not behind the hung webhook's 1 s timeout
        entry = poll(
            "the webhook attempt to time out",
            lambda: next((e for e in box.entries(channel="webhook") if e.attempts), None),
            timeout=5,
        )
        assert time.monotonic() - started < 5
        assert entry.last_error is not None
        assert "ReadTimeout" in entry.last_error
    finally:
        dispatcher.stop(timeout=2)
        webhook.close()
        hung.close()
        for conn in accepted:
            conn.close()
        box.close()
