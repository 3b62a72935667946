"""The webhook channel: POST each notification as Alertmanager's webhook (version 4) JSON.

Receivers written for Alertmanager (PagerDuty bridges, chat relays, home-grown handlers) accept
our payload unchanged; we add ``idempotencyKey`` (and an ``Idempotency-Key`` header) so a
receiver can drop the duplicates that at-least-once delivery produces after a crash.
"""

from __future__ import annotations

import math
from typing import Any

from paca_otel.delivery.channels._base import (
    ZERO_TIME,
    HttpChannel,
    alert_labels,
    common_items,
    rfc3339,
)
from paca_otel.rules._models import AlertState, Notification, fingerprint


def webhook_payload(notification: Notification, *, receiver: str) -> dict[str, Any]:
    """Render a notification as Alertmanager's webhook v4 body, plus ``idempotencyKey``.

    Args:
        notification: The group of alerts to render.
        receiver: The receiver name to report (the channel name).

    ``groupLabels`` come from ``notification.extra["group_labels"]`` when the engine sets
    them, else the labels all members share; ``externalURL`` and ``generatorURL`` from
    ``extra["external_url"]`` / ``extra["generator_url"]``.
    """
    labels = [alert_labels(e) for e in notification.events]
    annotations = [dict(e.annotations) for e in notification.events]
    common = common_items(labels)
    group_labels = notification.extra.get("group_labels")
    if not isinstance(group_labels, dict):
        group_labels = common
    generator = str(notification.extra.get("generator_url", ""))
    alerts = [
        {
            "status": e.state.value,
            "labels": labels[i],
            "annotations": annotations[i],
            "startsAt": rfc3339(e.starts_at),
            "endsAt": (
                rfc3339(e.ends_at)
                if e.state is AlertState.RESOLVED and e.ends_at is not None
                else ZERO_TIME
            ),
            "generatorURL": generator,
            "fingerprint": e.fingerprint or fingerprint(e.rule, e.labels),
            # strict JSON has no Infinity/NaN (a ratio over zero requests is +Inf)
            "value": e.value if e.value is not None and math.isfinite(e.value) else None,
        }
        for i, e in enumerate(notification.events)
    ]
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": 0,
        "status": notification.status.value,
        "receiver": receiver,
        "groupLabels": {str(k): str(v) for k, v in group_labels.items()},
        "commonLabels": common,
        "commonAnnotations": common_items(annotations),
        "externalURL": str(notification.extra.get("external_url", "")),
        "alerts": alerts,
        "idempotencyKey": notification.idempotency_key,
    }


class WebhookChannel(HttpChannel):
    """POST notifications to ``url`` as Alertmanager-compatible webhook JSON.

    Args:
        url: Absolute http(s) URL of the receiver.
        headers: Extra request headers (e.g. ``Authorization``); never logged.
        timeout: Seconds for connect, read and write, so a hung receiver cannot stall the
            channel's worker for ever.
        name: Channel name notifications are routed by.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
        name: str = "webhook",
    ) -> None:
        self.name = name
        super().__init__(url, timeout=timeout, headers=headers)

    def send(self, notification: Notification) -> None:
        """POST the payload; a status >= 400 or a transport error raises ``DeliveryError``."""
        payload = webhook_payload(notification, receiver=self.name)
        self._post(self.url, payload, idempotency_key=notification.idempotency_key)
