"""Notification assembly: a cycle's alert events grouped into one notification per channel.

The rule engine decides *which* alert events are due to *which* channels (cooldown, silences,
flap detection); this module turns them into :class:`~paca_otel.rules._models.Notification`
objects the Alertmanager way — events sharing a group key (``group_by`` labels) and kind go out
together, ``group_wait`` holds a group's first notification so alerts firing in the next
evaluations join it, each alert appears once with its latest state — and puts them into the
outbox. Channels with a ``resend_interval`` (Alertmanager) get the group's whole firing set,
because their dispatcher re-sends only a group's latest notification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from paca_otel.rules._models import AlertEvent, AlertState, Notification

if TYPE_CHECKING:
    from paca_otel.delivery.channels._base import NotificationChannel

__all__ = ["NotificationSink", "Notifier", "Outgoing"]

GroupFiring = Callable[[str, str, float], list[AlertEvent]]
"""``(channel, group_key, now)`` -> the announced, unmuted firing alerts of that group."""


class NotificationSink(Protocol):
    """Where the engine puts notifications: the :class:`~paca_otel.delivery._outbox.Outbox`."""

    def enqueue(self, notification: Notification) -> bool:
        """Store one notification for delivery; ``False`` if an identical one exists."""


@dataclass(slots=True)
class Outgoing:
    """One alert event due to one channel, before grouping."""

    channel: str
    group_key: str
    kind: str  # "notify" | "repeat" | "flapping" | "settled"
    event: AlertEvent
    summary: str = ""


class Notifier:
    """Groups outgoing alert events and enqueues the resulting notifications.

    Owned by the engine: :meth:`build` runs under its lock once per evaluation cycle, and the
    engine enqueues what it returns outside the lock.

    Args:
        outbox: Where notifications go.
        channels: The channels by name (the engine's own dict, so later additions count).
        group_by: Labels whose values form the group key; ``alertname`` is the rule name and
            ``severity`` falls back to the rule's severity, as Alertmanager sees them.
        group_wait: Seconds to hold a new group's first notification; 0 sends per cycle.
    """

    def __init__(
        self,
        outbox: NotificationSink,
        channels: Mapping[str, NotificationChannel],
        *,
        group_by: Sequence[str],
        group_wait: float,
    ) -> None:
        self.outbox = outbox
        self.channels = channels
        self.group_by = tuple(group_by)
        self.group_wait = group_wait
        self._held: dict[tuple[str, str, str], tuple[float, list[Outgoing]]] = {}
        #: Notifications the outbox refused as duplicates (same idempotency key).
        self.duplicates = 0

    def group_key(self, event: AlertEvent) -> str:
        """``name=value`` of each ``group_by`` label, comma-joined."""
        parts = []
        for name in self.group_by:
            if name == "alertname":
                value = event.rule
            elif name == "severity":
                value = event.labels.get(name, event.severity.value)
            else:
                value = event.labels.get(name, "")
            parts.append(f"{name}={value}")
        return ",".join(parts)

    def build(
        self, outgoing: list[Outgoing], now: float, group_firing: GroupFiring
    ) -> list[Notification]:
        """Group per (channel, group, kind) and honour ``group_wait``; no I/O.

        The engine calls this under its lock (``group_firing`` reads its alerts) and enqueues
        the result after releasing it.
        """
        groups: dict[tuple[str, str, str], list[Outgoing]] = {}
        for item in outgoing:
            groups.setdefault((item.channel, item.group_key, item.kind), []).append(item)
        if self.group_wait > 0:
            for key, items in groups.items():
                since, held = self._held.get(key, (now, []))
                self._held[key] = (since, held + items)
            groups = {}
            for key, (since, held) in list(self._held.items()):
                if now - since >= self.group_wait:
                    groups[key] = held
                    del self._held[key]
        out: list[Notification] = []
        for (channel, group_key, kind), items in sorted(groups.items()):
            unique = _latest_per_alert(items)
            channel_obj = self.channels.get(channel)
            if (
                kind in ("notify", "repeat")
                and channel_obj is not None
                and channel_obj.resend_interval
            ):
                for event in group_firing(channel, group_key, now):
                    unique.setdefault(event.fingerprint, event)
            if not unique:
                continue
            events = tuple(sorted(unique.values(), key=lambda e: (e.rule, e.fingerprint)))
            # repeats and flap notices re-use events already sent: ``sent_at`` tells them apart
            # (the outbox's idempotency key must include it for them to be delivered)
            extra: dict[str, Any] = {} if kind == "notify" else {"kind": kind, "sent_at": now}
            out.append(
                Notification(
                    channel=channel,
                    group_key=group_key,
                    events=events,
                    created_at=now,
                    summary=items[0].summary,
                    extra=extra,
                )
            )
        return out

    def reset(self) -> None:
        """Drop held groups (this process stopped leading: the new leader decides anew)."""
        self._held.clear()

    def held_fingerprints(self) -> set[str]:
        """Alerts with a notification held by ``group_wait`` (owed, not yet enqueued)."""
        return {item.event.fingerprint for _, items in self._held.values() for item in items}

    def send(self, outgoing: list[Outgoing], now: float, group_firing: GroupFiring) -> int:
        """:meth:`build`, then enqueue each notification; return how many were new."""
        sent = 0
        for notification in self.build(outgoing, now, group_firing):
            if self.outbox.enqueue(notification):
                sent += 1
            else:
                self.duplicates += 1
        return sent


def _latest_per_alert(items: list[Outgoing]) -> dict[str, AlertEvent]:
    """One event per alert, the latest (``group_wait`` may have held several).

    An alert that fired and resolved within one hold was never announced: nothing to tell.
    """
    unique: dict[str, AlertEvent] = {}
    for item in items:
        event, prior = item.event, unique.get(item.event.fingerprint)
        if (
            prior is not None
            and prior.state is AlertState.FIRING
            and event.state is AlertState.RESOLVED
            and prior.starts_at == event.starts_at
        ):
            del unique[event.fingerprint]
            continue
        unique[event.fingerprint] = event
    return unique
