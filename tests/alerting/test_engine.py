"""The rule engine's state machine, notification policy, silences, grouping and persistence."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from paca_otel import testing
from paca_otel.alerting._engine import RuleEngine
from paca_otel.alerting._state import StateStore
from paca_otel.delivery._dispatcher import Dispatcher
from paca_otel.delivery._outbox import Outbox
from paca_otel.errors import ConfigError, RuleError, StorageError
from paca_otel.pipeline._store import Matcher, SeriesStore
from paca_otel.rules._models import AlertState, Notification
from paca_otel.rules._rule import Rule
from paca_otel.storage import open_database
from tests._wait import wait_until

HOST_A = (("host", "a"),)
HOST_B = (("host", "b"),)


class Clock:
    """A settable fake clock."""

    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Sink:
    """Records every notification the engine enqueues (a stand-in for the outbox)."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []

    def enqueue(self, notification: Notification) -> bool:
        self.notifications.append(notification)
        return True

    def states(self) -> list[tuple[str, ...]]:
        """Each notification as its events' states, for compact asserts."""
        return [tuple(e.state.value for e in n.events) for n in self.notifications]


class FakeChannel:
    """A channel that records what it is sent."""

    def __init__(self, name: str, resend_interval: float | None = None) -> None:
        self.name = name
        self.resend_interval = resend_interval
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)


def make_rule(**kwargs: Any) -> Rule:
    data: dict[str, Any] = {"name": "HighMem", "condition": "mem > 90", "cooldown": 3600}
    data.update(kwargs)
    return Rule(**data)


def make_engine(
    rule: Rule | None = None, *, clock: Clock | None = None, sink: Sink | None = None, **kw: Any
) -> tuple[RuleEngine, SeriesStore, Sink, Clock]:
    store = SeriesStore()
    sink = sink or Sink()
    clock = clock or Clock()
    engine = RuleEngine(store, outbox=sink, clock=clock, **kw)
    if rule is not None:
        engine.add_rule(rule)
    return engine, store, sink, clock


def drive(
    rule: Rule, values: Sequence[float | None], *, step: float = 15.0, **kw: Any
) -> tuple[list[str | None], Sink, RuleEngine]:
    """Feed ``values`` (None = no point) one per step and return the alert's state per step."""
    engine, store, sink, clock = make_engine(rule, **kw)
    states: list[str | None] = []
    for i, value in enumerate(values):
        t = 1_000.0 + i * step
        clock.t = t
        if value is not None:
            store.append("mem", HOST_A, value, t)
        engine.evaluate_once(t)
        alerts = engine.active_alerts()
        states.append(alerts[0].state.value if alerts else None)
    return states, sink, engine


P, F = "pending", "firing"

STATE_TABLE = [
    pytest.param({"for": "30s"}, [95, 95, 95, 95], [P, P, F, F], id="pending-then-firing"),
    pytest.param({}, [95, 95], [F, F], id="for-zero-fires-at-once"),
    pytest.param({"for": 30}, [95, 95, 50, 95, 95, 95], [P, P, None, P, P, F], id="for-resets"),
    pytest.param({}, [50, 95, 50], [None, F, None], id="fires-and-resolves"),
    pytest.param({"keep_firing_for": 30}, [95, 50, 50, 50], [F, F, F, None], id="keep-firing"),
    pytest.param(
        {"keep_firing_for": 30}, [95, 50, 95, 50, 50], [F, F, F, F, F], id="keep-firing-rearms"
    ),
    pytest.param({"clear": "mem < 80"}, [95, 85, 85, 70], [F, F, F, None], id="clear-hysteresis"),
    pytest.param(
        {"clear": "mem < 80"}, [95, 85, 95, 85, 79], [F, F, F, F, None], id="clear-holds-firing"
    ),
]


@pytest.mark.parametrize(("fields", "values", "expected"), STATE_TABLE)
def test_state_transitions(
    fields: dict[str, Any], values: list[float], expected: list[str]
) -> None:
    """Every transition of inactive/pending/firing/resolved happens at the Prometheus step."""
    states, _, _ = drive(make_rule(**fields), values)
    assert states == expected


def test_events_carry_labels_annotations_and_times() -> None:
    """A firing and a resolved event carry rule labels, rendered annotations and start/end."""
    rule = make_rule(
        labels={"team": "ops"},
        annotations={"summary": "{{ $labels.host }} at {{ $value }}"},
        severity="critical",
    )
    _, sink, engine = drive(rule, [95, 50])
    firing, resolved = (n.events[0] for n in sink.notifications)
    assert firing.state is AlertState.FIRING
    assert firing.labels == {"host": "a", "team": "ops"}
    assert firing.annotations == {"summary": "a at 95"}
    assert firing.severity.value == "critical"
    assert resolved.state is AlertState.RESOLVED
    assert resolved.starts_at == firing.starts_at == 1_000.0
    assert resolved.ends_at == 1_015.0
    assert [e.state for e in engine.history()] == [AlertState.RESOLVED, AlertState.FIRING]


def test_fired_at_is_when_the_alert_started_firing() -> None:
    """``fired_at`` is the evaluation at which the alert fired, not ``active_since + for``."""
    engine, store, _, clock = make_engine(make_rule(**{"for": 20}))
    for _ in range(3):  # t = 1000 (pending), 1015 (pending), 1030 (fires)
        store.append("mem", HOST_A, 95, clock.t)
        engine.evaluate_once()
        clock.t += 15
    (alert,) = engine.active_alerts()
    assert alert.fired_at == 1_030.0


def test_pending_alert_does_not_notify() -> None:
    """A pending alert that never reaches ``for`` sends nothing at all."""
    _, sink, _ = drive(make_rule(**{"for": 60}), [95, 95, 50])
    assert sink.notifications == []


def test_cooldown_repeats_while_firing() -> None:
    """A firing alert is notified again once per ``cooldown`` (Alertmanager's repeat_interval)."""
    _, sink, _ = drive(make_rule(cooldown=60), [95] * 10)  # t = 0 .. 135 s
    assert len(sink.notifications) == 3  # t = 0, 60, 120
    assert [n.extra.get("kind") for n in sink.notifications] == [None, "repeat", "repeat"]


def test_resolved_notification_after_repeats() -> None:
    """Resolution is always announced for an alert whose firing was announced."""
    _, sink, _ = drive(make_rule(cooldown=3600), [95, 95, 95, 10])
    assert sink.states() == [("firing",), ("resolved",)]


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        pytest.param("keep", [95, None, None], [F, F, F], id="keep"),
        pytest.param("ok", [95, None, None], [F, None, None], id="ok"),
        pytest.param("alerting", [None, None], [F, F], id="alerting-without-history"),
        pytest.param("keep", [None, None], [None, None], id="keep-nothing"),
    ],
)
def test_no_data_modes(mode: str, values: list[float | None], expected: list[str | None]) -> None:
    """With every selector empty (stale after 5 min), the rule's no_data mode decides."""
    states, _, _ = drive(make_rule(no_data=mode), values, step=400.0)
    assert states == expected


def test_no_data_alerting_applies_for() -> None:
    """``no_data: alerting`` treats no data as true, so ``for`` still applies."""
    states, sink, _ = drive(make_rule(no_data="alerting", **{"for": 600}), [None] * 3, step=400)
    assert states == [P, P, F]
    assert sink.notifications[0].events[0].value is None


def test_silence_mutes_notifications_not_state() -> None:
    """A matching silence suppresses notifications; the alert still fires and is listed."""
    engine, store, sink, clock = make_engine(make_rule())
    sid = engine.silence({"host": "a"}, duration=60)
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once()
    (alert,) = engine.active_alerts()
    assert alert.state is AlertState.FIRING
    assert alert.silenced_by == sid
    assert sink.notifications == []
    clock.t += 120  # the silence has expired: the owed firing notification goes out
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once()
    assert sink.states() == [("firing",)]


def test_silence_by_alertname_regex_and_expire() -> None:
    """Silences match ``alertname`` and regexes; expiring one lets notifications through."""
    engine, store, sink, clock = make_engine(make_rule())
    sid = engine.silence([Matcher("alertname", "=~", "High.*")], until=clock.t + 3600)
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once()
    assert sink.notifications == []
    engine.expire_silence(sid)
    clock.t += 15
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once()
    assert sink.states() == [("firing",)]


def test_silenced_alert_resolves_quietly() -> None:
    """An alert muted for its whole life sends no lone "resolved"."""
    engine, store, sink, clock = make_engine(make_rule())
    engine.silence({"host": "a"}, duration=3600)
    for value in (95, 10):
        store.append("mem", HOST_A, value, clock.t)
        engine.evaluate_once()
        clock.t += 15
    assert sink.notifications == []
    assert [e.state.value for e in engine.history()] == ["resolved", "firing"]


def test_no_lone_resolved_when_a_silence_ends_as_the_alert_resolves() -> None:
    """An alert muted while firing sends no "resolved" for a firing nobody was told about."""
    engine, store, sink, clock = make_engine(make_rule())
    engine.silence({"host": "a"}, duration=30)
    for value in (95, 95, 50):  # t = 0, 15 muted; at 30 the silence is over and it resolves
        store.append("mem", HOST_A, value, clock.t)
        engine.evaluate_once()
        clock.t += 15
    assert sink.notifications == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda e: e.silence({}, duration=1), "at least one matcher", id="empty"),
        pytest.param(lambda e: e.silence({"a": "b"}), "exactly one of", id="no-expiry"),
        pytest.param(lambda e: e.silence({"a": "b"}, duration=0), "after its start", id="zero"),
        pytest.param(lambda e: e.expire_silence("nope"), "no silence", id="unknown-id"),
        pytest.param(lambda e: e.remove_rule("nope"), "no rule named", id="unknown-rule"),
    ],
)
def test_control_errors(call: Any, message: str) -> None:
    """Bad silence and rule calls fail fast with a RuleError naming the problem."""
    engine, *_ = make_engine()
    with pytest.raises(RuleError, match=message):
        call(engine)


def test_config_errors() -> None:
    """Unknown channels and a bad interval are refused at set-up."""
    store = SeriesStore()
    with pytest.raises(ConfigError, match="evaluation_interval"):
        RuleEngine(store, outbox=Sink(), evaluation_interval=0)
    engine = RuleEngine(store, outbox=Sink(), channels={"log": FakeChannel("log")})
    with pytest.raises(RuleError, match="unknown channel"):
        engine.add_rule(make_rule(channels=["slack"]))


def test_grouping_one_notification_per_channel() -> None:
    """Alerts of one rule firing in the same evaluation go out as one notification per channel."""
    channels = {"log": FakeChannel("log"), "slack": FakeChannel("slack")}
    engine, store, sink, clock = make_engine(
        make_rule(channels=["log", "slack"]), channels=channels
    )
    store.append("mem", HOST_A, 95, clock.t)
    store.append("mem", HOST_B, 97, clock.t)
    engine.evaluate_once()
    assert sorted(n.channel for n in sink.notifications) == ["log", "slack"]
    assert all(len(n.events) == 2 for n in sink.notifications)
    assert sink.notifications[0].group_key == "alertname=HighMem"


def test_grouping_by_label_across_rules() -> None:
    """With ``group_by`` a label, alerts of different rules sharing its value are one message."""
    engine, store, sink, clock = make_engine(group_by=("team",))
    engine.add_rule(make_rule(name="HighMem", labels={"team": "ops"}))
    engine.add_rule(make_rule(name="VeryHighMem", condition="mem > 95", labels={"team": "ops"}))
    store.append("mem", HOST_A, 99, clock.t)
    engine.evaluate_once()
    (notification,) = sink.notifications
    assert notification.group_key == "team=ops"
    assert sorted(e.rule for e in notification.events) == ["HighMem", "VeryHighMem"]


def test_silence_and_grouping_see_severity_as_a_label() -> None:
    """``severity`` matches in silences and ``group_by``, as in Alertmanager (it is a label)."""
    engine, store, sink, clock = make_engine(group_by=("severity",))
    engine.add_rule(make_rule(name="Warn", severity="warning"))
    engine.add_rule(make_rule(name="Crit", condition="mem > 92", severity="critical"))
    engine.silence({"severity": "warning"}, duration=600)
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once()
    (notification,) = sink.notifications
    assert notification.group_key == "severity=critical"
    assert [e.rule for e in notification.events] == ["Crit"]


def test_group_wait_batches_later_alerts() -> None:
    """``group_wait`` holds a new group's first notification so later alerts join it."""
    engine, store, sink, clock = make_engine(make_rule(), group_wait=30)
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once()
    clock.t += 15
    store.append("mem", HOST_A, 95, clock.t)
    store.append("mem", HOST_B, 95, clock.t)
    engine.evaluate_once()
    assert sink.notifications == []
    clock.t += 15
    for labels in (HOST_A, HOST_B):
        store.append("mem", labels, 95, clock.t)
    engine.evaluate_once()
    (notification,) = sink.notifications
    assert len(notification.events) == 2


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([95, 50, 50, 50, 50, 50], [], id="fired-and-resolved-within-the-hold"),
        pytest.param([95] * 5 + [50] * 5, [("firing",), ("resolved",)], id="after-the-hold"),
    ],
)
def test_group_wait_sends_only_the_latest_state_of_an_alert(
    values: list[float], expected: list[tuple[str, ...]]
) -> None:
    """An alert that fires and resolves within ``group_wait`` is not announced as firing."""
    engine, store, sink, clock = make_engine(make_rule(), group_wait=60)
    for value in values:
        store.append("mem", HOST_A, value, clock.t)
        engine.evaluate_once()
        clock.t += 15
    assert sink.states() == expected


def test_resend_channel_gets_whole_group() -> None:
    """A channel with ``resend_interval`` gets every firing alert of the group each time."""
    channels = {"am": FakeChannel("am", resend_interval=60)}
    engine, store, sink, clock = make_engine(
        make_rule(channels=["am"]), channels=channels, default_channels=["am"]
    )
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once()
    clock.t += 15
    store.append("mem", HOST_A, 95, clock.t)
    store.append("mem", HOST_B, 95, clock.t)
    engine.evaluate_once()
    assert [len(n.events) for n in sink.notifications] == [1, 2]


def test_state_survives_restart(tmp_path: Path) -> None:
    """A new engine on the same SQLite file keeps pending timers and firing alerts' notify time."""
    path = tmp_path / "state.db"
    rules = [make_rule(), make_rule(name="Slow", condition="mem > 50", **{"for": 60})]
    clock = Clock()
    first, store, sink, _ = make_engine(clock=clock, state_path=path)
    for rule in rules:
        first.add_rule(rule)
    for _ in range(2):  # t = 1000, 1015: HighMem fires, Slow is pending since 1000
        store.append("mem", HOST_A, 95, clock.t)
        first.evaluate_once()
        clock.t += 15
    first.close()
    assert sink.states() == [("firing",)]

    second = RuleEngine(store, outbox=sink, clock=clock, state_path=path)
    for rule in rules:
        second.add_rule(rule)
    before = {a.rule: a for a in second.active_alerts()}
    assert before["Slow"].state is AlertState.PENDING
    assert before["Slow"].active_since == 1_000.0
    assert before["HighMem"].last_notified == 1_000.0
    for _ in range(3):  # t = 1030, 1045, 1060: Slow fires at 1060 (for = 60 s since 1000)
        store.append("mem", HOST_A, 95, clock.t)
        second.evaluate_once()
        clock.t += 15
    assert sink.states() == [("firing",), ("firing",)]  # no re-page for HighMem
    assert sink.notifications[-1].events[0].rule == "Slow"
    assert len(second.history()) == 2
    second.close()


def test_silences_survive_restart(tmp_path: Path) -> None:
    """Silences are stored with the alert state."""
    path = tmp_path / "state.db"
    first, *_ = make_engine(state_path=path)
    sid = first.silence({"host": "a"}, duration=600, comment="maintenance")
    first.close()
    second, *_ = make_engine(state_path=path)
    (silence,) = second.silences.all()
    assert (silence.id, silence.comment) == (sid, "maintenance")
    second.close()


def test_keep_firing_timer_restarts_after_hysteresis_across_restart(tmp_path: Path) -> None:
    """A ``keep_firing_for`` timer reset by the ``clear`` hysteresis stays reset after a restart."""
    path = tmp_path / "state.db"
    rule = make_rule(clear="mem < 80", keep_firing_for=60)
    clock = Clock()
    store = SeriesStore()
    sink = Sink()
    first = RuleEngine(store, outbox=sink, clock=clock, state_path=path)
    first.add_rule(rule)
    for value in (95, 70, 85):  # fires; clear holds (timer starts); back between thresholds
        store.append("mem", HOST_A, value, clock.t)
        first.evaluate_once()
        clock.t += 15
    first.close()
    second = RuleEngine(store, outbox=sink, clock=clock, state_path=path)
    second.add_rule(rule)
    clock.t += 60
    store.append("mem", HOST_A, 70, clock.t)  # clear holds again: the timer starts anew
    second.evaluate_once()
    assert [a.state for a in second.active_alerts()] == [AlertState.FIRING]
    second.close()


def test_remove_rule_forgets_alerts() -> None:
    """Removing a rule drops its alerts without notifications."""
    engine, store, _, clock = make_engine(make_rule())
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once()
    engine.remove_rule("HighMem")
    assert engine.active_alerts() == []
    assert "HighMem" not in engine.rules


def test_add_rule_replaces_and_keeps_state() -> None:
    """Replacing a rule of the same name keeps its alerts (no re-notification)."""
    engine, store, sink, clock = make_engine(make_rule())
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once()
    engine.add_rule(make_rule(annotations={"summary": "changed"}))
    clock.t += 15
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once()
    assert len(sink.notifications) == 1
    assert engine.active_alerts()[0].annotations == {"summary": "changed"}


def test_collect_runs_before_each_evaluation() -> None:
    """The ``collect`` hook (Pipeline.collect) fills the store right before evaluating."""
    calls: list[float] = []
    store = SeriesStore()

    def collect(now: float) -> None:
        calls.append(now)
        store.append("mem", HOST_A, 95, now)

    sink = Sink()
    engine = RuleEngine(store, outbox=sink, clock=Clock(), collect=collect)
    engine.add_rule(make_rule())
    events = engine.evaluate_once(2_000.0)
    assert calls == [2_000.0]
    assert [e.state for e in events] == [AlertState.FIRING]


def test_real_outbox_and_dispatcher_deliver_one_message() -> None:
    """End to end with the real outbox: one grouped firing message reaches the channel."""
    clock = Clock()
    channel = FakeChannel("log")
    outbox = Outbox(":memory:", clock=clock)
    store = SeriesStore()
    engine = RuleEngine(store, outbox=outbox, channels={"log": channel}, clock=clock)
    engine.add_rule(make_rule())
    store.append("mem", HOST_A, 95, clock.t)
    store.append("mem", HOST_B, 95, clock.t)
    engine.evaluate_once()
    dispatcher = Dispatcher(outbox, {"log": channel}, clock=clock)
    assert dispatcher.deliver_due(clock.t) == 1
    assert len(channel.sent[0].events) == 2
    outbox.close()


def test_background_thread_evaluates_and_stops() -> None:
    """``start`` evaluates on a daemon thread at once; ``stop`` joins it.

    The engine is given its outbox and the dispatcher's ``wake``; it builds neither.
    """
    store = SeriesStore()
    store.append("mem", HOST_A, 95, time.time())
    channel = FakeChannel("log")
    outbox = Outbox(":memory:")
    dispatcher = Dispatcher(outbox, {"log": channel})
    engine = RuleEngine(
        store,
        outbox=outbox,
        channels={"log": channel},
        evaluation_interval=1,
        wake=dispatcher.wake,
    )
    engine.add_rule(make_rule())
    dispatcher.start()
    engine.start()
    try:
        wait_until(lambda: channel.sent, "the background evaluation to notify", timeout=30)
    finally:
        engine.close()
        dispatcher.stop()
        outbox.close()
    assert engine.cycles >= 1
    assert channel.sent[0].status is AlertState.FIRING


def test_cooldown_repeat_reaches_real_outbox() -> None:
    """A cooldown repeat is a new row in the real outbox, not a duplicate of the first message."""
    clock = Clock(0.0)
    outbox = Outbox(":memory:", clock=clock)
    store = SeriesStore()
    engine = RuleEngine(store, outbox=outbox, clock=clock)
    engine.add_rule(make_rule(cooldown=60))
    for i in range(6):  # t = 0 .. 75 s: first message at 0, repeat at 60
        clock.t = i * 15.0
        store.append("mem", HOST_A, 95, clock.t)
        engine.evaluate_once()
    assert len(outbox.entries()) == 2
    assert engine.duplicates == 0
    outbox.close()


def test_group_interval_slows_a_rule() -> None:
    """A rule from a group with ``interval: 60s`` is evaluated every 60 s, not every cycle."""
    engine, store, _, clock = make_engine(make_rule(interval=60))
    fired_at = []
    for i in range(6):
        clock.t = 1_000.0 + i * 15
        store.append("mem", HOST_A, 50 if i < 1 else 95, clock.t)
        if engine.evaluate_once():
            fired_at.append(clock.t)
    assert fired_at == [1_060.0]


# ---------------------------------------------------------------------------- storage faults


def _busy_engine(path: Path, clock: Clock) -> tuple[RuleEngine, SeriesStore, Outbox]:
    """An engine and outbox sharing one state file, with a short busy budget."""
    db = open_database(path, busy_timeout=0.5, retry_for=0.5)
    outbox = Outbox(database=db, clock=clock)
    store = SeriesStore()
    engine = RuleEngine(store, outbox=outbox, database=db, clock=clock)
    db.close()  # the outbox and the engine hold their own references
    return engine, store, outbox


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """A second, real connection holding the state file's write lock.

    It waits for the engine's queued writes (a rule added just before) to finish first.
    """
    holder = sqlite3.connect(path, isolation_level=None, timeout=10)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_busy_state_file_blocks_no_reader_and_loses_no_notification(tmp_path: Path) -> None:
    """File busy: reads answer during the cycle, the cycle survives, the alert is sent once."""
    path = tmp_path / "state.sqlite3"
    clock = Clock()
    engine, store, outbox = _busy_engine(path, clock)
    channel = FakeChannel("log")
    dispatcher = Dispatcher(outbox, {"log": channel}, clock=clock)
    engine.add_rule(make_rule())
    store.append("mem", HOST_A, 95, clock.t)
    holder = _hold_write_lock(path)
    raised: list[BaseException] = []

    def cycle() -> None:
        try:
            engine.evaluate_once(clock.t)
        except BaseException as exc:  # the assertion below reports it
            raised.append(exc)

    thread = threading.Thread(target=cycle)
    thread.start()
    wait_until(engine.active_alerts, "the cycle to decide", timeout=30)
    # The decision is made and the cycle now waits on the busy file: reads must not wait.
    assert [a.state for a in engine.active_alerts()] == [AlertState.FIRING]
    assert [e.state for e in engine.history()] == [AlertState.FIRING]
    assert thread.is_alive(), "the reads waited for the cycle's storage writes"
    thread.join(30)
    assert raised == []
    assert engine.storage_errors >= 1
    assert outbox.pending_count() == 0  # nothing got in, nothing was marked as sent
    holder.execute("ROLLBACK")
    holder.close()

    deadline = time.monotonic() + 30
    while not channel.sent and time.monotonic() < deadline:
        clock.t += 15
        store.append("mem", HOST_A, 95, clock.t)
        engine.evaluate_once(clock.t)
        dispatcher.deliver_due(clock.t)
    for _ in range(3):  # later cycles send nothing more (cooldown 3600 s)
        clock.t += 15
        store.append("mem", HOST_A, 95, clock.t)
        engine.evaluate_once(clock.t)
        dispatcher.deliver_due(clock.t)
    assert [n.status for n in channel.sent] == [AlertState.FIRING]
    engine.close()
    outbox.close()


class DownSink(Sink):
    """An outbox whose storage fails while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def enqueue(self, notification: Notification) -> bool:
        if self.down:
            msg = "alert state database at state_path='x' is locked by another connection"
            raise StorageError(msg)
        return super().enqueue(notification)


def test_alert_is_stored_as_notified_only_after_its_enqueue(tmp_path: Path) -> None:
    """A refused enqueue leaves the stored alert un-notified and is retried next cycle."""
    path = tmp_path / "state.sqlite3"
    sink = DownSink()
    engine, store, _, clock = make_engine(make_rule(), sink=sink, state_path=path)
    store.append("mem", HOST_A, 95, clock.t)
    assert [e.state for e in engine.evaluate_once(clock.t)] == [AlertState.FIRING]
    assert sink.notifications == []
    assert engine.storage_errors == 1
    engine.close()  # flushes state while the outbox is still down
    (record,) = StateStore(path).load_alerts()
    assert record.state is AlertState.FIRING
    assert record.last_notified is None

    sink = DownSink()
    engine, store, _, clock = make_engine(make_rule(), sink=sink, state_path=path)
    clock.t += 15
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once(clock.t)  # still down: kept for a retry
    sink.down = False
    clock.t += 15
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once(clock.t)
    clock.t += 15
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once(clock.t)
    assert sink.states() == [("firing",)]
    engine.close()
    (record,) = StateStore(path).load_alerts()
    assert record.last_notified is not None


def test_storage_errors_are_counted_in_a_self_metric() -> None:
    """A failed enqueue is counted in ``paca_otel.storage.errors{operation}``."""
    with testing.capture() as captured:
        sink = DownSink()
        engine, store, _, clock = make_engine(make_rule(), sink=sink)
        store.append("mem", HOST_A, 95, clock.t)
        engine.evaluate_once(clock.t)
        data = captured.metrics.get_metrics_data()
        assert data is not None
        points = {
            (m.name, str(dict(p.attributes or {}))): p.value  # type: ignore[union-attr]  # sums have .value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
        }
        assert points[("paca_otel.storage.errors", "{'operation': 'outbox_enqueue'}")] == 1


def test_silence_does_no_sqlite_work_on_the_calling_thread(tmp_path: Path) -> None:
    """``silence()`` returns while the file is locked; the write lands once it frees."""
    path = tmp_path / "state.sqlite3"
    clock = Clock()
    engine, _, outbox = _busy_engine(path, clock)
    holder = _hold_write_lock(path)
    silence_id = engine.silence({"host": "a"}, duration=600)  # would wait on the lock, then raise
    assert [s.id for s in engine.silences.all()] == [silence_id]
    holder.execute("ROLLBACK")
    holder.close()
    engine.close()
    outbox.close()
    assert [s.id for s in StateStore(path).load_silences()] == [silence_id]


def test_remove_rule_does_no_io_and_the_next_cycle_writes_it(tmp_path: Path) -> None:
    """Removing a rule is in-memory; its alerts leave the file with the next write."""
    path = tmp_path / "state.sqlite3"
    engine, store, _, clock = make_engine(make_rule(), state_path=path)
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once(clock.t)
    assert len(StateStore(path).load_alerts()) == 1
    holder = _hold_write_lock(path)
    engine.remove_rule("HighMem")  # returns although the file is locked
    holder.execute("ROLLBACK")
    holder.close()
    engine.evaluate_once(clock.t + 15)
    assert StateStore(path).load_alerts() == []
    engine.close()


def test_cooldown_zero_does_not_repeat_in_the_cycle_that_notified() -> None:
    """With ``cooldown: 0`` the first cycle sends one notification, not a notify and a repeat."""
    engine, store, sink, clock = make_engine(make_rule(cooldown=0))
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once(clock.t)
    assert len(sink.notifications) == 1
    clock.t += 15
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once(clock.t)
    assert [n.extra.get("kind", "notify") for n in sink.notifications] == ["notify", "repeat"]


def test_adopted_silence_keeps_its_id_and_is_stored(tmp_path: Path) -> None:
    """A silence taken over from another engine keeps its id, mutes, and reaches the file."""
    first, _, _, _ = make_engine()
    silence_id = first.silence({"host": "a"}, duration=600)
    path = tmp_path / "state.sqlite3"
    second, _, _, _ = make_engine(state_path=path)
    for record in first.silences.all():
        second.silences.adopt(record)
    assert [s.id for s in second.silences.all()] == [silence_id]
    assert second.silences.matching({"host": "a"}, 1_100.0) is not None
    second.close()
    assert [s.id for s in StateStore(path).load_silences()] == [silence_id]
