"""The notification-channel seam: the protocol channels fill and the helpers they share.

A channel turns one :class:`~paca_otel.rules._models.Notification` into one message on one
system (a log line, an HTTP POST, an e-mail). Channels are synchronous and are called only from
the dispatcher's worker threads, never from the application's threads, so they may block on
I/O; a failed attempt raises :class:`DeliveryError` and the dispatcher retries it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from paca_otel.errors import ChannelError
from paca_otel.rules._models import AlertEvent, AlertState, Notification

#: Alertmanager's "zero time": what its webhook sends as ``endsAt`` of an alert still firing.
ZERO_TIME = "0001-01-01T00:00:00Z"

#: HTTP statuses that are worth retrying although they are 4xx (timeout, rate limit).
RETRYABLE_4XX = frozenset({408, 425, 429})


@runtime_checkable
class NotificationChannel(Protocol):
    """What the dispatcher needs from a channel.

    Attributes:
        name: The channel name notifications are routed by (``Notification.channel``).
        resend_interval: Seconds after which a delivered notification that still fires is sent
            again (Alertmanager expires alerts that are not refreshed); ``None`` sends once.
    """

    name: str
    resend_interval: float | None

    def send(self, notification: Notification) -> None:
        """Deliver one notification, or raise :class:`ChannelError` so the attempt is retried."""


class DeliveryError(ChannelError):
    """One delivery attempt failed.

    ``retryable=False`` tells the dispatcher that trying again cannot help (a 400 from the
    receiver, an address the mail server refuses), so the notification goes straight to the
    dead letters instead of burning its retry budget.
    """

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None) -> None:
        self.retryable = retryable
        self.status = status
        super().__init__(message)


def rfc3339(ts: float) -> str:
    """Format a Unix timestamp the way Alertmanager and most webhooks expect (UTC, ``Z``)."""
    text = datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def check_url(url: str, *, option: str = "url") -> str:
    """Reject a URL that is not absolute http(s) at set-up, not on the first alert at 3 a.m."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        msg = f"channel option {option}={url!r} is not an absolute http:// or https:// URL"
        raise ChannelError(msg)
    return url


def check_timeout(timeout: float) -> float:
    """Reject a non-positive timeout: a channel must never wait for ever."""
    if not timeout > 0:
        msg = f"channel option timeout={timeout!r} must be a positive number of seconds"
        raise ChannelError(msg)
    return float(timeout)


def alert_labels(event: AlertEvent) -> dict[str, str]:
    """The event's labels plus ``alertname`` and ``severity``, as Alertmanager groups by them."""
    labels = dict(event.labels)
    labels["alertname"] = event.rule
    labels.setdefault("severity", event.severity.value)
    return labels


def common_items(maps: list[dict[str, str]]) -> dict[str, str]:
    """The key/value pairs every map shares (Alertmanager's ``commonLabels``)."""
    if not maps:
        return {}
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def firing_count(notification: Notification) -> int:
    """How many member alerts fire; subjects and titles show it as ``[FIRING:n]``."""
    return sum(1 for e in notification.events if e.state is AlertState.FIRING)


def title(notification: Notification) -> str:
    """A one-line title shared by Slack and e-mail: ``[FIRING:2] rule {labels}``."""
    if notification.status is AlertState.FIRING:
        prefix = f"[FIRING:{firing_count(notification)}]"
    else:
        prefix = "[RESOLVED]"
    rules = sorted({e.rule for e in notification.events})
    head = ", ".join(rules) if rules else notification.group_key
    common = common_items([dict(e.labels) for e in notification.events])
    suffix = " (" + " ".join(f"{k}={v}" for k, v in sorted(common.items())) + ")" if common else ""
    summary = f" - {notification.summary}" if notification.summary else ""
    return f"{prefix} {head}{suffix}{summary}"


def format_value(value: float | None) -> str:
    """Render an alert value compactly (``0.9731``, ``1.2e+06``) or ``n/a``."""
    return "n/a" if value is None else f"{value:.6g}"


class HttpChannel:
    """Shared plumbing of the HTTP channels: one lazily made ``httpx.Client``, error mapping.

    The client is made on first use, in the dispatcher's worker thread, and reused so that a
    burst of notifications shares connections. Statuses >= 400 and transport errors become
    :class:`DeliveryError`; a 3xx (not followed), or a 4xx other than 408/425/429, is marked
    not retryable.
    """

    name: str
    resend_interval: float | None = None
    #: Whether the URL path itself is a secret (Slack's webhook token): hide it in messages.
    secret_path = False

    def __init__(self, url: str, *, timeout: float, headers: dict[str, str] | None) -> None:
        self.url = check_url(url)
        self.timeout = check_timeout(timeout)
        self.headers = dict(headers or {})
        self._client: httpx.Client | None = None

    def _post(self, url: str, payload: Any, *, idempotency_key: str) -> httpx.Response:
        client = self._client
        if client is None:
            client = self._client = httpx.Client(timeout=self.timeout)
        headers = {**self.headers, "Idempotency-Key": idempotency_key}
        where = redact(url, secret_path=self.secret_path)
        try:
            response = client.post(url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            msg = f"{self.name}: POST {where} failed: {type(exc).__name__}: {exc}"
            raise DeliveryError(msg) from exc
        if 300 <= response.status_code < 400:
            # httpx does not follow redirects, and following one would turn a 301/302 POST
            # into a GET without the body: the notification did not arrive. Not retryable,
            # the URL needs fixing.
            status = response.status_code
            target = redact(response.headers.get("location", ""), secret_path=self.secret_path)
            msg = (
                f"{self.name}: POST {where} returned HTTP {status} (redirect to {target}); "
                "configure the final URL"
            )
            raise DeliveryError(msg, retryable=False, status=status)
        if response.status_code >= 400:
            status = response.status_code
            retryable = status >= 500 or status in RETRYABLE_4XX
            body = response.text[:200]
            msg = f"{self.name}: POST {where} returned HTTP {status}: {body}"
            raise DeliveryError(msg, retryable=retryable, status=status)
        return response

    def close(self) -> None:
        """Close the pooled connections (the dispatcher's owner calls this on shutdown)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        url = redact(self.url, secret_path=self.secret_path)
        return f"{type(self).__name__}(name={self.name!r}, url={url!r})"


def redact(url: str, *, secret_path: bool = False) -> str:
    """Drop credentials and query from a URL, and its path when that is a secret, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = parts.path
    if secret_path or (parts.hostname and parts.hostname.endswith("slack.com")):
        path = "/***"
    return f"{parts.scheme}://{host}{path}"
