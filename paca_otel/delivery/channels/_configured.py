"""The built-in channels the settings configure, and the names rules and the seed use for them.

Kept apart from the channel classes: this is the wiring from
:class:`~paca_otel.config.PacaOtelSettings` (URLs, SMTP) to channel objects, which the
composition root (:mod:`paca_otel._runtime`) uses when it builds and attaches alerting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paca_otel.delivery.channels._alertmanager import AlertmanagerChannel
from paca_otel.delivery.channels._email import EmailChannel
from paca_otel.delivery.channels._log import LogChannel
from paca_otel.delivery.channels._slack import SlackChannel
from paca_otel.delivery.channels._webhook import WebhookChannel

if TYPE_CHECKING:
    from paca_otel.config import PacaOtelSettings
    from paca_otel.delivery.channels._base import NotificationChannel

#: The seed's action names and the channel each stands for.
ACTION_ALIASES: dict[str, str] = {
    "send_email": "email",
    "email": "email",
    "webhook": "webhook",
    "send_webhook": "webhook",
    "slack": "slack",
    "send_slack": "slack",
    "log": "log",
    "alertmanager": "alertmanager",
}


def channels_from_settings(settings: PacaOtelSettings) -> dict[str, NotificationChannel]:
    """The channels the settings configure; ``log`` is always there."""
    channels: dict[str, NotificationChannel] = {"log": LogChannel(name="log")}
    if settings.webhook_url:
        channels["webhook"] = WebhookChannel(
            settings.webhook_url.get_secret_value(), name="webhook"
        )
    if settings.slack_webhook_url:
        channels["slack"] = SlackChannel(
            settings.slack_webhook_url.get_secret_value(), name="slack"
        )
    if settings.alertmanager_url:
        channels["alertmanager"] = AlertmanagerChannel(
            settings.alertmanager_url.get_secret_value(), name="alertmanager"
        )
    if settings.smtp_host:
        channels["email"] = EmailChannel(
            settings.smtp_host,
            settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            sender=settings.smtp_from,
            recipients=list(settings.smtp_to) or [settings.smtp_from],
            starttls=settings.smtp_starttls,
            name="email",
        )
    return channels


CHANNEL_SETTINGS: dict[str, str] = {
    "email": "set smtp_host (PACA_OTEL_SMTP_HOST) and smtp_to (PACA_OTEL_SMTP_TO)",
    "webhook": "set webhook_url (PACA_OTEL_WEBHOOK_URL)",
    "slack": "set slack_webhook_url (PACA_OTEL_SLACK_WEBHOOK_URL)",
    "alertmanager": "set alertmanager_url (PACA_OTEL_ALERTMANAGER_URL)",
}
"""The built-in channels that need settings, and what to set for each (``log`` needs none)."""
