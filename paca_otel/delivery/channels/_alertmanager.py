"""The Alertmanager channel: push alerts to a Prometheus Alertmanager (``/api/v2/alerts``).

Alertmanager then does grouping, silencing, inhibition and routing to its own receivers. It
expires an alert it has not heard about by ``endsAt``, so while an alert fires we send
``endsAt = now + 4 * resend_interval`` and the dispatcher re-sends every ``resend_interval``
(Prometheus does the same); on resolve ``endsAt`` is the resolve time, which closes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from paca_otel.delivery.channels._base import HttpChannel, alert_labels, format_value, rfc3339
from paca_otel.errors import ChannelError
from paca_otel.rules._models import AlertState, Notification
from paca_otel.rules._promql import label_name


def prometheus_names(items: dict[str, str]) -> dict[str, str]:
    """Keys made valid Prometheus label names (``cpu.mode`` -> ``cpu_mode``).

    Alertmanager answers 400 to a label or annotation name outside ``[a-zA-Z_][a-zA-Z0-9_]*``,
    and OTel attribute names have dots. A key already valid wins over a renamed one that
    collides with it.
    """
    out = {k: v for k, v in items.items() if label_name(k) == k}
    for key, value in items.items():
        out.setdefault(label_name(key), value)
    return out


class AlertmanagerChannel(HttpChannel):
    """POST notifications' alerts to Alertmanager's v2 API.

    Args:
        url: Base URL of Alertmanager (``http://alertmanager:9093``), without ``/api/v2``.
        timeout: Seconds for connect, read and write.
        resend_interval: Seconds between re-sends of firing alerts; ``endsAt`` is set four
            intervals ahead, so three lost re-sends in a row do not resolve the alert.
        headers: Extra headers (a bearer token for a proxy in front of Alertmanager).
        clock: Time source for ``endsAt`` (tests pass a fake one).
        name: Channel name notifications are routed by.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10,
        resend_interval: float = 60,
        headers: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        name: str = "alertmanager",
    ) -> None:
        if not resend_interval > 0:
            msg = f"alertmanager channel option resend_interval={resend_interval!r} must be > 0"
            raise ChannelError(msg)
        self.name = name
        self.interval = float(resend_interval)
        self.resend_interval: float | None = self.interval
        self._clock = clock
        super().__init__(url, timeout=timeout, headers=headers)
        self.endpoint = self.url.rstrip("/") + "/api/v2/alerts"

    def payload(self, notification: Notification) -> list[dict[str, Any]]:
        """The list of postable alerts for one notification."""
        now = self._clock()
        generator = str(notification.extra.get("generator_url", ""))
        alerts: list[dict[str, Any]] = []
        for event in notification.events:
            annotations = dict(event.annotations)
            if event.value is not None:
                annotations.setdefault("value", format_value(event.value))
            alert: dict[str, Any] = {
                "labels": prometheus_names(alert_labels(event)),
                "annotations": prometheus_names(annotations),
                "startsAt": rfc3339(event.starts_at),
            }
            if event.state is AlertState.RESOLVED:
                ends = event.ends_at if event.ends_at is not None else now
                alert["endsAt"] = rfc3339(ends)
            else:
                alert["endsAt"] = rfc3339(now + 4 * self.interval)
            if generator:
                alert["generatorURL"] = generator
            alerts.append(alert)
        return alerts

    def send(self, notification: Notification) -> None:
        """POST the alerts; Alertmanager answers 400 for invalid ones (not retried)."""
        self._post(
            self.endpoint, self.payload(notification), idempotency_key=notification.idempotency_key
        )
