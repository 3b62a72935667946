"""The rule engine's notification policy: which alert events are owed to which channels.

Alertmanager's rules, applied per transition and per cycle: a firing or resolved alert is
notified unless it is silenced or flapping; a firing one is repeated after the rule's
``cooldown``; an alert that stops flapping is announced once with its current state. What is
owed goes out as :class:`~paca_otel.delivery._notify.Outgoing` items that ``delivery/_notify.py``
groups.

Flap entries are owed to storage with the alert rows (:meth:`NotificationPolicy._owe_state`),
so the muting outlives the process that decided it.

The policy also keeps the bookkeeping that makes "notified" true only in storage once it is:
a mark is *unconfirmed* until the notification is in the outbox (``_writeback.py`` retries it);
stored rows carry the alert's ``last_notified`` from before the mark until then.

A mixin of :class:`~paca_otel.alerting._engine.RuleEngine` (the state machine), which owns the
attributes declared below and calls these methods under its lock.
"""

from __future__ import annotations

import math

from paca_otel.alerting._silences import FlapDetector, Silences
from paca_otel.alerting._state import AlertRecord, SilenceRecord
from paca_otel.alerting._writeback import WriteBack
from paca_otel.delivery._notify import Notifier, Outgoing
from paca_otel.pipeline._store import Labels
from paca_otel.rules._models import AlertEvent, AlertState
from paca_otel.rules._rule import Rule, render_annotations

__all__ = ["NotificationPolicy"]


class NotificationPolicy:
    """Silences, flapping, cooldown repeats and notified-marks (see the module docstring)."""

    # owned and set by RuleEngine.__init__
    default_channels: tuple[str, ...]
    flap_window: float
    silences: Silences
    _flaps: FlapDetector
    _notifier: Notifier
    _writeback: WriteBack
    _rules: dict[str, Rule]
    _alerts: dict[str, dict[Labels, AlertRecord]]
    _dirty: dict[str, AlertRecord]
    _deleted: set[str]
    _unconfirmed: dict[str, tuple[AlertRecord, float | None]]
    _out: list[Outgoing]

    def _labels(self, rule: Rule, labels: Labels) -> dict[str, str]:
        full = dict(labels)
        full.update(rule.labels)
        return full

    def _event(
        self, rule: Rule, record: AlertRecord, state: AlertState, ends_at: float | None
    ) -> AlertEvent:
        full = self._labels(rule, record.labels)
        return AlertEvent(
            rule=rule.name,
            state=state,
            labels=full,
            annotations=render_annotations(
                rule, full, math.nan if record.value is None else record.value
            ),
            value=record.value,
            severity=rule.severity,
            starts_at=record.active_since,
            ends_at=ends_at,
            fingerprint=record.fingerprint,
        )

    def _channels_of(self, rule: Rule) -> tuple[str, ...]:
        return tuple(rule.channels) or self.default_channels

    def _silenced(self, event: AlertEvent, now: float) -> SilenceRecord | None:
        # the labels an Alertmanager would see: ``alertname`` and ``severity`` included
        labels = dict(event.labels)
        labels["alertname"] = event.rule
        labels.setdefault("severity", event.severity.value)
        return self.silences.matching(labels, now)

    def _transition(self, rule: Rule, record: AlertRecord, event: AlertEvent, now: float) -> None:
        """An alert fired or resolved: notify, unless flapping or silenced."""
        fp = record.fingerprint
        if self._flaps.note(fp, rule.name, event, now):
            if self._silenced(event, now) is None:
                summary = (
                    f"{rule.name} is flapping: {self._flaps.changes(fp)} state changes in "
                    f"{self.flap_window:g} s; notifications paused until it settles"
                )
                self._emit(rule, event, "flapping", summary=summary)
            return
        if self._flaps.is_flapping(fp) or self._silenced(event, now) is not None:
            return
        self._emit(rule, event, "notify")
        if event.state is AlertState.FIRING:
            self._mark_notified(record, now)

    def _mark_notified(self, record: AlertRecord, now: float) -> None:
        """Notified in memory now; in storage once the notification is enqueued."""
        self._unconfirmed.setdefault(record.fingerprint, (record, record.last_notified))
        record.last_notified = now
        self._dirty[record.fingerprint] = record

    def _settle_marks(self, dropped: set[str]) -> None:
        """Confirm the marks whose notifications reached the outbox; undo dropped ones."""
        owed = self._writeback.owed_fingerprints() | self._notifier.held_fingerprints()
        for fp, (record, previous) in list(self._unconfirmed.items()):
            if fp in owed and fp not in dropped:
                continue
            del self._unconfirmed[fp]
            if fp in dropped:
                record.last_notified = previous  # owed again: notified once storage is back
            if self._alerts.get(record.rule, {}).get(record.labels) is record:
                self._dirty[fp] = record

    def _maybe_repeat(self, rule: Rule, record: AlertRecord, now: float) -> None:
        """A firing alert: send an owed notification, or repeat it after ``cooldown``.

        Re-sends to channels with a ``resend_interval`` (Alertmanager) are the dispatcher's
        job: it repeats the latest firing notification of each group on its own clock.
        """
        if self._flaps.is_flapping(record.fingerprint):
            return
        last = record.last_notified
        if last is not None and (now - last < rule.cooldown or last >= now):
            return  # (``last >= now``: notified this very cycle, even with cooldown 0)
        event = self._event(rule, record, AlertState.FIRING, None)
        if self._silenced(event, now) is not None:
            return
        self._emit(rule, event, "notify" if last is None else "repeat")
        self._mark_notified(record, now)

    def _emit(self, rule: Rule, event: AlertEvent, kind: str, *, summary: str = "") -> None:
        key = self._notifier.group_key(event)
        if kind in ("flapping", "settled"):
            key = f"{key},flapping={event.fingerprint}"
        for name in self._channels_of(rule):
            self._out.append(Outgoing(name, key, kind, event, summary))

    def _check_flaps(self, now: float) -> None:
        """Announce the current state of alerts that stopped flapping."""
        for fp, flap in self._flaps.settle(now):
            rule = self._rules.get(flap.rule)
            if rule is None or flap.last_event is None:
                continue
            record = next(
                (r for r in self._alerts.get(rule.name, {}).values() if r.fingerprint == fp), None
            )
            firing = record is not None and record.state is AlertState.FIRING
            if record is not None and firing:
                event = self._event(rule, record, AlertState.FIRING, None)
            else:
                event = flap.last_event
            if self._silenced(event, now) is not None:
                continue  # still owed: sent once the silence ends (last_notified stays None)
            if record is not None and firing:
                self._mark_notified(record, now)
            summary = f"{rule.name} stopped flapping and is {event.state.value}"
            self._emit(rule, event, "settled", summary=summary)

    def _group_firing(self, channel: str, group_key: str, now: float) -> list[AlertEvent]:
        """Announced, unmuted firing alerts routed to ``channel`` in group ``group_key``."""
        found: list[AlertEvent] = []
        for name, tracked in self._alerts.items():
            rule = self._rules.get(name)
            if rule is None or channel not in self._channels_of(rule):
                continue
            for record in tracked.values():
                if record.state is not AlertState.FIRING or record.last_notified is None:
                    continue
                if self._flaps.is_flapping(record.fingerprint):
                    continue
                event = self._event(rule, record, AlertState.FIRING, None)
                if (
                    self._notifier.group_key(event) == group_key
                    and self._silenced(event, now) is None
                ):
                    found.append(event)
        return found

    def _owe_state(self, events: list[AlertEvent], *, deletes: bool = True) -> None:
        """Owe the write-back changed alert rows and flap entries, and ``events``.

        Rows are as stored (unconfirmed marks as before them); ``None`` deletes. With
        ``deletes=False`` only the upserts are taken; the deletions stay owed (they are
        written after the cycle's notifications are enqueued, see the engine's docstring).
        Flap entries travel with the rows so a restart or a new leader keeps muting a
        flapping alert.
        """
        rows: dict[str, dict[str, object] | None] = {}
        if deletes:
            rows = dict.fromkeys((fp for fp in self._deleted if fp not in self._dirty), None)
            self._deleted.clear()
        for fp, record in self._dirty.items():
            row = record.to_dict()
            if fp in self._unconfirmed:
                row["last_notified"] = self._unconfirmed[fp][1]
            rows[fp] = row
            self._deleted.discard(fp)  # stored again: a deletion owed from before is void
        self._dirty.clear()
        self._writeback.owe(rows, events, self._flaps.take(deletes=deletes))
