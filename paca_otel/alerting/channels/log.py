"""The log channel: every notification as one structured record on ``paca_otel.alerts``.

The channel that always works: no network, no credentials. It is the default sink and the one
to keep next to a real channel, so an outage of the real one still leaves a trace.
"""

from __future__ import annotations

import logging

from paca_otel.alerting.models import AlertState, Notification

from .base import alert_labels, format_value, title

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
            title(notification),
            extra={
                "alert_status": notification.status.value,
                "alert_group": notification.group_key,
                "alert_channel": self.name,
                "alerts": alerts,
                "idempotency_key": notification.idempotency_key,
            },
        )

    def __repr__(self) -> str:
        return f"LogChannel(name={self.name!r}, logger={self.logger.name!r})"
