"""Engines sharing one state file: one leader evaluates, rules/silences/alerts reach the others.

Two engines in one process stand for two workers here (each has its own lease holder id);
the real multi-process case is in ``test_leader.py``. Time is a fake wall clock, so lease
expiry and ``for`` timers are moved by hand.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paca_otel.alerting._engine import RuleEngine
from paca_otel.delivery._outbox import Outbox
from paca_otel.pipeline._store import SeriesStore
from paca_otel.rules._models import AlertState, Notification
from paca_otel.storage import open_database
from tests._wait import wait_until
from tests.alerting.test_engine import HOST_A, Clock, FakeChannel, Sink, make_rule

INTERVAL = 15.0
TTL = 1.5 * INTERVAL


class Worker:
    """One engine over the shared file, with its own store and sink, on the shared clock."""

    def __init__(self, path: Path, clock: Clock, **kw: Any) -> None:
        self.store = SeriesStore()
        self.sink: Any = kw.pop("sink", None) or Sink()
        self.engine = RuleEngine(
            self.store,
            outbox=self.sink,
            clock=clock,
            state_path=path,
            evaluation_interval=INTERVAL,
            **kw,
        )
        self.clock = clock
        self.path = path

    def tick(self, value: float | None = 95.0) -> list[Any]:
        """Feed ``mem`` and run one scheduler tick (lease, refresh, evaluate if leading)."""
        if value is not None:
            self.store.append("mem", HOST_A, value, self.clock.t)
        return self.engine.scheduler.tick()

    def settle(self) -> None:
        """Wait until this worker's queued writes (rules, silences) are in the file."""
        db = open_database(self.path)  # the process's one connection, the engine's too
        try:
            assert db.flush(10)
        finally:
            db.close()


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[tuple[Path, Clock, list[Worker]]]:
    """A state file, a clock, and a list the test fills with workers (closed afterwards)."""
    workers: list[Worker] = []
    yield tmp_path / "state.sqlite3", Clock(), workers
    for worker in workers:
        worker.engine.close()


def spawn(shared: tuple[Path, Clock, list[Worker]], **kw: Any) -> Worker:
    path, clock, workers = shared
    worker = Worker(path, clock, **kw)
    workers.append(worker)
    return worker


def rules_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT version FROM changes WHERE topic = 'rules'").fetchone()
    return int(row[0]) if row else 0


def test_in_memory_engine_always_leads_without_a_lease() -> None:
    """No state file: nobody to share with, so no lease and every tick evaluates."""
    engine = RuleEngine(SeriesStore(), outbox=Sink(), clock=Clock())
    assert engine.scheduler.lease is None
    assert engine.leading
    engine.close()


def test_one_leader_evaluates_and_the_follower_shows_its_alerts(shared: Any) -> None:
    """Only the first worker evaluates; the other lists its firing alert and history."""
    leader, follower = spawn(shared), spawn(shared)
    leader.engine.add_rule(make_rule())
    leader.settle()
    leader.tick()
    follower.tick()
    assert (leader.engine.leading, follower.engine.leading) == (True, False)
    assert leader.sink.states() == [("firing",)]
    assert follower.sink.notifications == []
    assert [a.state for a in follower.engine.active_alerts()] == [AlertState.FIRING]
    assert [e.rule for e in follower.engine.history()] == ["HighMem"]


def test_rule_added_through_a_follower_is_evaluated_by_the_leader(shared: Any) -> None:
    """A rule added through any worker is listed and evaluated everywhere at the next tick."""
    leader, follower = spawn(shared), spawn(shared)
    leader.tick()
    follower.engine.add_rule(make_rule())
    follower.settle()
    leader.tick()
    assert list(leader.engine.rules) == ["HighMem"]
    assert leader.sink.states() == [("firing",)]
    follower.engine.remove_rule("HighMem")
    follower.settle()
    leader.tick()
    assert leader.engine.rules == {}
    assert leader.engine.active_alerts() == []


def test_the_same_rule_added_by_every_worker_converges_on_one_write(shared: Any) -> None:
    """Workers adding one rule from code at start store it once and make nobody reload."""
    path = shared[0]
    workers = [spawn(shared) for _ in range(3)]
    for worker in workers:
        worker.engine.add_rule(make_rule())
        worker.settle()
    assert rules_version(path) == 1
    workers[1].engine.add_rule(make_rule(cooldown=60))  # a real change is one more write
    workers[1].settle()
    assert rules_version(path) == 2
    workers[0].tick()
    assert workers[0].engine.rules["HighMem"].cooldown == 60


def test_a_restarted_worker_starts_with_the_stored_rules(shared: Any) -> None:
    """Rules live in the file: a new engine on it has them before any code adds them."""
    first = spawn(shared)
    first.engine.add_rule(make_rule())
    first.settle()
    assert list(spawn(shared).engine.rules) == ["HighMem"]


def test_a_stored_rule_naming_a_channel_this_worker_lacks_does_not_crash_it(
    shared: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A rule routed to a channel only another worker has is kept, with one warning."""
    other = spawn(shared, channels={"log": FakeChannel("log"), "pager": FakeChannel("pager")})
    plain = spawn(shared, channels={"log": FakeChannel("log")})
    other.engine.add_rule(make_rule(channels=["pager"]))
    other.settle()
    with caplog.at_level(logging.WARNING, logger="paca_otel.alerting"):
        plain.tick()
    assert plain.engine.rules["HighMem"].channels == ["pager"]
    assert "pager" in caplog.text


def test_a_silence_made_through_a_follower_applies_at_the_leaders_next_evaluation(
    shared: Any,
) -> None:
    """The leader's next evaluation mutes an alert silenced through another worker."""
    leader, follower = spawn(shared), spawn(shared)
    leader.engine.add_rule(make_rule())
    leader.settle()
    leader.tick(value=None)  # leads; nothing fires yet
    silence_id = follower.engine.silence({"host": "a"}, duration=600)
    follower.settle()
    leader.tick()
    assert [a.silenced_by for a in leader.engine.active_alerts()] == [silence_id]
    assert leader.sink.notifications == []
    follower.engine.expire_silence(silence_id)
    follower.settle()
    leader.clock.t += INTERVAL
    leader.tick()
    assert leader.sink.states() == [("firing",)]


def test_a_new_leader_keeps_the_for_timers_of_its_predecessor(shared: Any) -> None:
    """After the leader stops renewing, the next one fires a pending alert on the old timer."""
    _, clock, _ = shared
    first, second = spawn(shared), spawn(shared)
    first.engine.add_rule(make_rule(**{"for": 60}))
    first.settle()
    started = clock.t
    first.tick()
    second.tick()
    assert [a.state for a in second.engine.active_alerts()] == [AlertState.PENDING]
    clock.t += TTL  # the first worker is dead: it renews no more
    second.tick()
    assert second.engine.leading
    assert [a.active_since for a in second.engine.active_alerts()] == [started]
    clock.t = started + 60
    (event,) = second.tick()
    assert (event.state, event.starts_at) == (AlertState.FIRING, started)
    assert second.sink.states() == [("firing",)]


def test_a_new_leader_keeps_a_flapping_alert_muted_and_announces_when_it_settles(
    shared: Any,
) -> None:
    """Flap state passes with the lease: no new storm from the successor, one "settled"."""
    _, clock, _ = shared
    kw = {"flap_threshold": 2, "flap_window": 300.0}
    first, second = spawn(shared, **kw), spawn(shared, **kw)
    first.engine.add_rule(make_rule())
    first.settle()
    for value in (95, 50, 95):  # fire, resolve, fire: the third change flaps
        first.tick(value)
        second.tick(None)  # a follower: reads back what the leader wrote
        clock.t += INTERVAL
    assert [n.extra.get("kind", "notify") for n in first.sink.notifications] == [
        "notify",
        "notify",
        "flapping",
    ]
    assert [a.flapping for a in second.engine.active_alerts()] == [True]
    clock.t += TTL  # the first worker is dead: it renews no more
    for value in (50, 95, 50, 95):
        second.tick(value)
        clock.t += INTERVAL
    assert second.engine.leading
    assert second.sink.notifications == []  # still flapping under the new leader
    for _ in range(22):  # quiet for the 300 s window
        second.tick(95)
        clock.t += INTERVAL
    assert [n.extra.get("kind") for n in second.sink.notifications] == ["settled"]
    assert second.sink.notifications[0].status is AlertState.FIRING


class _Crash(BaseException):
    """Stands for SIGKILL: raised past every handler, it ends the cycle where it stands."""


class CrashAfterEnqueue:
    """The real outbox, but the process 'dies' right after the first notification commits."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def enqueue(self, notification: Notification) -> bool:
        self.outbox.enqueue(notification)
        raise _Crash


@pytest.mark.parametrize("crash", ["before_enqueue", "after_enqueue"])
def test_a_takeover_after_a_crash_mid_cycle_notifies_exactly_once(shared: Any, crash: str) -> None:
    """Killed around its enqueue, a leader's notification is sent once: the successor reuses
    the stored start time, so its idempotency key matches (or it was never enqueued)."""
    path, clock, _ = shared
    db = open_database(path)
    outbox = Outbox(database=db, clock=clock)
    db.close()
    try:
        crashing = CrashAfterEnqueue(outbox) if crash == "after_enqueue" else _CrashSink()
        first = spawn(shared, sink=crashing)
        second = spawn(shared, sink=outbox)
        first.engine.add_rule(make_rule())  # for 0: created and fired in one cycle
        first.settle()
        with pytest.raises(_Crash):
            first.tick()
        clock.t += TTL
        second.tick()
        second.tick()
        entries = outbox.entries()
        assert [e.notification.events[0].state for e in entries] == [AlertState.FIRING]
        assert entries[0].notification.events[0].starts_at == 1_000.0
        assert second.engine.duplicates == (1 if crash == "after_enqueue" else 0)
        assert [a.last_notified for a in second.engine.active_alerts()] == [clock.t]
    finally:
        outbox.close()


class _CrashSink:
    """A process that dies just before its first enqueue."""

    def enqueue(self, notification: Notification) -> bool:
        raise _Crash


def test_a_leader_that_lost_its_lease_mid_cycle_writes_nothing(shared: Any) -> None:
    """A cycle whose fence fails (paused past the lease) enqueues and stores nothing."""
    leader = spawn(shared)
    leader.engine.add_rule(make_rule())
    leader.settle()
    leader.store.append("mem", HOST_A, 95, leader.clock.t)
    assert leader.engine.evaluate_once(fence=lambda: False) == []
    assert leader.sink.notifications == []
    assert leader.engine.active_alerts() == []  # reloaded from the file: nothing was written


def test_a_paused_leader_stops_evaluating_once_another_took_over(shared: Any) -> None:
    """The old leader's renewal fails after a takeover: it follows and sends nothing."""
    _, clock, _ = shared
    first, second = spawn(shared), spawn(shared)
    first.engine.add_rule(make_rule(cooldown=0))
    first.settle()
    first.tick()
    clock.t += TTL  # the first worker was paused
    second.tick()
    assert second.engine.leading
    sent = len(first.sink.notifications)
    clock.t += INTERVAL
    assert first.tick() == []
    assert not first.engine.leading
    assert len(first.sink.notifications) == sent


def test_stopping_the_leader_hands_the_lease_over_at_once(shared: Any) -> None:
    """A clean stop releases the lease: the next worker leads without waiting for the TTL."""
    first, second = spawn(shared), spawn(shared)
    first.tick()
    first.engine.stop()
    assert not first.engine.leading
    second.tick()
    assert second.engine.leading


def test_a_rule_write_that_meets_a_busy_file_is_kept_and_retried(shared: Any) -> None:
    """A rule whose write fails on a locked file stays visible and is stored once it frees."""
    path, _, _ = shared
    db = open_database(path, busy_timeout=0.2, retry_for=0.2)  # the workers share this one
    try:
        worker = spawn(shared)
        worker.tick()
        holder = sqlite3.connect(path, isolation_level=None, timeout=10)
        holder.execute("BEGIN IMMEDIATE")
        try:
            worker.engine.add_rule(make_rule())
            assert db.flush(10)  # the write gave up on the locked file
            worker.tick()  # a refresh meanwhile: the rule stays
            assert list(worker.engine.rules) == ["HighMem"]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert rules_version(path) == 0
        wait_until(
            lambda: worker.tick() is not None and db.flush(10) and rules_version(path) == 1,
            "the rule write to be retried",
        )
        assert list(worker.engine.rules) == ["HighMem"]
    finally:
        db.close()
