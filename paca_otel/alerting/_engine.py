"""The rule engine: turns rule evaluations into alert state and alert state into notifications.

Per rule and label set an alert moves ``inactive -> pending -> firing -> resolved`` exactly as in
Prometheus (``for``, ``keep_firing_for``), with two additions from the seed: a ``clear``
condition (hysteresis: a firing alert resolves only once ``clear`` holds, so a value hovering at
the threshold does not page every minute) and a flap detector (an alert that changes state more
than ``flap_threshold`` times in ``flap_window`` sends one summary instead of a storm). What to
send is decided Alertmanager-style (repeats after ``cooldown``, silences, flapping) by the
notification policy in ``_policy.py``; grouping the result into notifications is
``delivery/_notify.py``'s
part. Sending is not: notifications go into the
outbox, and the dispatcher's thread delivers them, so evaluation never waits on a network.

Locking: one cycle at a time (``_cycle_lock``), and the engine's lock only around the
in-memory decisions. Collection, enqueueing and state writes run outside it
(``_writeback.py``), so readers (the API on the event loop) never wait on the SQLite file. An
alert counts as notified in storage only once its notification is in the outbox: until then
its ``last_notified`` is unconfirmed and written as it was before (a crash re-notifies
instead of losing the page); a notification storage refused is retried next cycle. With the
state in a file, a cycle's changed alert rows and flap entries are written *before* its
notifications are enqueued (deletions after): whoever evaluates next (this process after a
crash, or another worker taking over) finds the start times of what was notified, so it
re-decides the same idempotency keys and the outbox keeps one notification of each, and it
keeps muting the alerts that were flapping.

When cycles run is ``_scheduler.py``'s decision; with the state in a file, the workers sharing
it elect one leader to evaluate (``_lease.py``), and the others read back rules, silences and
alert records (``_sharing.py``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

from paca_otel._internal import handle_internal_errors
from paca_otel.alerting._policy import NotificationPolicy
from paca_otel.alerting._scheduler import Scheduler
from paca_otel.alerting._sharing import SharedState
from paca_otel.alerting._silences import FlapDetector
from paca_otel.alerting._state import ActiveAlert, AlertRecord, StateStore
from paca_otel.alerting._writeback import WriteBack
from paca_otel.config import evaluation_interval_problem
from paca_otel.delivery._notify import NotificationSink, Notifier, Outgoing
from paca_otel.errors import ConfigError, RuleError, StorageError
from paca_otel.pipeline._store import Labels, Matcher, SeriesStore
from paca_otel.rules._evaluate import CycleView, evaluate
from paca_otel.rules._expr import Expr
from paca_otel.rules._models import AlertEvent, AlertState, Notification, fingerprint
from paca_otel.rules._rule import Rule
from paca_otel.storage import count_error

if TYPE_CHECKING:
    from paca_otel.delivery.channels._base import NotificationChannel
    from paca_otel.storage import Codec, Database

__all__ = ["ActiveAlert", "NotificationSink", "RuleEngine"]

logger = logging.getLogger("paca_otel.alerting")

#: Events kept in memory for :meth:`RuleEngine.history` (the same number is kept on disk).
HISTORY_SIZE = 1_000


def _seconds(value: object, what: str) -> float:
    number = float(value)  # type: ignore[arg-type]  # validated right below; bad types raise
    if not math.isfinite(number) or number < 0:
        msg = f"{what} must be a finite number of seconds >= 0, got {value!r}"
        raise ConfigError(msg)
    return number


def _check_settings(
    evaluation_interval: float, flap_threshold: int, default_channels: Sequence[str]
) -> None:
    problem = evaluation_interval_problem(float(evaluation_interval))  # the settings' check
    if problem:
        msg = f"evaluation_interval {problem}, got {evaluation_interval!r}"
        raise ConfigError(msg)
    if flap_threshold < 1:
        msg = f"flap_threshold must be at least 1 state change, got {flap_threshold!r}"
        raise ConfigError(msg)
    if not default_channels:
        msg = "default_channels must name at least one channel (e.g. 'log')"
        raise ConfigError(msg)


class RuleEngine(NotificationPolicy, SharedState):
    """Evaluates rules against a :class:`SeriesStore` and tracks every alert's state.

    Args:
        store: Where the series live (the pipeline fills it).
        outbox: Where notifications go (the notification sink): the composition root passes
            its :class:`~paca_otel.delivery._outbox.Outbox`, tests a recording stand-in. The
            engine never builds one, and never sends: delivery is the dispatcher's.
        channels: The channels by name; used to check rules' channel names and to give
            channels with a ``resend_interval`` whole-group notifications. ``None``: names are
            not checked (whoever delivers the outbox knows the channels).
        state_path: SQLite file for alert state, silences and rules; ``None`` keeps them in
            memory. Workers sharing a file elect one leader to evaluate (:attr:`scheduler`).
        database: An open storage database to use instead of ``state_path`` (the runtime
            passes the one it shares with the outbox).
        codec: How stored payloads are encoded (encrypted with ``storage_key``).
        clock: Time source (a fake one in tests makes evaluation deterministic).
        evaluation_interval: Seconds between evaluations of the background thread.
        group_wait: Seconds to hold a new group's first notification so alerts firing in the
            next evaluations join it (Alertmanager's ``group_wait``); 0 sends per evaluation.
        default_channels: Channels of rules that name none.
        collect: Called with the evaluation time before each evaluation (``Pipeline.collect``).
        wake: Called after a cycle put notifications in the outbox (``Dispatcher.wake``), so
            they are delivered now rather than at the dispatcher's next poll.
        group_by: Labels whose values form the group key; ``alertname`` is the rule name.
        flap_threshold: More state changes than this within ``flap_window`` mark a flapping
            alert.
        flap_window: Seconds over which changes are counted; an alert stops flapping after a
            full window without a change.

    Raises:
        StorageError: the state file cannot be opened or read (the message names the path).
    """

    def __init__(
        self,
        store: SeriesStore,
        *,
        outbox: NotificationSink,
        channels: Mapping[str, NotificationChannel] | None = None,
        state_path: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
        evaluation_interval: float = 15.0,
        group_wait: float = 0.0,
        default_channels: Sequence[str] = ("log",),
        collect: Callable[[float], None] | None = None,
        group_by: Sequence[str] = ("alertname",),
        flap_threshold: int = 6,
        flap_window: float = 600.0,
        database: Database | None = None,
        codec: Codec | None = None,
        wake: Callable[[], object] | None = None,
    ) -> None:
        _check_settings(evaluation_interval, flap_threshold, default_channels)
        self.store = store
        self.clock = clock
        self.evaluation_interval = float(evaluation_interval)
        self.flap_window = _seconds(flap_window, "flap_window")
        self.default_channels = tuple(default_channels)
        self._collect = collect
        self._check_channels = channels is not None
        # the caller's dict itself, not a copy: channels registered later (the runtime's
        # add_channel) are seen by the engine and the dispatcher alike
        self.channels: dict[str, NotificationChannel] = (
            {} if channels is None else channels if isinstance(channels, dict) else dict(channels)
        )
        if self._check_channels:
            self._check_channel_names(self.default_channels, "default_channels")
        self.outbox: NotificationSink = outbox
        self._wake = wake
        self._notifier = Notifier(
            outbox,
            self.channels,
            group_by=group_by,
            group_wait=_seconds(group_wait, "group_wait"),
        )
        self._state = StateStore(state_path, database=database, codec=codec)
        self._writeback = WriteBack(self._state, outbox)
        self._lock = threading.RLock()  # in-memory state only: never held around I/O
        self._cycle_lock = threading.Lock()  # one evaluation cycle at a time
        self._rules: dict[str, Rule] = {}
        self._origins: dict[str, str] = {}  # where rules from a file came from (file:<path>)
        # parsed condition and clear condition per rule, read once (pydantic attrs are slow)
        self._exprs: dict[str, tuple[Expr, Expr | None]] = {}
        self._alerts: dict[str, dict[Labels, AlertRecord]] = {}
        self._flaps = FlapDetector(int(flap_threshold), self.flap_window)
        self._last_eval: dict[str, float] = {}
        self._view: SeriesStore = store
        self._history: deque[AlertEvent] = deque(maxlen=HISTORY_SIZE)
        self._dirty: dict[str, AlertRecord] = {}
        # alerts marked notified whose notification is not in the outbox yet: the record and
        # its ``last_notified`` before the mark (what storage keeps until the enqueue)
        self._unconfirmed: dict[str, tuple[AlertRecord, float | None]] = {}
        self._events: list[AlertEvent] = []  # this cycle's transitions
        self._out: list[Outgoing] = []  # this cycle's notifications, before grouping
        self._deleted: set[str] = set()
        try:  # rules (when shared), silences, alerts and history as stored
            lease = self._load_stored(clock)
        except BaseException:
            self._state.close()
            raise
        #: Runs the evaluations, under the leader lease when the state file is shared.
        self.scheduler = Scheduler(self, lease)
        #: Evaluation cycles run and the duration of the last one, for self-monitoring.
        self.cycles = 0
        self.last_cycle_seconds = 0.0

    @property
    def leading(self) -> bool:
        """Whether this process evaluates the rules (always, with in-memory state)."""
        return self.scheduler.leading

    @property
    def group_by(self) -> tuple[str, ...]:
        """Labels whose values form the group key."""
        return self._notifier.group_by

    @property
    def group_wait(self) -> float:
        """Seconds a new group's first notification is held."""
        return self._notifier.group_wait

    @property
    def duplicates(self) -> int:
        """Notifications the outbox refused as duplicates (same idempotency key)."""
        return self._notifier.duplicates + self._writeback.duplicates

    @property
    def storage_errors(self) -> int:
        """Storage operations of the evaluation loop that failed (and were retried)."""
        return self._writeback.errors

    # ------------------------------------------------------------------ rules
    @property
    def rules(self) -> Mapping[str, Rule]:
        """The rules by name (a snapshot)."""
        with self._lock:
            return dict(self._rules)

    def _check_channel_names(self, names: Iterable[str], where: str) -> None:
        unknown = [n for n in names if n not in self.channels]
        if unknown:
            msg = f"{where} names unknown channel(s) {unknown}; configured: {sorted(self.channels)}"
            raise RuleError(msg)

    @property
    def origins(self) -> Mapping[str, str]:
        """Where the rules that came from a rules file came from, by name (a snapshot)."""
        with self._lock:
            return dict(self._origins)

    def add_rule(self, rule: Rule, *, origin: str | None = None) -> None:
        """Add ``rule``, or replace the rule of the same name keeping its alerts' state.

        Args:
            rule: The rule.
            origin: ``file:<path>`` for a rule from a rules file (which then owns it, see
                :meth:`remove_rules_from`); ``None`` for one from code or the API.

        Raises:
            RuleError: the rule routes to a channel that is not configured.
        """
        if self._check_channels:
            self._check_channel_names(rule.channels, f"rule {rule.name!r} channels")
        with self._lock:
            self._rules[rule.name] = rule
            self._exprs[rule.name] = (rule.expr, rule.clear_expr)
            if origin is None:  # last write wins: code or the API owns it now
                self._origins.pop(rule.name, None)
            else:
                self._origins[rule.name] = origin
        if self._rule_store is not None:  # every worker sharing the file picks it up
            self._rule_store.put_later(rule, origin)

    def remove_rules_from(self, origin: str, keep: Iterable[str]) -> list[str]:
        """Remove the rules of ``origin`` not named in ``keep``; return their names, sorted.

        What a rules file does when it is loaded: it owns its rules, so one deleted from the
        file goes (from every worker, as :meth:`remove_rule` does it) instead of firing on.
        """
        kept = set(keep)
        with self._lock:
            gone = sorted(n for n, o in self._origins.items() if o == origin and n not in kept)
            for name in gone:
                self._drop_rule(name)
        if self._rule_store is not None:
            for name in gone:
                self._rule_store.delete_later(name)
        return gone

    def remove_rule(self, name: str) -> None:
        """Remove a rule and forget its alerts (without resolved notifications).

        Raises:
            RuleError: no rule has that name.
        """
        with self._lock:
            if name not in self._rules:
                msg = f"no rule named {name!r}; rules: {sorted(self._rules)}"
                raise RuleError(msg)
            self._drop_rule(name)
        if self._rule_store is not None:
            self._rule_store.delete_later(name)

    def _drop_rule(self, name: str) -> None:
        """Forget rule ``name`` and its alerts in memory (the caller holds the lock)."""
        del self._rules[name]
        del self._exprs[name]
        self._origins.pop(name, None)
        for record in self._alerts.pop(name, {}).values():
            self._forget(record)
        # written by the next cycle (or close): no I/O here, callers may be on the loop

    # ------------------------------------------------------------------ evaluation
    def bind_collector(self, collect: Callable[[float], None] | None) -> None:
        """Call ``collect(now)`` first in each cycle (``None``: read the store as it is).

        The runtime binds the live pipeline's collection when telemetry starts and unbinds it
        when telemetry shuts down, so the engine never reaches for the pipeline itself.
        """
        with self._cycle_lock:
            self._collect = collect

    def evaluate_once(
        self, now: float | None = None, *, fence: Callable[[], bool] | None = None
    ) -> list[AlertEvent]:
        """Run one evaluation cycle at ``now`` and return the transitions it caused.

        Returned are the events of alerts that started firing or resolved; notifications for
        them (after silences, flap detection and grouping) are in the outbox when this returns,
        unless storage failed: then they are retried next cycle (and counted, never raised).

        This is the bare cycle: it does not ask the leader lease (``scheduler.tick`` does).

        Args:
            now: The evaluation time (default: the clock).
            fence: Asked after deciding, before writing anything (the scheduler passes its
                lease's ``held``); ``False`` drops the cycle and reloads the stored state.
        """
        with self._cycle_lock:
            at = self.clock() if now is None else float(now)
            started = time.perf_counter()
            if self._collect is not None:  # outside the lock: readers must not wait on it
                with handle_internal_errors("rule_engine_collect", logger):
                    self._collect(at)
            with self._lock:
                events, notifications = self._decide(at)
            if fence is not None and not fence():  # the lease may have passed on: write nothing
                logger.warning("paca-otel: an evaluation outlived the alerting lease; dropped")
                try:
                    self._restore()
                except StorageError as exc:  # retried when this worker leads again
                    count_error("shared_state_read", exc)
                return []
            self._write(notifications, events, at)
            self.cycles += 1
            self.last_cycle_seconds = time.perf_counter() - started
        return events

    def _decide(self, at: float) -> tuple[list[AlertEvent], list[Notification]]:
        """The in-memory part of a cycle (under the lock): transitions and notifications."""
        events = self._events = []
        outgoing = self._out = []
        # duck-typed stand-in: the evaluator only calls latest/select/names
        self._view = cast("SeriesStore", CycleView(self.store))
        for rule in list(self._rules.values()):
            if rule.interval is not None:  # a group with its own, slower interval
                last = self._last_eval.get(rule.name)
                if last is not None and at - last < rule.interval - 1e-6:
                    continue
                self._last_eval[rule.name] = at
            with handle_internal_errors("rule_evaluation", logger):
                self._evaluate_rule(rule, at)
        self._check_flaps(at)
        notifications = self._notifier.build(outgoing, at, self._group_firing)
        self._history.extend(events)
        self._view = self.store  # drop the cycle's memo
        return events, notifications

    def _write(
        self, notifications: list[Notification], events: list[AlertEvent], at: float
    ) -> None:
        """The I/O part of a cycle, outside the lock: enqueue, confirm marks, write state."""
        ok = True
        if notifications and self._state.shared:
            # rows first (see the module docstring): a successor re-decides the same keys
            with self._lock:
                self._owe_state([], deletes=False)
            ok = self._writeback.flush()
        sent, dropped, ok = self._writeback.enqueue(notifications, store=ok)
        if sent and self._wake is not None:
            self._wake()
        with self._lock:
            self._settle_marks(dropped)
            self._owe_state(events)
        if ok and self._writeback.flush():
            try:
                self.silences.gc(at)
            except StorageError as exc:
                count_error("silence_gc", exc)

    def _evaluate_rule(self, rule: Rule, now: float) -> None:
        tracked = self._alerts.setdefault(rule.name, {})
        expr, clear_expr = self._exprs[rule.name]
        result = evaluate(expr, self._view, now)
        force_clear = False
        if result.no_data:
            mode = rule.no_data
            if mode == "keep":
                holding: dict[Labels, float | None] | None = None
            elif mode == "alerting":
                holding = dict.fromkeys(tracked or [()], None)
            else:  # "ok": nothing to measure counts as healthy; resolve without waiting on clear
                holding = {}
                force_clear = True
        else:
            holding = dict(result.samples)
        if holding is not None:
            for labels, value in holding.items():
                self._condition_true(rule, tracked, labels, value, now)
            cleared: dict[Labels, float] | None = None
            measured: frozenset[Labels] = frozenset()
            clear_all = force_clear or clear_expr is None
            for labels in [lb for lb in tracked if lb not in holding]:
                record = tracked[labels]
                if record.state is AlertState.FIRING and not clear_all:
                    if cleared is None:
                        assert clear_expr is not None  # clear_all is False only with one
                        clear_result = evaluate(clear_expr, self._view, now, measured=True)
                        clear_all = clear_result.no_data or () in clear_result.samples
                        cleared = clear_result.samples
                        measured = clear_result.measured
                    # hysteresis holds a label set that is still reported but not yet below
                    # ``clear``; one that is no longer reported resolves as without ``clear``
                    if not clear_all and labels not in cleared and labels in measured:
                        if record.false_since is not None:  # still "true": the timer restarts
                            record.false_since = None
                            self._dirty[record.fingerprint] = record
                        record.last_true = now
                        continue
                self._condition_false(rule, tracked, record, now)
        for record in tracked.values():
            if record.state is AlertState.FIRING:
                self._maybe_repeat(rule, record, now)

    def _condition_true(
        self,
        rule: Rule,
        tracked: dict[Labels, AlertRecord],
        labels: Labels,
        value: float | None,
        now: float,
    ) -> None:
        record = tracked.get(labels)
        if record is None:
            full = self._labels(rule, labels)
            record = tracked[labels] = AlertRecord(
                rule=rule.name,
                labels=labels,
                fingerprint=fingerprint(rule.name, full),
                state=AlertState.PENDING,
                active_since=now,
                last_true=now,
                value=value,
            )
            self._dirty[record.fingerprint] = record
        record.last_true = now
        record.value = value
        if record.false_since is not None:
            record.false_since = None
            self._dirty[record.fingerprint] = record
        if record.state is AlertState.PENDING and now - record.active_since >= rule.for_:
            record.state = AlertState.FIRING
            record.fired_at = now
            record.last_notified = None
            self._dirty[record.fingerprint] = record
            event = self._event(rule, record, AlertState.FIRING, None)
            self._events.append(event)
            self._transition(rule, record, event, now)

    def _condition_false(
        self, rule: Rule, tracked: dict[Labels, AlertRecord], record: AlertRecord, now: float
    ) -> None:
        if record.state is AlertState.PENDING:
            del tracked[record.labels]  # the `for` timer restarts from zero next time
            self._forget(record)
            return
        if record.false_since is None:
            record.false_since = now
            self._dirty[record.fingerprint] = record
        if now - record.false_since < rule.keep_firing_for:
            return
        del tracked[record.labels]
        self._forget(record)
        event = self._event(rule, record, AlertState.RESOLVED, now)
        self._events.append(event)
        if record.last_notified is not None:
            self._transition(rule, record, event, now)
        else:  # never announced (silenced): a lone "resolved" would confuse
            self._flaps.note(record.fingerprint, rule.name, event, now)

    def _forget(self, record: AlertRecord) -> None:
        self._dirty.pop(record.fingerprint, None)
        self._deleted.add(record.fingerprint)

    # ------------------------------------------------------------------ queries
    def active_alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts of the current rules, sorted by rule and labels."""
        now = self.clock()
        out: list[ActiveAlert] = []
        with self._lock:
            for name in sorted(self._rules):
                rule = self._rules[name]
                for labels in sorted(self._alerts.get(name, {})):
                    record = self._alerts[name][labels]
                    firing = record.state is AlertState.FIRING
                    event = self._event(rule, record, record.state, None)
                    silence = self._silenced(event, now)
                    out.append(
                        ActiveAlert(
                            rule=name,
                            state=record.state,
                            labels=event.labels,
                            annotations=event.annotations,
                            value=record.value,
                            severity=event.severity,
                            active_since=record.active_since,
                            fired_at=self._fired_at(rule, record) if firing else None,
                            last_notified=record.last_notified,
                            fingerprint=record.fingerprint,
                            flapping=self._flaps.is_flapping(record.fingerprint),
                            silenced_by=None if silence is None else silence.id,
                        )
                    )
        return out

    @staticmethod
    def _fired_at(rule: Rule, record: AlertRecord) -> float:
        if record.fired_at is not None:
            return record.fired_at
        return record.active_since + rule.for_  # a record saved before fired_at existed

    def history(self, limit: int = 100) -> list[AlertEvent]:
        """The newest ``limit`` firing/resolved events, newest first."""
        with self._lock:
            items = list(self._history)
        return items[::-1][: max(0, limit)]

    # ------------------------------------------------------------------ silences
    def silence(
        self,
        matchers: Mapping[str, str] | Sequence[Matcher],
        *,
        duration: float | None = None,
        until: float | None = None,
        comment: str = "",
        created_by: str = "",
    ) -> str:
        """Mute notifications of alerts matching every matcher (``alertname`` = rule name).

        State still moves; a firing alert that was muted is notified once the silence ends.

        Raises:
            RuleError: bad matchers, or not exactly one of ``duration``/``until``.
        """
        return self.silences.add(
            matchers, duration=duration, until=until, comment=comment, created_by=created_by
        )

    def expire_silence(self, silence_id: str) -> None:
        """End a silence now.

        Raises:
            RuleError: no silence has that id.
        """
        self.silences.expire(silence_id)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Evaluate every ``evaluation_interval`` seconds on the scheduler's thread; idempotent.

        Delivery is not started here: the dispatcher belongs to whoever built the outbox.
        """
        self.scheduler.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop evaluating (handing the lease over)."""
        self.scheduler.stop(timeout)

    def write_owed(self) -> None:
        """Write now what earlier cycles owe storage (retries, rows, history); errors counted."""
        with self._cycle_lock:
            self._writeback.enqueue([])
            with self._lock:
                self._settle_marks(set())
                self._owe_state([])
            self._writeback.flush()

    def close(self) -> None:
        """Stop, write what is owed, and release the state database (the outbox is not ours)."""
        self.stop()
        self.write_owed()
        with self._cycle_lock:
            self._state.close()
