"""Regression tests from the rule-engine audit: each names the behaviour a user relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from paca_otel.alerting.engine import RuleEngine
from paca_otel.alerting.expr import MAX_DEPTH, MAX_NESTING, evaluate, parse, unparse
from paca_otel.alerting.models import AlertState
from paca_otel.alerting.rules import Rule
from paca_otel.errors import ParseError, RuleError
from paca_otel.pipeline.store import SeriesStore
from tests.alerting.test_engine import HOST_A, HOST_B, Clock, Sink, make_engine, make_rule


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("(" * 400 + "x" + ")" * 400, id="parentheses"),
        pytest.param("-" * 2000 + "x", id="unary-minus"),
        pytest.param("+" * 2000 + "x", id="unary-plus"),
        pytest.param("avg(x[5m])" + " + x" * 3000 + " > 1", id="long-chain"),
        pytest.param("x" + " or x" * 3000, id="long-or-chain"),
    ],
)
def test_deep_expressions_fail_with_parse_error(text: str) -> None:
    """A condition nested or chained too deeply is a ParseError, never a RecursionError."""
    with pytest.raises(ParseError, match="too deeply"):
        parse(text)
    with pytest.raises(RuleError, match="too deeply"):
        Rule(name="deep", condition=text)


def test_deepest_allowed_expressions_parse_print_and_evaluate() -> None:
    """Right at the limits a condition still parses, prints back and evaluates."""
    nested = "(" * MAX_NESTING + "x" + ")" * MAX_NESTING
    chain = "x" + " + x" * (MAX_DEPTH - 1)
    for text in (nested, chain, "-" * MAX_NESTING + "x"):
        expr = parse(text)
        assert parse(unparse(expr)) == expr
        evaluate(expr, SeriesStore(), 0.0)


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


def test_no_lone_resolved_when_a_silence_ends_as_the_alert_resolves() -> None:
    """An alert muted while firing sends no "resolved" for a firing nobody was told about."""
    engine, store, sink, clock = make_engine(make_rule())
    engine.silence({"host": "a"}, duration=30)
    for value in (95, 95, 50):  # t = 0, 15 muted; at 30 the silence is over and it resolves
        store.append("mem", HOST_A, value, clock.t)
        engine.evaluate_once()
        clock.t += 15
    assert sink.notifications == []


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


def test_fired_at_is_when_the_alert_started_firing() -> None:
    """``fired_at`` is the evaluation at which the alert fired, not ``active_since + for``."""
    engine, store, _, clock = make_engine(make_rule(**{"for": 20}))
    for _ in range(3):  # t = 1000 (pending), 1015 (pending), 1030 (fires)
        store.append("mem", HOST_A, 95, clock.t)
        engine.evaluate_once()
        clock.t += 15
    (alert,) = engine.active_alerts()
    assert alert.fired_at == 1_030.0
