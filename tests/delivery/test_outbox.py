"""The outbox stores notifications durably; the dispatcher retries, dead-letters and re-sends."""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from paca_otel.delivery._dispatcher import Dispatcher
from paca_otel.delivery._outbox import DEAD, DELIVERED, Outbox
from paca_otel.delivery.channels import DeliveryError, WebhookChannel
from paca_otel.errors import ChannelError, ConfigError
from paca_otel.rules._models import AlertState, Notification
from paca_otel.storage import open_database
from tests._wait import wait_for, wait_until
from tests.delivery.test_channels import T0, Receiver, event, notification
from tests.peers import ROOT, free_port


class Clock:
    """A fake clock tests move by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class MaxJitter(random.Random):
    """Jitter that always picks the top of the window, so the schedule is predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Scripted:
    """A channel failing with scripted errors, then accepting; records what it sent."""

    resend_interval: float | None = None

    def __init__(self, name: str = "webhook", errors: list[Exception] | None = None) -> None:
        self.name = name
        self.errors = list(errors or [])
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(notification)


def down(n: int) -> list[Exception]:
    return [DeliveryError("receiver down") for _ in range(n)]


@pytest.fixture
def clock() -> Clock:
    """A fake clock at T0."""
    return Clock()


@pytest.fixture
def outbox(clock: Clock) -> Iterator[Outbox]:
    """An in-memory outbox on the fake clock."""
    box = Outbox(clock=clock)
    yield box
    box.close()


def metric_points(reader: InMemoryMetricReader) -> dict[str, dict[str, float]]:
    """{metric name: {channel: value}} from an in-memory reader."""
    out: dict[str, dict[str, float]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    channel = str(point.attributes.get("channel")) if point.attributes else ""
                    out.setdefault(metric.name, {})[channel] = point.value  # type: ignore[union-attr]  # every point type here has .value
    return out


def test_enqueue_dedupes_by_channel_and_key(outbox: Outbox) -> None:
    """Enqueueing the same notification twice stores it once; another channel is separate."""
    note = notification()
    assert outbox.enqueue(note) is True
    assert outbox.enqueue(note) is False
    assert outbox.enqueue(notification(channel="slack")) is True
    assert outbox.pending_count() == 2
    assert outbox.pending_count("webhook") == 1
    assert outbox.entries()[0].notification == note


def test_backoff_schedule_is_exponential_and_capped(outbox: Outbox, clock: Clock) -> None:
    """Retries wait base*2^(n-1) at most (full jitter), capped at max_delay."""
    channel = Scripted(errors=down(7))
    dispatcher = Dispatcher(
        outbox,
        {"webhook": channel},
        base_delay=1.0,
        max_delay=10.0,
        clock=clock,
        rng=MaxJitter(),
    )
    outbox.enqueue(notification())
    waits = []
    for _ in range(7):
        assert dispatcher.deliver_due() == 0
        (entry,) = outbox.entries()
        waits.append(entry.next_attempt_at - clock.now)
        clock.now = entry.next_attempt_at
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert outbox.entries()[0].attempts == 7
    assert dispatcher.deliver_due() == 1
    assert channel.sent == [notification()]
    assert outbox.pending_count() == 0


def test_jitter_stays_in_window() -> None:
    """Full jitter draws each wait from [0, min(max_delay, base*2^(n-1))]."""
    dispatcher = Dispatcher(Outbox(), {}, base_delay=0.5, max_delay=4.0, rng=random.Random(7))
    for attempts in range(1, 10):
        cap = min(4.0, 0.5 * 2 ** (attempts - 1))
        waits = [dispatcher.backoff(attempts) for _ in range(200)]
        assert all(0 <= w <= cap for w in waits)
        assert max(waits) > cap * 0.8


def test_deadline_turns_failures_into_dead_letters(outbox: Outbox, clock: Clock) -> None:
    """After the deadline the notification is a dead letter with its last error, not retried."""
    channel = Scripted(errors=down(100))
    dispatcher = Dispatcher(
        outbox,
        {"webhook": channel},
        base_delay=10,
        max_delay=100,
        deadline=60,
        clock=clock,
        rng=MaxJitter(),
    )
    outbox.enqueue(notification())
    times = []
    while outbox.pending_count():
        times.append(clock.now - T0)
        dispatcher.deliver_due()
        (entry,) = outbox.entries()
        clock.now = max(clock.now, entry.next_attempt_at)
    assert times == [0, 10, 30, 60]  # the last try lands on the deadline, then gives up
    (dead,) = outbox.dead_letters()
    assert dead.status == DEAD
    assert dead.attempts == 4
    assert "deadline passed after 4 attempts" in (dead.last_error or "")
    assert "receiver down" in (dead.last_error or "")


def test_non_retryable_failure_dead_letters_at_once(outbox: Outbox, clock: Clock) -> None:
    """A DeliveryError with retryable=False skips the retries; the next row is still sent."""
    channel = Scripted(errors=[DeliveryError("HTTP 400", retryable=False)])
    dispatcher = Dispatcher(outbox, {"webhook": channel}, clock=clock)
    outbox.enqueue(notification(event(rule="A")))
    outbox.enqueue(notification(event(rule="B")))
    assert dispatcher.deliver_due() == 1
    (dead,) = outbox.dead_letters()
    assert dead.notification.events[0].rule == "A"
    assert dead.attempts == 1
    assert "not retryable" in (dead.last_error or "")
    assert [n.events[0].rule for n in channel.sent] == ["B"]
    assert outbox.requeue(dead.id) is True
    assert dispatcher.deliver_due() == 1
    assert outbox.dead_letters() == []


def test_a_failure_stops_the_pass_for_that_channel_only(outbox: Outbox, clock: Clock) -> None:
    """A receiver that is down is tried once per pass; other channels still deliver."""
    hook = Scripted(errors=down(1))
    log = Scripted(name="log")
    dispatcher = Dispatcher(outbox, {"webhook": hook, "log": log}, clock=clock)
    for rule in "ABC":
        outbox.enqueue(notification(event(rule=rule)))
        outbox.enqueue(notification(event(rule=rule), channel="log"))
    assert dispatcher.deliver_due() == 3
    assert len(log.sent) == 3
    assert hook.sent == []
    assert [e.attempts for e in outbox.entries(channel="webhook")] == [1, 0, 0]
    assert dispatcher.deliver_due() == 2  # B and C are due, A waits for its backoff
    clock.now += 10
    assert dispatcher.deliver_due() == 1


def test_bounded_queue_drops_oldest(clock: Clock) -> None:
    """Beyond max_pending_per_channel the oldest pending row becomes a dead letter."""
    box = Outbox(clock=clock, max_pending_per_channel=3)
    for rule in "ABCDE":
        box.enqueue(notification(event(rule=rule)))
    assert box.pending_count() == 3
    dropped = box.dead_letters()
    assert [d.notification.events[0].rule for d in dropped] == ["A", "B"]
    assert all(d.last_error == "dropped: outbox full" for d in dropped)
    Dispatcher(box, {"webhook": Scripted()}, clock=clock).deliver_due()
    for rule in "FGH":
        box.enqueue(notification(event(rule=rule)))
    assert box.pending_count() == 3
    assert len(box.dead_letters()) == 2  # delivered rows freed room: nothing more dropped
    box.enqueue(notification(event(rule="I")))
    assert [d.notification.events[0].rule for d in box.dead_letters()] == ["A", "B", "F"]
    box.close()
    with pytest.raises(ChannelError, match="closed"):
        box.pending_count()


def test_resends_latest_firing_until_resolved(outbox: Outbox, clock: Clock) -> None:
    """A channel with resend_interval gets the firing group again until a newer state lands."""
    channel = Scripted(name="alertmanager")
    channel.resend_interval = 60
    dispatcher = Dispatcher(outbox, {"alertmanager": channel}, clock=clock)
    firing = notification(event(), channel="alertmanager")
    outbox.enqueue(firing)
    assert dispatcher.deliver_due() == 1
    clock.now += 59
    dispatcher.deliver_due()
    assert len(channel.sent) == 1
    clock.now += 1
    dispatcher.deliver_due()
    clock.now += 60
    dispatcher.deliver_due()
    assert channel.sent == [firing] * 3
    assert outbox.next_due("alertmanager") == clock.now + 60
    resolved = notification(
        event(state=AlertState.RESOLVED, ends_at=clock.now), channel="alertmanager"
    )
    outbox.enqueue(resolved)
    assert dispatcher.deliver_due() == 1
    clock.now += 600
    dispatcher.deliver_due()
    assert channel.sent == [firing] * 3 + [resolved]
    assert outbox.next_due("alertmanager") is None


def test_firing_alert_dead_lettered_at_deadline_is_resent_when_receiver_is_back() -> None:
    """Alertmanager down past the deadline: a dead letter, yet re-sent while the alert fires."""
    clock = Clock()
    box = Outbox(clock=clock)
    channel = Scripted(name="alertmanager", errors=down(1000))
    channel.resend_interval = 60
    dispatcher = Dispatcher(
        box, {"alertmanager": channel}, clock=clock, rng=MaxJitter(), deadline=600
    )
    firing = notification(event(), channel="alertmanager")
    box.enqueue(firing)
    for _ in range(50):
        dispatcher.deliver_due()
        if box.dead_letters():
            break
        clock.now += 30
    assert [e.status for e in box.entries()] == [DEAD]
    channel.errors = []  # Alertmanager is back
    clock.now += 60
    dispatcher.deliver_due()
    assert channel.sent == [firing]
    assert box.next_due("alertmanager") == clock.now + 60  # and it keeps being refreshed
    box.close()


def test_failing_resends_do_not_each_wait_for_the_receiver() -> None:
    """Once a re-send fails in a pass, the other due re-sends are postponed, not attempted."""
    clock = Clock()
    box = Outbox(clock=clock)
    channel = Scripted(name="alertmanager")
    channel.resend_interval = 60
    dispatcher = Dispatcher(box, {"alertmanager": channel}, clock=clock)
    for rule in ("A", "B", "C"):
        box.enqueue(
            Notification(
                channel="alertmanager",
                group_key=rule,
                events=(event(rule=rule),),
                created_at=clock.now,
            )
        )
    assert dispatcher.deliver_due() == 3
    attempts = 0

    def failing(_: Notification) -> None:
        nonlocal attempts
        attempts += 1
        msg = "alertmanager hangs"
        raise DeliveryError(msg)

    channel.send = failing  # type: ignore[method-assign]  # the receiver goes down
    clock.now += 60
    dispatcher.deliver_due()
    assert attempts == 1
    assert box.next_due("alertmanager") == clock.now + 60
    box.close()


def test_self_metrics(outbox: Outbox, clock: Clock) -> None:
    """Queue depth, retries, failures and deliveries are reported per channel."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    channel = Scripted(errors=[*down(1), DeliveryError("bad", retryable=False)])
    dispatcher = Dispatcher(
        outbox, {"webhook": channel}, clock=clock, meter=provider.get_meter("paca_otel")
    )
    for rule in "ABC":
        outbox.enqueue(notification(event(rule=rule)))
    assert metric_points(reader)["paca_otel.alerts.queue_depth"] == {"webhook": 3}
    dispatcher.deliver_due()  # A fails (retry), pass stops
    dispatcher.deliver_due()  # B: non-retryable -> dead; C delivered
    other = Outbox(clock=clock)
    other.enqueue(notification(channel="slack"))
    second = Dispatcher(other, {"slack": Scripted("slack")}, meter=provider.get_meter("paca_otel"))
    points = metric_points(reader)
    assert points["paca_otel.alerts.queue_depth"] == {"webhook": 1, "slack": 1}
    assert second.deliver_due() == 1
    other.close()
    points = metric_points(reader)
    assert points["paca_otel.alerts.delivery.retries"] == {"webhook": 1}
    assert points["paca_otel.alerts.delivery.failures"] == {"webhook": 1}
    assert points["paca_otel.alerts.delivery.delivered"] == {"webhook": 1, "slack": 1}
    provider.shutdown()


def test_dispatcher_rejects_bad_settings() -> None:
    """Bad backoff settings and non-channels fail at set-up with ConfigError."""
    with pytest.raises(ConfigError, match="base_delay=5"):
        Dispatcher(Outbox(), {}, base_delay=5, max_delay=1)
    with pytest.raises(ConfigError, match="deadline=0"):
        Dispatcher(Outbox(), {}, deadline=0)
    with pytest.raises(ConfigError, match="lacks name/resend_interval/send"):
        Dispatcher(Outbox(), {"x": object()})  # type: ignore[dict-item]  # the wrong type is the point
    with pytest.raises(ConfigError, match="max_pending_per_channel=0"):
        Outbox(max_pending_per_channel=0)


def test_threads_deliver_after_receiver_comes_back(receiver: Receiver) -> None:
    """Started workers retry a 503-ing receiver and deliver once it answers 200."""
    receiver.statuses = [503, 503]
    box = Outbox()
    channel = WebhookChannel(receiver.url, timeout=5)
    dispatcher = Dispatcher(box, {"webhook": channel}, base_delay=0.02, max_delay=0.1)
    dispatcher.start()
    try:
        note = notification()
        box.enqueue(note)
        receiver.wait_for(1)
        wait_until(lambda: not box.pending_count(), "the outbox to drain", timeout=30)
    finally:
        dispatcher.stop()
        channel.close()
    assert [r["status"] for r in receiver.requests] == [503, 503, 200]
    assert receiver.keys == {note.idempotency_key: 1}
    assert box.entries()[0].status == DELIVERED
    box.close()


def test_slow_channel_does_not_block_others_and_enqueue_wakes() -> None:
    """Each channel has its own worker; enqueue wakes it without waiting for the poll."""
    release = threading.Event()
    sent: list[str] = []

    class Slow(Scripted):
        def send(self, notification: Notification) -> None:
            release.wait(10)
            sent.append(self.name)

    box = Outbox()
    fast = Scripted(name="log")
    dispatcher = Dispatcher(box, {"webhook": Slow(), "log": fast}, poll_interval=60)
    dispatcher.start()
    try:
        time.sleep(0.05)  # lets both workers reach their 60 s poll wait (passes either way)
        box.enqueue(notification())
        box.enqueue(notification(channel="log"))
        wait_until(lambda: fast.sent, "the log worker to be woken", timeout=30)
        assert len(fast.sent) == 1
        assert sent == []
    finally:
        release.set()
        dispatcher.stop()
    assert sent == ["webhook"]
    box.close()


def test_hung_receiver_is_bounded_by_timeout_and_blocks_no_other_channel() -> None:
    """A webhook that accepts and never answers costs one timeout; the log channel goes on."""
    hung = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(hung.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    box = Outbox()
    webhook = WebhookChannel(f"http://127.0.0.1:{hung.getsockname()[1]}/", timeout=3.0)
    log = Scripted(name="log")
    dispatcher = Dispatcher(
        box, {"webhook": webhook, "log": log}, base_delay=30, max_delay=60, poll_interval=60
    )
    dispatcher.start()
    try:
        box.enqueue(notification())
        wait_until(lambda: accepted, "the webhook to connect to the hung receiver", timeout=30)
        box.enqueue(notification(channel="log"))
        wait_until(lambda: log.sent, "the log channel", timeout=30)
        # not behind the hung webhook: its attempt is still waiting for an answer
        assert [e.attempts for e in box.entries(channel="webhook")] == [0]
        entry = wait_for(  # bounded by the channel timeout, not hung for good
            lambda: next((e for e in box.entries(channel="webhook") if e.attempts), None),
            "the webhook attempt to time out",
            timeout=30,
        )
        assert entry.last_error is not None
        assert "ReadTimeout" in entry.last_error
    finally:
        dispatcher.stop(timeout=2)
        webhook.close()
        hung.close()
        for conn in accepted:
            conn.close()
        box.close()


def test_stop_keeps_undelivered_rows(tmp_path: Path) -> None:
    """Rows not delivered before stop stay pending in the file for the next start."""
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    dispatcher = Dispatcher(box, {"webhook": Scripted(errors=down(1))}, base_delay=60, max_delay=60)
    dispatcher.start()
    box.enqueue(notification())
    wait_until(lambda: box.entries()[0].attempts == 1, "the first attempt", timeout=30)
    dispatcher.stop()
    box.close()
    again = Outbox(path)
    (entry,) = again.entries()
    assert entry.status == "pending"
    assert entry.attempts == 1
    again.close()


def test_killed_process_outbox_is_delivered_once_after_restart(tmp_path: Path) -> None:
    """A notification enqueued by a process SIGKILLed before delivery is sent exactly once."""
    path = tmp_path / "outbox.db"
    port = free_port()
    child = subprocess.Popen(  # the receiver is not up yet: the child can only enqueue
        [
            sys.executable,
            str(Path(__file__).with_name("outbox_child.py")),
            str(path),
            f"http://127.0.0.1:{port}/hook",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        lines = [child.stdout.readline().strip() for _ in range(2)]
        assert lines[0] == "enqueued"
        key = lines[1]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    receiver = Receiver(port)
    box = Outbox(path)
    channel = WebhookChannel(f"http://127.0.0.1:{port}/hook", timeout=5)
    try:
        (entry,) = box.entries()
        assert entry.status == "pending"
        assert entry.attempts >= 1  # the child tried while the receiver was down
        assert entry.idempotency_key == key
        dispatcher = Dispatcher(box, {"webhook": channel})
        # killed mid-attempt, the child may have left its claim: it lapses after one lease
        due = max(entry.next_attempt_at, entry.claim_expires or 0.0)
        assert dispatcher.deliver_due(now=due + 1) == 1
        assert dispatcher.deliver_due(now=due + 1000) == 0
        assert box.enqueue(entry.notification) is False  # the engine re-sending after restart
        assert dispatcher.deliver_due(now=due + 2000) == 0
        assert receiver.keys == {key: 1}
        body = receiver.requests[0]["body"]
        assert body["idempotencyKey"] == key
        assert body["alerts"][0]["labels"]["alertname"] == "DiskFull"
    finally:
        channel.close()
        box.close()
        receiver.stop()


def test_channel_bug_is_retried_not_raised(
    outbox: Outbox, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A channel raising something other than ChannelError counts as a failed attempt."""
    channel = Scripted(errors=[KeyError("oops")])
    dispatcher = Dispatcher(outbox, {"webhook": channel}, clock=clock, base_delay=1, max_delay=1)
    outbox.enqueue(notification())
    assert dispatcher.deliver_due() == 0
    assert "KeyError" in (outbox.entries()[0].last_error or "")
    assert "instead of ChannelError" in caplog.text
    clock.now += 1
    assert dispatcher.deliver_due() == 1


def test_purge_keeps_pending_and_resending_rows(outbox: Outbox, clock: Clock) -> None:
    """Purging drops finished rows only; a purged key may be enqueued again."""
    channel = Scripted()
    dispatcher = Dispatcher(outbox, {"webhook": channel}, clock=clock)
    done = notification(event(rule="Done"))
    outbox.enqueue(done)
    dispatcher.deliver_due()
    outbox.enqueue(notification(event(rule="Waiting"), channel="nowhere"))
    clock.now += 10
    assert outbox.purge(before=clock.now) == 1
    assert [e.notification.events[0].rule for e in outbox.entries()] == ["Waiting"]
    assert outbox.enqueue(done) is True


def test_notifications_for_unknown_channels_wait(outbox: Outbox, clock: Clock) -> None:
    """Rows for a channel the dispatcher does not know stay pending for a later dispatcher."""
    dispatcher = Dispatcher(outbox, {"webhook": Scripted()}, clock=clock)
    outbox.enqueue(notification(channel="pager"))
    assert dispatcher.deliver_due() == 0
    assert outbox.pending_count("pager") == 1
    later = Scripted("pager")
    assert Dispatcher(outbox, {"pager": later}, clock=clock).deliver_due() == 1


def test_group_order_is_kept_across_retries(outbox: Outbox, clock: Clock) -> None:
    """A resolved notification waits for the retried firing one of its group to go first."""
    channel = Scripted(errors=down(1))
    dispatcher = Dispatcher(outbox, {"webhook": channel}, clock=clock, rng=MaxJitter())
    firing = notification(event())
    other_group = Notification(
        channel="webhook", group_key="other", events=(event(rule="Other"),), created_at=T0
    )
    outbox.enqueue(firing)
    outbox.enqueue(other_group)
    resolved = notification(event(state=AlertState.RESOLVED, ends_at=T0 + 1))
    outbox.enqueue(resolved)
    assert dispatcher.deliver_due() == 0  # firing fails
    assert dispatcher.deliver_due() == 1  # the other group goes; resolved waits
    assert channel.sent == [other_group]
    clock.now += 1
    assert dispatcher.deliver_due() == 2
    assert channel.sent == [other_group, firing, resolved]


def test_dispatcher_survives_a_busy_file_and_marks_the_row_once_it_frees(tmp_path: Path) -> None:
    """A busy file fails the 'delivered' mark: the worker lives on, then re-claims the row."""
    path = tmp_path / "outbox.sqlite3"
    db = open_database(path, busy_timeout=0.05, retry_for=0.05)
    box = Outbox(database=db)
    db.close()
    box.enqueue(notification())
    # a second connection takes the write lock between the first send and its mark
    holder = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)

    class LockAfterFirstSend(Scripted):
        def send(self, notification: Notification) -> None:
            super().send(notification)
            if len(self.sent) == 1:
                holder.execute("BEGIN IMMEDIATE")

    channel = LockAfterFirstSend()
    dispatcher = Dispatcher(box, {"webhook": channel}, poll_interval=0.05)
    dispatcher.start()
    try:
        wait_until(lambda: box.database.errors, "the mark to fail on the busy file", timeout=30)
        assert box.pending_count() == 1  # sent, not marked: the worker lives and holds it
        holder.execute("ROLLBACK")
        holder.close()
        wait_until(lambda: not box.pending_count(), "the row to be marked", timeout=30)
        assert [e.status for e in box.entries()] == [DELIVERED]
    finally:
        dispatcher.stop()
        box.close()
    # its own leftover claim does not lock the worker out: sent again, same key, then marked
    assert len(channel.sent) == 2
    assert len({n.idempotency_key for n in channel.sent}) == 1


def test_queue_depth_gauge_does_not_wait_behind_a_write_on_a_busy_file(tmp_path: Path) -> None:
    """While a write waits on a busy file, the gauge reports its last counts at once."""
    path = tmp_path / "outbox.sqlite3"
    db = open_database(path, busy_timeout=5.0, retry_for=5.0)
    box = Outbox(database=db)
    db.close()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    # held: the gauge observes live dispatchers only (a weak set)
    dispatcher = Dispatcher(box, {"webhook": Scripted()}, meter=provider.get_meter("paca_otel"))
    box.enqueue(notification(event(rule="A")))
    assert metric_points(reader)["paca_otel.alerts.queue_depth"] == {"webhook": 1}
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    writer = threading.Thread(target=lambda: box.enqueue(notification(event(rule="B"))))
    writer.start()
    wait_until(  # until the writer holds the file's lock, waiting on the holder
        lambda: box.database.try_fetchall("SELECT 1") is None, "the blocked write", timeout=30
    )
    assert metric_points(reader)["paca_otel.alerts.queue_depth"] == {"webhook": 1}
    assert writer.is_alive(), "the gauge waited for the blocked write"
    holder.execute("ROLLBACK")
    holder.close()
    writer.join(30)
    assert metric_points(reader)["paca_otel.alerts.queue_depth"] == {"webhook": 2}
    box.close()
    provider.shutdown()
    del dispatcher
