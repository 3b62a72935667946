"""EmailChannel against a real SMTP server (aiosmtpd) on 127.0.0.1: plain, auth, STARTTLS."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from paca_otel.delivery.channels import DeliveryError, EmailChannel
from paca_otel.rules._models import AlertState
from tests.delivery.test_channels import event, notification
from tests.peers import free_port

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")

USER, PASSWORD = "alerts", "s3cret-pw"


class Collect:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        return "250 Message accepted for delivery"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    """Accept only USER/PASSWORD (LOGIN and PLAIN)."""
    ok = isinstance(data, aiosmtpd_smtp.LoginPassword) and (
        data.login == USER.encode() and data.password == PASSWORD.encode()
    )
    return aiosmtpd_smtp.AuthResult(success=ok, handled=False)


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1, made with cryptography (no openssl CLI)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def smtp() -> Iterator[tuple[Collect, int]]:
    """A plain SMTP server with AUTH allowed without TLS (the test's loopback only)."""
    handler = Collect()
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield handler, port
    controller.stop()


@pytest.mark.peer("smtp")
def test_firing_and_resolved_mail_arrive_with_auth(smtp: tuple[Collect, int]) -> None:
    """Firing and resolved notifications arrive as mails with subject, body and key header."""
    handler, port = smtp
    channel = EmailChannel(
        "127.0.0.1",
        port,
        username=USER,
        password=PASSWORD,
        sender="paca@example.com",
        recipients=["ops@example.com", "dev@example.com"],
        timeout=5,
    )
    firing = notification(event(), event(labels={"service": "api", "route": "/cart"}))
    resolved = notification(event(state=AlertState.RESOLVED, ends_at=event().starts_at + 60))
    channel.send(firing)
    channel.send(resolved)
    (sender, rcpts, first), (_, _, second) = handler.messages
    assert sender == "paca@example.com"
    assert rcpts == ["ops@example.com", "dev@example.com"]
    assert first["Subject"] == "[FIRING:2] HighLatency (service=api)"
    assert first["X-Paca-Idempotency-Key"] == firing.idempotency_key
    payload = first.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    assert "value: 0.97" in body
    assert "service = api" in body
    assert second["Subject"].startswith("[RESOLVED] HighLatency")
    assert second["X-Paca-Idempotency-Key"] == resolved.idempotency_key


@pytest.mark.peer("smtp")
def test_wrong_password_is_not_retryable(smtp: tuple[Collect, int]) -> None:
    """A refused login (535) is a non-retryable DeliveryError without the password in it."""
    _, port = smtp
    channel = EmailChannel(
        "127.0.0.1",
        port,
        username=USER,
        password="wrong-pw-xyz",
        sender="paca@example.com",
        recipients="ops@example.com",
        timeout=5,
    )
    with pytest.raises(DeliveryError, match="535") as info:
        channel.send(notification())
    assert info.value.retryable is False
    assert "wrong-pw-xyz" not in str(info.value)


@pytest.mark.peer("smtp")
def test_starttls_then_auth(tmp_path: Path) -> None:
    """With starttls=True the channel upgrades to TLS (verified cert) before logging in."""
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    handler = Collect()
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=authenticate,
    )
    controller.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        channel = EmailChannel(
            "127.0.0.1",
            port,
            username=USER,
            password=PASSWORD,
            sender="paca@example.com",
            recipients="ops@example.com",
            starttls=True,
            ssl_context=client_ctx,
            timeout=5,
        )
        channel.send(notification())
        plain = EmailChannel(
            "127.0.0.1",
            port,
            sender="paca@example.com",
            recipients="ops@example.com",
            timeout=5,
        )
        with pytest.raises(DeliveryError, match="530"):
            plain.send(notification())
    finally:
        controller.stop()
    ((_, _, message),) = handler.messages
    assert message["Subject"].startswith("[FIRING:1] HighLatency")
