"""The log channel: every notification as one structured record on ``paca_otel.alerts``.

The channel that always works: no network, no credentials. It is the default sink and the one
to keep next to a real channel, so an outage of the real one still leaves a trace. It also stands
in for a built-in channel that is not configured yet (:class:`UnconfiguredChannel`): a rule that
routes to ``email`` before ``smtp_host`` is set loses nothing, its notifications are logged.
"""

from __future__ import annotations

import logging

from paca_otel.delivery.channels._base import alert_labels, format_value, title
from paca_otel.rules._models import AlertState, Notification

_LEVELS = {"critical": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}


class LogChannel:
    """Write each notification as one log record with the alerts in ``extra``.

    The message is the human title (``[FIRING:1] HighLatency (service=api)``); the structured
    fields (``alert_status``, ``alert_group``, ``alerts``, ``idempotency_key``) ride in the
    record's ``extra`` so JSON formatters and OTel log bridges keep them as attributes.
    Firing notifications log at the level of their worst severity, resolved ones at INFO.
    """

    resend_interval: float | None = None

    def __init__(self, *, name: str = "log", logger: str | logging.Logger = "paca_otel.alerts"):
        self.name = name
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def send(self, notification: Notification) -> None:
        """Log the notification; a logging failure is the logging system's to report."""
        self._log(notification, title(notification), {})

    def _log(self, notification: Notification, message: str, extra: dict[str, object]) -> None:
        level = logging.INFO
        if notification.status is AlertState.FIRING:
            level = max(
                _LEVELS.get(e.severity.value, logging.WARNING)
                for e in notification.events
                if e.state is AlertState.FIRING
            )
        alerts = [
            {
                "status": e.state.value,
                "labels": alert_labels(e),
                "annotations": dict(e.annotations),
                "value": format_value(e.value),
                "starts_at": e.starts_at,
                "ends_at": e.ends_at,
            }
            for e in notification.events
        ]
        self.logger.log(
            level,
            "%s",
            message,
            extra={
                "alert_status": notification.status.value,
                "alert_group": notification.group_key,
                "alert_channel": self.name,
                "alerts": alerts,
                "idempotency_key": notification.idempotency_key,
                **extra,
            },
        )

    def __repr__(self) -> str:
        return f"LogChannel(name={self.name!r}, logger={self.logger.name!r})"


class UnconfiguredChannel(LogChannel):
    """Stands in for a built-in channel whose settings are missing: logs what it would send.

    Each notification becomes one log record (as :class:`LogChannel` writes it) whose message
    says which channel it was meant for and what to set, so nothing is lost while e-mail,
    webhook, Slack or Alertmanager is not configured; the runtime replaces it with the real
    channel once the settings appear.

    Args:
        name: The channel it stands in for (``email``); notifications are routed by it.
        hint: What to configure (``set smtp_host (PACA_OTEL_SMTP_HOST) and smtp_to``).
    """

    def __init__(self, name: str, hint: str, *, logger: str | logging.Logger = "paca_otel.alerts"):
        super().__init__(name=name, logger=logger)
        self.hint = hint

    def send(self, notification: Notification) -> None:
        """Log the notification with a line saying it was meant for the unconfigured channel."""
        message = (
            f"{title(notification)} [channel {self.name!r} is not configured ({self.hint}): "
            "logged instead]"
        )
        self._log(notification, message, {"unconfigured_channel": self.name})

    def __repr__(self) -> str:
        return f"UnconfiguredChannel(name={self.name!r}, hint={self.hint!r})"
