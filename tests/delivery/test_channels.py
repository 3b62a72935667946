"""Channels render and send notifications; payloads checked against a real local HTTP peer."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from paca_otel.delivery.channels import (
    AlertmanagerChannel,
    DeliveryError,
    EmailChannel,
    LogChannel,
    NotificationChannel,
    SlackChannel,
    WebhookChannel,
    build_channel,
)
from paca_otel.delivery.channels._base import rfc3339
from paca_otel.delivery.channels._slack import COLOURS
from paca_otel.errors import ChannelError
from paca_otel.rules._models import AlertEvent, AlertState, Notification, Severity
from tests.peers import free_port

T0 = 1_700_000_000.0


class Receiver:
    """A real HTTP peer: records every POST, answers with scripted statuses, counts keys."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answered in order, then 200
        self.keys: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if status < 300:
                        key = self.headers.get("Idempotency-Key")
                        if key is None and isinstance(body, dict):
                            key = body.get("groupKey")
                        receiver.keys[str(key)] += 1
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                            "status": status,
                        }
                    )
                    receiver.arrived.notify_all()
                payload = b"{}" if status < 300 else b'{"error": "scripted"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``count`` successful requests arrived; return them all."""
        with self.arrived:
            self.arrived.wait_for(lambda: sum(self.keys.values()) >= count, timeout)
            return [r for r in self.requests if r["status"] < 300]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def event(
    rule: str = "HighLatency",
    state: AlertState = AlertState.FIRING,
    *,
    labels: dict[str, str] | None = None,
    severity: Severity = Severity.CRITICAL,
    value: float | None = 0.97,
    ends_at: float | None = None,
    starts_at: float = T0,
) -> AlertEvent:
    return AlertEvent(
        rule=rule,
        state=state,
        labels=labels if labels is not None else {"service": "api", "route": "/pay"},
        annotations={"summary": "p99 latency above 500 ms"},
        value=value,
        severity=severity,
        starts_at=starts_at,
        ends_at=ends_at,
    )


def notification(*events: AlertEvent, channel: str = "webhook") -> Notification:
    events = events or (event(),)
    return Notification(
        channel=channel,
        group_key=f'{{}}:{{alertname="{events[0].rule}"}}',
        events=events,
        created_at=T0 + 5,
        extra={"external_url": "http://paca.example/", "generator_url": "http://paca.example/r"},
    )


def test_webhook_posts_alertmanager_v4_payload(receiver: Receiver) -> None:
    """The webhook body has Alertmanager's v4 fields plus our idempotency key and header."""
    note = notification(event(), event(labels={"service": "api", "route": "/cart"}))
    channel = WebhookChannel(receiver.url + "/hook", headers={"Authorization": "Bearer t"})
    try:
        channel.send(note)
    finally:
        channel.close()
    (req,) = receiver.wait_for(1)
    body = req["body"]
    assert req["path"] == "/hook"
    assert req["headers"]["Idempotency-Key"] == note.idempotency_key
    assert req["headers"]["Authorization"] == "Bearer t"
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "webhook"
    assert body["groupKey"] == note.group_key
    assert body["idempotencyKey"] == note.idempotency_key
    assert body["externalURL"] == "http://paca.example/"
    assert body["commonLabels"] == {
        "alertname": "HighLatency",
        "severity": "critical",
        "service": "api",
    }
    assert body["groupLabels"] == body["commonLabels"]
    assert body["commonAnnotations"] == {"summary": "p99 latency above 500 ms"}
    first = body["alerts"][0]
    assert set(first) >= {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert first["startsAt"] == rfc3339(T0) == "2023-11-14T22:13:20.000Z"
    assert first["endsAt"] == "0001-01-01T00:00:00Z"
    assert first["labels"]["route"] == "/pay"
    assert first["fingerprint"] != body["alerts"][1]["fingerprint"]


def test_webhook_resolved_carries_end_time(receiver: Receiver) -> None:
    """A resolved notification reports status resolved and each alert's endsAt."""
    note = notification(event(state=AlertState.RESOLVED, ends_at=T0 + 60))
    channel = WebhookChannel(receiver.url)
    channel.send(note)
    channel.close()
    body = receiver.wait_for(1)[0]["body"]
    assert body["status"] == "resolved"
    assert body["alerts"][0]["endsAt"] == rfc3339(T0 + 60)


def test_webhook_delivers_an_infinite_value_as_null(receiver: Receiver) -> None:
    """A ratio over zero requests (+Inf) is still valid JSON: ``value`` is null, not a crash."""
    channel = WebhookChannel(receiver.url, timeout=5)
    try:
        channel.send(notification(event(value=math.inf)))
    finally:
        channel.close()
    [request] = receiver.wait_for(1)
    assert request["body"]["alerts"][0]["value"] is None


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (429, True), (408, True), (400, False), (404, False)],
)
def test_http_errors_map_to_delivery_error(
    receiver: Receiver, status: int, retryable: bool
) -> None:
    """HTTP >= 400 raises DeliveryError; only 5xx, 408 and 429 are retryable."""
    receiver.statuses = [status]
    channel = WebhookChannel(receiver.url)
    with pytest.raises(DeliveryError, match=f"HTTP {status}") as info:
        channel.send(notification())
    channel.close()
    assert info.value.retryable is retryable
    assert info.value.status == status
    assert isinstance(info.value, ChannelError)


def test_connection_refused_is_retryable() -> None:
    """A receiver that is down raises a retryable DeliveryError, not httpx's error."""
    channel = WebhookChannel(f"http://127.0.0.1:{free_port()}/hook", timeout=2)
    with pytest.raises(DeliveryError, match="ConnectError") as info:
        channel.send(notification())
    channel.close()
    assert info.value.retryable is True


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


def test_slack_payload_colours_by_state_and_severity(receiver: Receiver) -> None:
    """Slack gets text + a coloured attachment with blocks, and the idempotency key."""
    channel = SlackChannel(receiver.url + "/services/T0/B0/secret")
    firing = notification(event(severity=Severity.WARNING), channel="slack")
    resolved = notification(event(state=AlertState.RESOLVED, ends_at=T0 + 9), channel="slack")
    channel.send(firing)
    channel.send(resolved)
    channel.close()
    first, second = (r["body"] for r in receiver.wait_for(2))
    assert first["text"].startswith("[FIRING:1] HighLatency (route=/pay service=api)")
    assert first["attachments"][0]["color"] == COLOURS["warning"]
    assert second["text"].startswith("[RESOLVED] HighLatency")
    assert second["attachments"][0]["color"] == COLOURS["resolved"]
    blocks = first["attachments"][0]["blocks"]
    assert any("value: `0.97`" in b.get("text", {}).get("text", "") for b in blocks)
    assert first["idempotency_key"] == firing.idempotency_key
    assert receiver.requests[0]["headers"]["Idempotency-Key"] == firing.idempotency_key


def test_slack_url_is_redacted_in_repr_and_errors() -> None:
    """The webhook token in a Slack URL never shows in reprs or error messages."""
    channel = SlackChannel("https://hooks.slack.com/services/T000/B000/XXXXSECRET")
    assert "XXXXSECRET" not in repr(channel)
    down = SlackChannel(f"http://127.0.0.1:{free_port()}/services/T/B/TOKEN123?x=TOKEN123")
    with pytest.raises(DeliveryError) as info:
        down.send(notification(channel="slack"))
    down.close()
    assert "TOKEN123" not in str(info.value)


def test_alertmanager_payload_and_endpoint(receiver: Receiver) -> None:
    """Alertmanager gets a list of alerts at /api/v2/alerts; firing endsAt = now + 4 intervals."""
    now = T0 + 100
    channel = AlertmanagerChannel(receiver.url + "/", resend_interval=60, clock=lambda: now)
    assert channel.resend_interval == 60
    firing = notification(event(), channel="alertmanager")
    resolved = notification(
        event(state=AlertState.RESOLVED, ends_at=T0 + 50), channel="alertmanager"
    )
    channel.send(firing)
    channel.send(resolved)
    channel.close()
    first, second = receiver.wait_for(2)
    assert first["path"] == "/api/v2/alerts"
    (alert,) = first["body"]
    assert alert["labels"] == {
        "alertname": "HighLatency",
        "severity": "critical",
        "service": "api",
        "route": "/pay",
    }
    assert alert["startsAt"] == rfc3339(T0)
    assert alert["endsAt"] == rfc3339(now + 240)
    assert alert["generatorURL"] == "http://paca.example/r"
    assert alert["annotations"]["value"] == "0.97"
    assert second["body"][0]["endsAt"] == rfc3339(T0 + 50)


def test_log_channel_writes_structured_record(caplog: pytest.LogCaptureFixture) -> None:
    """The log channel logs one record on paca_otel.alerts with the alerts as extra fields."""
    note = notification(event(), channel="log")
    with caplog.at_level(logging.INFO, logger="paca_otel.alerts"):
        LogChannel().send(note)
        LogChannel().send(notification(event(state=AlertState.RESOLVED), channel="log"))
    firing, resolved = caplog.records
    assert firing.name == "paca_otel.alerts"
    assert firing.levelno == logging.ERROR
    assert firing.getMessage().startswith("[FIRING:1] HighLatency")
    assert firing.__dict__["alert_status"] == "firing"
    assert firing.__dict__["idempotency_key"] == note.idempotency_key
    assert firing.__dict__["alerts"][0]["labels"]["alertname"] == "HighLatency"
    assert resolved.levelno == logging.INFO


def test_email_message_subject_body_and_header() -> None:
    """E-mail subjects follow Alertmanager's, bodies list value/labels/annotations, key header."""
    channel = EmailChannel(
        "127.0.0.1", 25, sender="paca@example.com", recipients=["ops@example.com"]
    )
    two = notification(event(), event(labels={"service": "api", "route": "/cart"}))
    message = channel.build_message(two)
    assert message["Subject"] == "[FIRING:2] HighLatency (service=api)"
    assert message["X-Paca-Idempotency-Key"] == two.idempotency_key
    body = message.get_content()
    assert "value: 0.97" in body
    assert "route = /cart" in body
    assert "summary: p99 latency above 500 ms" in body
    resolved = channel.build_message(notification(event(state=AlertState.RESOLVED)))
    assert resolved["Subject"].startswith("[RESOLVED] HighLatency")


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


@pytest.mark.parametrize("password", ["hunter2-secret", SecretStr("hunter2-secret")])
def test_email_password_is_masked(password: str | SecretStr) -> None:
    """The SMTP password never appears in the channel's repr."""
    channel = EmailChannel(
        "smtp.example.com",
        587,
        username="u",
        password=password,
        sender="a@example.com",
        recipients="b@example.com",
        starttls=True,
    )
    assert "hunter2" not in repr(channel)
    assert "password='**********'" in repr(channel)


def test_email_refused_connection_is_retryable() -> None:
    """An SMTP server that is down gives a retryable DeliveryError naming host and port."""
    port = free_port()
    channel = EmailChannel(
        "127.0.0.1",
        port,
        username="u",
        password="pw-never-shown",
        sender="a@example.com",
        recipients="b@example.com",
        timeout=2,
    )
    with pytest.raises(DeliveryError, match=f"127.0.0.1:{port}") as info:
        channel.send(notification())
    assert info.value.retryable
    assert "pw-never-shown" not in str(info.value)


def test_build_channel_by_kind() -> None:
    """build_channel makes each kind, and every channel satisfies the protocol."""
    channels = [
        build_channel("log"),
        build_channel("webhook", url="http://127.0.0.1:1/x", name="hook"),
        build_channel("slack", url="https://hooks.slack.com/services/A/B/C"),
        build_channel("email", host="h", port=25, sender="a@b.c", recipients=["d@e.f"]),
        build_channel("alertmanager", url="http://127.0.0.1:9093", resend_interval=30),
    ]
    assert [c.name for c in channels] == ["log", "hook", "slack", "email", "alertmanager"]
    assert all(isinstance(c, NotificationChannel) for c in channels)
    assert [c.resend_interval for c in channels] == [None, None, None, None, 30]


@pytest.mark.parametrize(
    ("kind", "options", "match"),
    [
        ("pager", {}, "unknown channel kind 'pager'; allowed kinds: alertmanager, email"),
        ("webhook", {}, "bad options for channel kind 'webhook'"),
        ("webhook", {"url": "ftp://x"}, "url='ftp://x' is not an absolute http"),
        ("webhook", {"url": "http://x", "timeout": 0}, "timeout=0 must be a positive"),
        ("slack", {"url": "http://x", "colour": "red"}, "unexpected keyword argument"),
        ("email", {"host": "h", "port": 0, "sender": "a@b", "recipients": "c@d"}, "port=0"),
        (
            "email",
            {"host": "h", "port": 25, "sender": "a@b", "recipients": []},
            "recipients=\\[\\]",
        ),
        (
            "email",
            {
                "host": "h",
                "port": 25,
                "sender": "a@b",
                "recipients": "c@d",
                "starttls": True,
                "use_ssl": True,
            },
            "exclude each other",
        ),
        (
            "email",
            {"host": "h", "port": 25, "sender": "a@b", "recipients": "c@d", "username": "u"},
            "given together",
        ),
        ("alertmanager", {"url": "http://x", "resend_interval": 0}, "resend_interval=0"),
    ],
)
def test_build_channel_rejects_bad_options(kind: str, options: dict[str, Any], match: str) -> None:
    """Bad kinds and options fail at set-up with a ChannelError naming value and choices."""
    with pytest.raises(ChannelError, match=match):
        build_channel(kind, **options)
