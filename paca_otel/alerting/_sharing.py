"""What the rule engine shares with the other workers of its service through the state file.

Under ``uvicorn --workers N`` every worker has a rule engine over one state file; one of them,
the leader (``_lease.py``, ``_scheduler.py``), evaluates. What the others must see, they read
back from the file when its change counters move (:mod:`paca_otel.storage._changes`):

- **rules** (``_rule_store.py``): a rule added through any worker is evaluated by the leader
  and listed by every worker at their next tick;
- **silences**: one made through any worker applies at the leader's next evaluation;
- **alert records, flap entries and history** (followers only): ``active_alerts()`` and
  ``history()`` of any worker show the service's state as the leader last wrote it (a firing
  alert's ``value`` is the one of its last transition, not of the last evaluation: the leader
  writes rows on transitions only).

A worker that becomes leader reloads the alert records and flap entries before its first
evaluation (:meth:`SharedState.reload_alerts`): pending alerts keep their ``for`` timers,
firing ones their notification times, flapping ones stay muted until they settle (and are
announced then), and what it re-decides carries the start times, hence the idempotency keys,
its predecessor used. A leader that loses its lease reloads too, dropping what it had decided
but not written.

A mixin of :class:`~paca_otel.alerting._engine.RuleEngine`, which owns the attributes declared
below; with an in-memory state there is nobody to share with and none of this runs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from paca_otel._internal import warn_once
from paca_otel.alerting._lease import Lease, lease_timing
from paca_otel.alerting._rule_store import RULES_TOPIC, RuleStore, StoredRule
from paca_otel.alerting._silences import FlapDetector, Silences
from paca_otel.alerting._state import ALERTS_TOPIC, SILENCES_TOPIC, AlertRecord, StateStore
from paca_otel.alerting._writeback import WriteBack
from paca_otel.delivery._notify import Notifier
from paca_otel.pipeline._store import Labels
from paca_otel.rules._expr import Expr
from paca_otel.rules._models import AlertEvent
from paca_otel.rules._rule import Rule
from paca_otel.storage._changes import ChangeWatch

if TYPE_CHECKING:
    from paca_otel.delivery.channels._base import NotificationChannel

__all__ = ["SharedState"]

logger = logging.getLogger("paca_otel.alerting")


class SharedState:
    """Reloads rules, silences and alert records other workers wrote (see the module docstring)."""

    # owned and set by RuleEngine.__init__
    channels: dict[str, NotificationChannel]
    clock: Callable[[], float]
    evaluation_interval: float
    silences: Silences
    _state: StateStore
    _rule_store: RuleStore | None
    _watch: ChangeWatch | None
    _notifier: Notifier
    _writeback: WriteBack
    _lock: threading.RLock
    _cycle_lock: threading.Lock
    _rules: dict[str, Rule]
    _origins: dict[str, str]
    _exprs: dict[str, tuple[Expr, Expr | None]]
    _alerts: dict[str, dict[Labels, AlertRecord]]
    _history: deque[AlertEvent]
    _flaps: FlapDetector
    _dirty: dict[str, AlertRecord]
    _deleted: set[str]
    _unconfirmed: dict[str, tuple[AlertRecord, float | None]]

    def _forget(self, record: AlertRecord) -> None:  # the engine's
        raise NotImplementedError

    def _load_stored(self, clock: Callable[[], float]) -> Lease | None:
        """Read rules (when shared), silences, alerts, flaps and history; the lease if shared.

        Raises:
            StorageError: the file cannot be read.
        """
        state = self._state
        self._watch = ChangeWatch(state.db) if state.shared else None
        versions = self._watch.changed() if self._watch is not None else {}
        self._rule_store = RuleStore(state.db, state.codec) if state.shared else None
        if self._rule_store is not None:
            self._install_rules(self._rule_store.load())
        self.silences = Silences(state, clock)
        self._restore()
        if self._watch is None:
            return None
        self._watch.seen(versions)
        ttl, _ = lease_timing(self.evaluation_interval)
        return Lease(state.db, ttl=ttl, clock=clock)

    def refresh(self, *, alerts: bool = True) -> None:
        """Re-read what other workers changed since the last call: one small read if nothing.

        Args:
            alerts: Also re-read alert records and history (a follower; the leader is the
                one writing them).

        Raises:
            StorageError: the file cannot be read (the next call retries).
        """
        if self._watch is None:
            return
        if self._rule_store is not None:
            self._rule_store.retry()
        self.silences.retry()
        changed = self._watch.changed()
        if not changed:
            return
        if RULES_TOPIC in changed and self._rule_store is not None:
            self._install_rules(self._rule_store.load())
        if SILENCES_TOPIC in changed:
            self.silences.reload()
        if alerts and ALERTS_TOPIC in changed:
            self.reload_alerts()
        self._watch.seen(changed)

    def _install_rules(self, stored: Mapping[str, StoredRule]) -> None:
        """Make ``stored`` this engine's rule set; alerts of removed rules are forgotten.

        A rule routed to a channel this worker lacks is kept (the outbox holds its
        notifications for a worker that has the channel), with one warning.
        """
        rules = {name: rule for name, (rule, _) in stored.items()}
        with self._lock:
            self._origins = {n: o for n, (_, o) in stored.items() if o is not None}
            for name in [n for n in self._rules if n not in rules]:
                del self._rules[name]
                del self._exprs[name]
                for record in self._alerts.pop(name, {}).values():
                    self._forget(record)
            for name, rule in rules.items():
                self._rules[name] = rule
                self._exprs[name] = (rule.expr, rule.clear_expr)
        for rule in rules.values():
            for channel in rule.channels:
                if channel not in self.channels:
                    warn_once(
                        logger,
                        f"shared_rule_channel:{rule.name}:{channel}",
                        "rule %r routes to channel %r, which worker %d does not have; its "
                        "notifications wait in the outbox for a worker that has it",
                        rule.name,
                        channel,
                        os.getpid(),
                    )

    def reload_alerts(self) -> None:
        """Replace alert records, flap entries and history by the stored ones; drop what is owed.

        Called when this worker becomes leader (its ``for`` timers come from the file), when
        it stops leading, and on a follower whenever the leader wrote.

        Raises:
            StorageError: the file cannot be read (nothing changed in memory).
        """
        with self._cycle_lock:
            self._restore()

    def _restore(self) -> None:
        """:meth:`reload_alerts` for a caller holding the cycle lock."""
        records = self._state.load_alerts()
        flaps = self._state.load_flaps()
        size = self._history.maxlen
        history = self._state.load_history(size or 0)
        now = self.clock()
        alerts: dict[str, dict[Labels, AlertRecord]] = {}
        for record in records:
            alerts.setdefault(record.rule, {})[record.labels] = record
        with self._lock:
            self._alerts = alerts
            self._history = deque(history, maxlen=size)
            self._flaps.load(flaps, now)
            self._dirty.clear()
            self._deleted.clear()
            self._unconfirmed.clear()
            self._notifier.reset()
            self._writeback.reset()
