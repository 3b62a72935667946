"""What the rule engine hands to delivery: alert events grouped into notifications.

These are the contract between ``alerting/_engine.py`` (which makes them), ``delivery/_outbox.py``
(which persists
them) and ``channels/`` (which render and send them). They are frozen and JSON-serialisable so
the outbox can store them and a restart can send them unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class AlertState(str, Enum):
    """States of one alert (one rule x one label set), as in Prometheus."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(str, Enum):
    """How urgent an alert is; channels map it to their own vocabulary."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """A stable id for one alert: the rule name plus its label set (order-independent)."""
    raw = json.dumps([rule, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert's transition to ``firing`` or ``resolved``, with what a message needs."""

    rule: str
    state: AlertState
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    severity: Severity
    starts_at: float
    ends_at: float | None = None
    fingerprint: str = ""

    @property
    def idempotency_key(self) -> str:
        """Alert fingerprint + state + start time: equal for re-sends of the same event."""
        fp = self.fingerprint or fingerprint(self.rule, self.labels)
        return f"{fp}:{self.state.value}:{self.starts_at:.3f}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["severity"] = self.severity.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertEvent:
        values = dict(data)
        values["state"] = AlertState(values["state"])
        values["severity"] = Severity(values["severity"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Notification:
    """Alerts that fired (or resolved) together, sent as one message to one channel."""

    channel: str
    group_key: str
    events: tuple[AlertEvent, ...]
    created_at: float
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> AlertState:
        """``firing`` if any member fires, else ``resolved`` (Alertmanager's group status)."""
        if any(e.state is AlertState.FIRING for e in self.events):
            return AlertState.FIRING
        return AlertState.RESOLVED

    @property
    def idempotency_key(self) -> str:
        """Channel + the members' keys: a re-send after a crash carries the same key."""
        keys = ",".join(sorted(e.idempotency_key for e in self.events))
        kind = self.extra.get("kind", "notify")
        if kind != "notify":
            # Repeats after the cooldown, flapping and settled summaries re-announce events
            # already sent: their send time makes them new messages, not re-sends.
            keys += f"|{kind}@{self.extra.get('sent_at')}"
        return hashlib.sha256(f"{self.channel}|{keys}".encode()).hexdigest()[:24]

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "group_key": self.group_key,
            "events": [e.to_dict() for e in self.events],
            "created_at": self.created_at,
            "summary": self.summary,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        return cls(
            channel=data["channel"],
            group_key=data["group_key"],
            events=tuple(AlertEvent.from_dict(e) for e in data["events"]),
            created_at=data["created_at"],
            summary=data.get("summary", ""),
            extra=data.get("extra", {}),
        )
