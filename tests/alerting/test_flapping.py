"""Anti-flap: hysteresis (``clear``) and the flap detector keep a noisy value from paging."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paca_otel.alerting.engine import RuleEngine
from paca_otel.alerting.rules import Rule
from paca_otel.pipeline.store import SeriesStore
from tests.alerting.test_engine import HOST_A, Clock, Sink

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
