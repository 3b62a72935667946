"""The Slack channel: notifications as Slack incoming-webhook messages.

``text`` carries the title (what phones show in the push notification); an attachment coloured
by state and severity carries Block Kit sections with each alert's value, labels and
annotations. The idempotency key travels as a header and in a context block.
"""

from __future__ import annotations

from typing import Any

from paca_otel.delivery.channels._base import HttpChannel, format_value, title
from paca_otel.rules._models import AlertEvent, AlertState, Notification

#: Attachment colours: red/orange/blue while firing by worst severity, green once resolved.
COLOURS = {"critical": "#d92d20", "warning": "#f79009", "info": "#2e90fa", "resolved": "#12b76a"}
_RANK = {"info": 0, "warning": 1, "critical": 2}
_MAX_BLOCKS = 45  # Slack allows 50 blocks per message; keep room for header and context


def colour(notification: Notification) -> str:
    """Green once resolved, else the colour of the worst firing severity."""
    firing = [e for e in notification.events if e.state is AlertState.FIRING]
    if not firing:
        return COLOURS["resolved"]
    worst = max(firing, key=lambda e: _RANK.get(e.severity.value, 1)).severity.value
    return COLOURS.get(worst, COLOURS["warning"])


def _event_block(event: AlertEvent) -> dict[str, Any]:
    lines = [f"*{event.rule}* — {event.state.value}, {event.severity.value}"]
    lines.append(f"value: `{format_value(event.value)}`")
    if event.labels:
        lines.append(" ".join(f"`{k}={v}`" for k, v in sorted(event.labels.items())))
    lines.extend(f"{k}: {v}" for k, v in sorted(event.annotations.items()))
    return {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}


def slack_payload(notification: Notification) -> dict[str, Any]:
    """Render a notification as a Slack incoming-webhook body."""
    text = title(notification)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"[:3000]}}
    ]
    events = notification.events
    blocks.extend(_event_block(e) for e in events[:_MAX_BLOCKS])
    if len(events) > _MAX_BLOCKS:
        more = {"type": "mrkdwn", "text": f"... and {len(events) - _MAX_BLOCKS} more alerts"}
        blocks.append({"type": "context", "elements": [more]})
    key = {"type": "mrkdwn", "text": f"key `{notification.idempotency_key}`"}
    blocks.append({"type": "context", "elements": [key]})
    return {
        "text": text,
        "attachments": [{"color": colour(notification), "fallback": text, "blocks": blocks}],
        "idempotency_key": notification.idempotency_key,
    }


class SlackChannel(HttpChannel):
    """POST notifications to a Slack incoming webhook.

    Args:
        url: The incoming-webhook URL (a secret: it is redacted in reprs and errors).
        timeout: Seconds for connect, read and write.
        name: Channel name notifications are routed by.
    """

    secret_path = True

    def __init__(self, url: str, *, timeout: float = 10, name: str = "slack") -> None:
        self.name = name
        super().__init__(url, timeout=timeout, headers=None)

    def send(self, notification: Notification) -> None:
        """POST the message; Slack answers 4xx for bad payloads, which are not retried."""
        self._post(
            self.url, slack_payload(notification), idempotency_key=notification.idempotency_key
        )
