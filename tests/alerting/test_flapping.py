"""Anti-flap: hysteresis (``clear``) and the flap detector keep a noisy value from paging."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paca_otel.alerting._engine import RuleEngine
from paca_otel.alerting._state import StateStore
from paca_otel.pipeline._store import SeriesStore
from paca_otel.rules._models import AlertState
from paca_otel.rules._rule import Rule
from tests.alerting.test_engine import HOST_A, HOST_B, Clock, Sink, make_engine, make_rule

WINDOW = 300.0

STEP = 15.0
HOUR_STEPS = 240  # one simulated hour at 15 s


def oscillate(i: int, around: float = 90.0) -> float:
    """+1 % / -1 % around the threshold, alternating every step."""
    return around * (1.01 if i % 2 == 0 else 0.99)


def run(rule: Rule, values: list[float], **engine_kw: Any) -> Sink:
    store, sink, clock = SeriesStore(), Sink(), Clock(0.0)
    engine = RuleEngine(store, outbox=sink, clock=clock, **engine_kw)
    engine.add_rule(rule)
    for i, value in enumerate(values):
        clock.t = i * STEP
        store.append("mem", HOST_A, value, clock.t)
        engine.evaluate_once()
    return sink


def test_hysteresis_gives_one_firing_and_one_resolved() -> None:
    """An hour of +-1 % around the threshold, then a drop below ``clear``: exactly two messages."""
    rule = Rule(name="HighMem", condition="mem > 90", clear="mem < 80", cooldown="2h")
    values = [oscillate(i) for i in range(HOUR_STEPS)] + [50.0, 50.0]
    sink = run(rule, values)
    assert sink.states() == [("firing",), ("resolved",)]
    assert sink.notifications[1].created_at == HOUR_STEPS * STEP


def test_hysteresis_with_default_cooldown_only_repeats() -> None:
    """With the default 5 min cooldown the hour adds repeats, never a second firing episode."""
    rule = Rule(name="HighMem", condition="mem > 90", clear="mem < 80")
    sink = run(rule, [oscillate(i) for i in range(HOUR_STEPS)] + [50.0])
    kinds = [n.extra.get("kind", "notify") for n in sink.notifications]
    assert kinds[0] == "notify"
    assert set(kinds[1:-1]) == {"repeat"}
    assert len({n.events[0].starts_at for n in sink.notifications}) == 1
    assert sink.states()[-1] == ("resolved",)


def test_without_hysteresis_flap_detector_caps_the_storm() -> None:
    """No ``clear``: after ``flap_threshold`` changes one summary replaces 200+ messages."""
    rule = Rule(name="HighMem", condition="mem > 90", cooldown="2h")
    quiet = [50.0] * int(700 / STEP)  # longer than the flap window: it settles
    sink = run(rule, [oscillate(i) for i in range(HOUR_STEPS)] + quiet, flap_threshold=6)
    kinds = [n.extra.get("kind", "notify") for n in sink.notifications]
    assert kinds == ["notify"] * 6 + ["flapping", "settled"]
    assert "is flapping" in sink.notifications[6].summary
    assert sink.notifications[-1].status.value == "resolved"


def test_flapping_alert_that_settles_firing_is_announced() -> None:
    """An alert that stops flapping while firing gets one firing notification."""
    rule = Rule(name="HighMem", condition="mem > 90", cooldown="2h")
    steady = [95.0] * int(700 / STEP)
    sink = run(rule, [oscillate(i) for i in range(40)] + steady, flap_threshold=4)
    kinds = [n.extra.get("kind", "notify") for n in sink.notifications]
    assert kinds == ["notify"] * 4 + ["flapping", "settled"]
    assert sink.notifications[-1].status.value == "firing"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=200), min_size=1, max_size=60))
def test_notifications_alternate_per_alert(values: list[float]) -> None:
    """For any series, announced states alternate firing/resolved and start with firing."""
    rule = Rule(name="HighMem", condition="mem > 90", cooldown="2h")
    sink = run(rule, values, flap_threshold=1_000)
    states = [n.events[0].state.value for n in sink.notifications]
    assert states == ["firing", "resolved"] * (len(states) // 2) + ["firing"] * (len(states) % 2)


def test_hysteresis_does_not_hold_a_label_set_that_disappeared() -> None:
    """With ``clear``, an alert whose series stopped reporting resolves like one without it."""
    engine, store, sink, clock = make_engine(make_rule(clear="mem < 80"))
    for i in range(40):  # host b fires, then stops reporting; host a keeps reporting
        clock.t = 1_000.0 + i * 15
        store.append("mem", HOST_A, 50, clock.t)
        if i < 2:
            store.append("mem", HOST_B, 95, clock.t)
        engine.evaluate_once()
    assert engine.active_alerts() == []
    assert sink.states() == [("firing",), ("resolved",)]


def test_hysteresis_still_holds_a_reporting_label_set() -> None:
    """While the series still reports a value between the thresholds, the alert keeps firing."""
    engine, store, sink, clock = make_engine(make_rule(clear="mem < 80"))
    for i, value in enumerate([95, 85, 85, 85]):
        clock.t = 1_000.0 + i * 15
        store.append("mem", HOST_A, 50, clock.t)
        store.append("mem", HOST_B, value, clock.t)
        engine.evaluate_once()
    assert [a.state for a in engine.active_alerts()] == [AlertState.FIRING]
    assert sink.states() == [("firing",)]


def test_alert_settling_while_silenced_is_notified_when_the_silence_ends() -> None:
    """A flapping alert that settles during a silence still gets its owed firing notice."""
    engine, store, sink, clock = make_engine(
        make_rule(cooldown=3600), flap_threshold=2, flap_window=100
    )
    for value in (95, 50, 95):  # fire, resolve, fire: the third change starts flapping
        store.append("mem", HOST_A, value, clock.t)
        engine.evaluate_once()
        clock.t += 15
    assert sink.notifications[-1].extra["kind"] == "flapping"
    sid = engine.silence({"host": "a"}, duration=3600)
    for _ in range(10):  # stays firing; settles (quiet for a window) while silenced
        store.append("mem", HOST_A, 95, clock.t)
        engine.evaluate_once()
        clock.t += 15
    assert not engine.active_alerts()[0].flapping
    sent = len(sink.notifications)
    engine.expire_silence(sid)
    store.append("mem", HOST_A, 95, clock.t)
    engine.evaluate_once()
    assert len(sink.notifications) == sent + 1
    assert sink.notifications[-1].status is AlertState.FIRING


def test_flapping_summary_respects_silences() -> None:
    """A silenced alert that starts flapping sends no "flapping" summary."""
    engine, store, sink, clock = make_engine(make_rule(), flap_threshold=2, flap_window=600)
    engine.silence({"host": "a"}, duration=3600)
    for value in (95, 50, 95, 50, 95):
        store.append("mem", HOST_A, value, clock.t)
        engine.evaluate_once()
        clock.t += 15
    assert sink.notifications == []


def kinds_of(sink: Sink) -> list[str]:
    return [str(n.extra.get("kind", "notify")) for n in sink.notifications]


def feed(engine: RuleEngine, store: SeriesStore, clock: Clock, values: list[float]) -> None:
    """One evaluation per value, ``STEP`` seconds apart."""
    for value in values:
        store.append("mem", HOST_A, value, clock.t)
        engine.evaluate_once()
        clock.t += STEP


def test_a_flapping_alert_stays_muted_under_a_new_engine_on_the_same_file(tmp_path: Path) -> None:
    """Flap state is in the state file: a restart sends no new storm, and "settled" comes once."""
    path = tmp_path / "state.sqlite3"
    store, sink, clock = SeriesStore(), Sink(), Clock()
    kw: dict[str, Any] = {"state_path": path, "flap_threshold": 2, "flap_window": WINDOW}
    first = RuleEngine(store, outbox=sink, clock=clock, **kw)
    first.add_rule(make_rule())
    feed(first, store, clock, [95, 50, 95])  # fire, resolve, fire: the third change flaps
    assert kinds_of(sink) == ["notify", "notify", "flapping"]
    first.close()

    second = RuleEngine(store, outbox=sink, clock=clock, **kw)
    second.add_rule(make_rule())
    assert [a.flapping for a in second.active_alerts()] == [True]
    feed(second, store, clock, [50, 95, 50, 95])  # still flapping: nothing is sent
    assert kinds_of(sink) == ["notify", "notify", "flapping"]
    feed(second, store, clock, [95] * int(WINDOW / STEP + 2))  # quiet for a window
    assert kinds_of(sink) == ["notify", "notify", "flapping", "settled"]
    assert sink.notifications[-1].status is AlertState.FIRING
    second.close()
    state = StateStore(path)
    assert state.load_flaps() == {}  # settled: deleted from the file
    state.close()


def test_a_flap_entry_the_file_refuses_is_kept_and_written_by_a_later_cycle(
    tmp_path: Path,
) -> None:
    """A failed flap write raises nothing into the evaluation, is counted, and is retried."""
    path = tmp_path / "state.sqlite3"
    engine, store, sink, clock = make_engine(
        make_rule(), state_path=path, flap_threshold=2, flap_window=WINDOW
    )
    with sqlite3.connect(path) as conn:  # the file refuses flap entries, and only them
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON flaps BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    feed(engine, store, clock, [95, 50, 95])
    assert engine.storage_errors >= 3  # one per cycle, none raised
    assert sink.notifications == []  # a cycle that met an error enqueues next time
    state = StateStore(path)
    try:
        assert [r.state for r in state.load_alerts()] == [AlertState.FIRING]  # rows went in
        assert state.load_flaps() == {}
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TRIGGER refuse")
        errors = engine.storage_errors
        feed(engine, store, clock, [95])
        assert engine.storage_errors == errors
        ((fp, entry),) = state.load_flaps().items()
        assert (entry["flapping"], len(entry["times"])) == (True, 3)
        assert [a.fingerprint for a in engine.active_alerts() if a.flapping] == [fp]
        assert "flapping" in kinds_of(sink)
    finally:
        state.close()
        engine.close()
