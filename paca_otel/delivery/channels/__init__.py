"""Notification channels: where alert notifications go, and a factory to build them by kind.

``build_channel("webhook", url=...)`` is what configuration files and the API use; code can
construct the classes directly. Users add their own by implementing
:class:`NotificationChannel` (``name``, ``resend_interval``, ``send``).
"""

from __future__ import annotations

from typing import Any

from paca_otel.delivery.channels._alertmanager import AlertmanagerChannel
from paca_otel.delivery.channels._base import DeliveryError, NotificationChannel
from paca_otel.delivery.channels._email import EmailChannel
from paca_otel.delivery.channels._log import LogChannel, UnconfiguredChannel
from paca_otel.delivery.channels._slack import SlackChannel
from paca_otel.delivery.channels._webhook import WebhookChannel
from paca_otel.errors import ChannelError

CHANNEL_KINDS: dict[str, type[Any]] = {
    "alertmanager": AlertmanagerChannel,
    "email": EmailChannel,
    "log": LogChannel,
    "slack": SlackChannel,
    "webhook": WebhookChannel,
}


def build_channel(kind: str, **options: Any) -> NotificationChannel:
    """Build a channel from its kind and keyword options (as read from config or the API).

    Raises:
        ChannelError: The kind is unknown, an option is unknown or missing, or its value is
            not allowed; the message names it and what is allowed.
    """
    cls = CHANNEL_KINDS.get(kind)
    if cls is None:
        msg = f"unknown channel kind {kind!r}; allowed kinds: {', '.join(sorted(CHANNEL_KINDS))}"
        raise ChannelError(msg)
    try:
        channel: NotificationChannel = cls(**options)
    except TypeError as exc:
        msg = f"bad options for channel kind {kind!r}: {exc}"
        raise ChannelError(msg) from None
    return channel


__all__ = [
    "CHANNEL_KINDS",
    "AlertmanagerChannel",
    "DeliveryError",
    "EmailChannel",
    "LogChannel",
    "NotificationChannel",
    "SlackChannel",
    "UnconfiguredChannel",
    "WebhookChannel",
    "build_channel",
]
