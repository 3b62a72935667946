"""The e-mail channel: one plain-text message per notification, over SMTP (smtplib).

Subjects follow Alertmanager's (``[FIRING:2] rule ...`` / ``[RESOLVED] ...``) so mail filters
written for it keep working. The password is held as a ``SecretStr`` and never appears in
reprs, logs or error messages; an ``X-Paca-Idempotency-Key`` header lets a mail pipeline drop
the duplicates at-least-once delivery can produce.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pydantic import SecretStr

from paca_otel.delivery.channels._base import (
    DeliveryError,
    check_timeout,
    format_value,
    rfc3339,
    title,
)
from paca_otel.errors import ChannelError
from paca_otel.rules._models import Notification

IDEMPOTENCY_HEADER = "X-Paca-Idempotency-Key"


def email_body(notification: Notification) -> str:
    """The plain-text body: one paragraph per alert with value, labels and annotations."""
    lines = [title(notification), ""]
    for event in notification.events:
        lines.append(f"{event.rule}: {event.state.value} ({event.severity.value})")
        lines.append(f"  value: {format_value(event.value)}")
        lines.append(f"  started: {rfc3339(event.starts_at)}")
        if event.ends_at is not None:
            lines.append(f"  ended: {rfc3339(event.ends_at)}")
        if event.labels:
            lines.append("  labels:")
            lines.extend(f"    {k} = {v}" for k, v in sorted(event.labels.items()))
        if event.annotations:
            lines.append("  annotations:")
            lines.extend(f"    {k}: {v}" for k, v in sorted(event.annotations.items()))
        lines.append("")
    lines.append(f"group: {notification.group_key}")
    lines.append(f"idempotency key: {notification.idempotency_key}")
    return "\n".join(lines) + "\n"


class EmailChannel:
    """Send notifications as e-mail through an SMTP server.

    Args:
        host: SMTP server host.
        port: SMTP server port (25/587 plain or STARTTLS, 465 implicit TLS).
        username: Login name; with ``password`` the channel authenticates (after STARTTLS).
        password: Login password, ``str`` or ``SecretStr``; masked in ``repr``.
        sender: The ``From`` address.
        recipients: One or more ``To`` addresses.
        starttls: Upgrade the plain connection with STARTTLS before logging in.
        use_ssl: Connect with implicit TLS (``SMTP_SSL``); exclusive with ``starttls``.
        timeout: Socket timeout in seconds.
        ssl_context: TLS settings (e.g. a private CA); the system defaults otherwise.
        name: Channel name notifications are routed by.
    """

    resend_interval: float | None = None

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | SecretStr | None = None,
        sender: str,
        recipients: str | Sequence[str],
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float = 10,
        ssl_context: ssl.SSLContext | None = None,
        name: str = "email",
    ) -> None:
        if not host:
            msg = "email channel option host='' is empty; give the SMTP server's host name"
            raise ChannelError(msg)
        if not 0 < int(port) < 65536:
            msg = f"email channel option port={port!r} is not a TCP port (1..65535)"
            raise ChannelError(msg)
        if starttls and use_ssl:
            msg = "email channel options starttls=True and use_ssl=True exclude each other"
            raise ChannelError(msg)
        rcpts = [recipients] if isinstance(recipients, str) else list(recipients)
        if not rcpts or not all("@" in r for r in rcpts):
            msg = f"email channel option recipients={rcpts!r} must be one or more addresses"
            raise ChannelError(msg)
        if "@" not in sender:
            msg = f"email channel option sender={sender!r} is not an e-mail address"
            raise ChannelError(msg)
        if (password is None) != (username is None):
            msg = "email channel options username and password must be given together"
            raise ChannelError(msg)
        self.name = name
        self.host = host
        self.port = int(port)
        self.username = username
        self._password = (
            password
            if isinstance(password, SecretStr) or password is None
            else (SecretStr(password))
        )
        self.sender = sender
        self.recipients = rcpts
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.timeout = check_timeout(timeout)
        self.ssl_context = ssl_context

    def build_message(self, notification: Notification) -> EmailMessage:
        """The message we would send, for previews and tests."""
        message = EmailMessage()
        # a header must be one line; label values and summaries may hold line breaks
        message["Subject"] = " ".join(title(notification).split())
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(idstring=notification.idempotency_key[:16])
        message[IDEMPOTENCY_HEADER] = notification.idempotency_key
        message.set_content(email_body(notification))
        return message

    def send(self, notification: Notification) -> None:
        """Connect, optionally secure and log in, send, quit; failures raise DeliveryError.

        A 5xx answer (bad address, refused login) is not retryable; 4xx and connection
        errors are. Error messages name server and reply, never the password.
        """
        message = self.build_message(notification)
        context = self.ssl_context or ssl.create_default_context()
        try:
            smtp: smtplib.SMTP
            if self.use_ssl:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.starttls:
                    smtp.starttls(context=context)
                if self.username is not None and self._password is not None:
                    smtp.login(self.username, self._password.get_secret_value())
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            retryable = any(code < 500 for code in codes)
            msg = f"{self.name}: {self._where()} refused recipients {sorted(exc.recipients)}"
            raise DeliveryError(msg, retryable=retryable) from None
        except smtplib.SMTPResponseException as exc:
            reply = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            msg = f"{self.name}: {self._where()} answered {exc.smtp_code} {reply}"
            raise DeliveryError(msg, retryable=exc.smtp_code < 500, status=exc.smtp_code) from None
        except (smtplib.SMTPException, OSError) as exc:
            msg = f"{self.name}: {self._where()} failed: {type(exc).__name__}: {exc}"
            raise DeliveryError(msg) from None

    def _where(self) -> str:
        return f"SMTP {self.host}:{self.port}"

    def __repr__(self) -> str:
        password = "'**********'" if self._password is not None else "None"
        return (
            f"EmailChannel(name={self.name!r}, host={self.host!r}, port={self.port}, "
            f"username={self.username!r}, password={password}, sender={self.sender!r}, "
            f"recipients={self.recipients!r}, starttls={self.starttls}, use_ssl={self.use_ssl})"
        )
