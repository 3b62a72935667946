"""The dispatcher: drains the :class:`~paca_otel.delivery._outbox.Outbox` into channels.

One worker thread per channel (a slow SMTP server does not hold up the webhook) sends what is
due and marks a row delivered only after ``send`` returned: delivery is at-least-once, and every
re-send carries the same idempotency key. Failed attempts back off exponentially with full
jitter until the notification's deadline, then go to the dead letters; a non-retryable failure
goes there at once. Nothing here runs on the thread that records a metric or serves a request.

Every process of a multi-worker service runs its own dispatcher over the shared file; rows are
claimed before they are sent (see :meth:`Outbox.claim`), so each is sent by one worker.

**The lease.** A claim lasts ``lease`` seconds (60 by default) and is renewed before a send
whenever less than half of it is left, so every send starts with at least 30 s of claim: three
times the channels' default 10 s timeout, which bounds each of an HTTP send's connect, write
and read phases. A clean :meth:`Dispatcher.stop` releases its claims at once. A worker killed
holding claims (SIGKILL, OOM) is noticed by the next pass of any worker on the same machine,
its pid being gone (see :mod:`.claims`); only where that cannot be known (another machine or
pid namespace, no ``/proc``, an unreaped or frozen process) do its rows wait for the lease.

A send that outlives its claim anyway (a channel timeout above ``lease / 6``, a process frozen
for longer than the lease) may be made again by the worker that takes the row over: a rare
duplicate carrying the same idempotency key, the at-least-once contract the outbox already
has for a crash between send and mark. Renewing from a heartbeat thread instead would fail
the same way when the process freezes, at the cost of one more thread per dispatcher.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping

from opentelemetry import metrics

from paca_otel._internal import handle_internal_errors, warn_once
from paca_otel.delivery._claims import holder_is_gone, new_owner
from paca_otel.delivery._outbox import MAX_CLAIM_BATCH, Outbox, OutboxEntry
from paca_otel.delivery.channels._base import NotificationChannel
from paca_otel.errors import ChannelError, ConfigError, StorageError
from paca_otel.rules._models import AlertState, Notification
from paca_otel.storage import count_error

_logger = logging.getLogger("paca_otel.alerts")


class Dispatcher:
    """Drain an :class:`Outbox` into channels: one worker thread per channel.

    Args:
        outbox: Where notifications wait.
        channels: Channels by name; rows for a name not here stay pending (a channel may be
            configured later) and are not counted as failures.
        base_delay: First retry waits up to this many seconds.
        max_delay: Cap of the exponential backoff.
        deadline: Seconds after enqueueing after which a failing notification is given up
            on (dead letter), unless the row carries its own deadline.
        clock: Time source (tests pass a fake one and call :meth:`deliver_due`).
        rng: Random source of the jitter (tests pass a seeded or fake one).
        poll_interval: Longest a worker sleeps without a wake-up, so it notices rows that
            another process wrote into the same file.
        retention: Delivered and dead rows older than this are purged (seconds).
        lease: Seconds a claim on rows lasts (renewed while sending; see the module
            docstring for the choice of 60 s). Short leases let tests see a dead worker's
            rows return quickly.
        claim_batch: Rows claimed per transaction: fewer writes against more rows held by one
            worker (and delayed by one lease if it dies).
        meter: Where the self-metrics go; ``get_meter("paca_otel")`` on the global provider
            by default.

    Backoff is exponential with full jitter: attempt ``n`` waits
    ``uniform(0, min(max_delay, base_delay * 2**(n-1)))``, which spreads the retries of many
    notifications to a receiver that just came back instead of sending them in lock-step.
    A pass stops at the first retryable failure of a channel: the rest of its queue is
    tried after the failed one's backoff, not hammered against a receiver that is down.
    """

    def __init__(
        self,
        outbox: Outbox,
        channels: Mapping[str, NotificationChannel],
        *,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        deadline: float = 3600.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        poll_interval: float = 5.0,
        retention: float = 7 * 86400.0,
        lease: float = 60.0,
        claim_batch: int = 20,
        meter: metrics.Meter | None = None,
    ) -> None:
        if not 0 < base_delay <= max_delay:
            msg = f"need 0 < base_delay <= max_delay, got base_delay={base_delay!r}, "
            msg += f"max_delay={max_delay!r}"
            raise ConfigError(msg)
        if not deadline > 0:
            msg = f"deadline={deadline!r} must be a positive number of seconds"
            raise ConfigError(msg)
        if not lease > 0:
            msg = f"lease={lease!r} must be a positive number of seconds"
            raise ConfigError(msg)
        if not 0 < claim_batch <= MAX_CLAIM_BATCH:
            msg = f"claim_batch={claim_batch!r} must be between 1 and {MAX_CLAIM_BATCH}"
            raise ConfigError(msg)
        for key, channel in channels.items():
            if not isinstance(channel, NotificationChannel):
                msg = f"channel {key!r}={channel!r} lacks name/resend_interval/send()"
                raise ConfigError(msg)
        self.outbox = outbox
        self.channels = dict(channels)
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.deadline = float(deadline)
        self.poll_interval = float(poll_interval)
        self.retention = float(retention)
        self.lease = float(lease)
        self.claim_batch = int(claim_batch)
        self._owner_pid = 0
        self._owner = ""
        self._clock = clock
        self._rng = rng or random.Random()
        self._locks = {name: threading.Lock() for name in self.channels}
        self._events = {name: threading.Event() for name in self.channels}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_purge = float("-inf")
        self._attrs = {name: {"channel": name} for name in self.channels}
        self._metrics = _instruments(meter or metrics.get_meter("paca_otel"))
        self._metrics.sources.add(self)
        self._listener = self._on_enqueue
        #: The queue-depth gauge's last counts (reported again while the file is in use).
        self.last_depth: dict[str, int] = {}

    # -- control -------------------------------------------------------------------------

    def start(self) -> None:
        """Start one daemon worker per channel (idempotent)."""
        if self._threads:
            return
        self._stop.clear()
        self.outbox.add_listener(self._listener)
        for name in self.channels:
            self._start_worker(name)

    def _start_worker(self, name: str) -> None:
        thread = threading.Thread(
            target=self._run, args=(name,), name=f"paca-otel-alerts-{name}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def add_channel(self, name: str, channel: NotificationChannel) -> None:
        """Deliver to one more channel (or replace one); a running dispatcher starts its worker.

        Raises:
            ConfigError: ``channel`` lacks ``name``/``resend_interval``/``send()``.
        """
        if not isinstance(channel, NotificationChannel):
            msg = f"channel {name!r}={channel!r} lacks name/resend_interval/send()"
            raise ConfigError(msg)
        new = name not in self.channels
        self.channels[name] = channel
        self._locks.setdefault(name, threading.Lock())
        self._events.setdefault(name, threading.Event())
        self._attrs.setdefault(name, {"channel": name})
        if new and self._threads:
            self._start_worker(name)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers, waiting up to ``timeout`` seconds in all for the current sends.

        Whatever is not delivered stays in the outbox for the next start.
        """
        self._stop.set()
        self.wake()
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            warn_once(_logger, "dispatcher_stop", "alert workers still sending at stop: %s", alive)
        self._threads = []
        self.outbox.remove_listener(self._listener)

    def wake(self, channel: str | None = None) -> None:
        """Make the workers (of one channel, or all) look at the outbox now."""
        if channel:
            event = self._events.get(channel)
            if event is not None:
                event.set()
            return
        for event in self._events.values():
            event.set()

    def _on_enqueue(self, channel: str) -> None:
        self.wake(channel or None)

    @property
    def claim_owner(self) -> str:
        """This dispatcher's claim id (``pid-token@domain``, see :mod:`.claims`).

        Unique per process and dispatcher, and made anew in a forked child (the pid changed),
        so a child never passes for its parent.
        """
        pid = os.getpid()
        if pid != self._owner_pid:
            self._owner_pid, self._owner = pid, new_owner()
        return self._owner

    # -- delivery ------------------------------------------------------------------------

    def backoff(self, attempts: int) -> float:
        """Seconds to wait before the attempt after ``attempts`` failures (full jitter)."""
        cap = min(self.max_delay, self.base_delay * 2.0 ** min(max(attempts - 1, 0), 62))
        return self._rng.uniform(0.0, cap)

    def deliver_due(self, now: float | None = None) -> int:
        """Run one synchronous pass over every channel; return how many were delivered.

        With ``now`` given (a fake clock), every timestamp of the pass uses it.
        """
        return sum(self._deliver_channel(name, now) for name in self.channels)

    def _deliver_channel(self, name: str, now: float | None) -> int:
        """Claim and send what is due, oldest first, keeping each group's order.

        A group is skipped for the rest of the pass once one of its rows is not due yet,
        failed or is held by another worker, so a later ``resolved`` never overtakes an
        earlier ``firing``.
        """
        channel = self.channels[name]
        with self._locks[name]:
            t = self._clock() if now is None else now
            self._maybe_purge(t)
            owner = self.claim_owner
            self._release_gone_holders(name, owner, t)
            delivered = 0
            blocked: set[str] = set()
            last_id = 0
            while batch := self.outbox.claim(
                name, owner, t, lease=self.lease, after_id=last_id, limit=self.claim_batch
            ):
                last_id = batch[-1].id
                sent, go_on = self._send_batch(channel, batch, blocked, now, t + self.lease)
                delivered += sent
                t = self._clock() if now is None else now
                if go_on is None:  # stopping
                    return delivered
                if not go_on:  # a retryable failure: the receiver is struggling
                    break
            self._resend(name, channel, t)
            return delivered

    def _release_gone_holders(self, name: str, owner: str, now: float) -> None:
        """Take back at once the claims of workers whose process is gone (see :mod:`.claims`)."""
        for holder in self.outbox.claim_holders(name, now):
            if holder != owner and holder_is_gone(holder):
                count = self.outbox.release(holder)
                _logger.info("took back %d outbox rows claimed by %s, now gone", count, holder)

    def _send_batch(
        self,
        channel: NotificationChannel,
        batch: list[OutboxEntry],
        blocked: set[str],
        now: float | None,
        expires: float,
    ) -> tuple[int, bool | None]:
        """Send a claimed batch in order; give back the claims of rows not attempted.

        Returns:
            How many were delivered, and whether the pass goes on (``None``: stopping).
        """
        owner = self.claim_owner
        held = {entry.id for entry in batch}
        delivered = 0
        try:
            for entry in batch:
                if self._stop.is_set() and self._threads:
                    return delivered, None
                t = self._clock() if now is None else now
                if expires - t < self.lease / 2:  # the next send gets at least half a lease
                    held = self.outbox.renew(owner, sorted(held), t + self.lease)
                    expires = t + self.lease
                if entry.group_key in blocked or entry.id not in held:
                    blocked.add(entry.group_key)  # lost: its taker sends the rest of the group
                    continue
                error = self._attempt(channel, entry.notification)
                held.discard(entry.id)  # finished below (or, if that write fails, re-claimed)
                t = self._clock() if now is None else now
                if error is None:
                    delivered += 1
                    resend_at = self._resend_at(channel, entry, t)
                    if not self.outbox.mark_delivered(
                        entry.id, t, owner=owner, resend_at=resend_at
                    ):
                        _logger.debug("outbox row %d was taken over while sending", entry.id)
                    self._metrics.delivered.add(1, self._attrs[entry.channel])
                    continue
                blocked.add(entry.group_key)
                if not self._failed(channel, entry, error, t):
                    return delivered, False
            return delivered, True
        finally:
            self.outbox.release(owner, held)

    def _failed(
        self, channel: NotificationChannel, entry: OutboxEntry, error: Exception, t: float
    ) -> bool:
        """Record a failed attempt; ``True`` if the pass may go on with the next row.

        A firing notification to a resending channel (Alertmanager) that runs out of time is
        a dead letter but keeps its re-sends: once the receiver is back it learns about the
        alert while it still fires, as from Prometheus, instead of never.
        """
        attempts = entry.attempts + 1
        deadline = (
            entry.deadline if entry.deadline is not None else entry.enqueued_at + self.deadline
        )
        text = f"{type(error).__name__}: {error}"
        retryable = getattr(error, "retryable", True) is not False
        attrs = self._attrs[entry.channel]
        if not retryable or t >= deadline:
            why = "not retryable" if not retryable else f"deadline passed after {attempts} attempts"
            resend_at = self._resend_at(channel, entry, t) if retryable else None
            self.outbox.mark_dead(
                entry.id, t, f"{why}: {text}", owner=self.claim_owner, resend_at=resend_at
            )
            self._metrics.failures.add(1, attrs)
            _logger.warning(
                "alert notification %s to %r given up (%s): %s",
                entry.idempotency_key,
                entry.channel,
                why,
                text,
            )
            return True
        next_attempt = min(t + self.backoff(attempts), deadline)
        self.outbox.mark_retry(entry.id, next_attempt, text, owner=self.claim_owner)
        self._metrics.retries.add(1, attrs)
        return False

    def _attempt(
        self, channel: NotificationChannel, notification: Notification
    ) -> Exception | None:
        """Send once; the error instead of raising (a channel's bug must not kill a worker)."""
        try:
            channel.send(notification)
        except ChannelError as exc:
            return exc
        except Exception as exc:
            warn_once(
                _logger,
                f"channel_bug:{channel.name}:{type(exc).__name__}",
                "channel %r raised %s instead of ChannelError (%s); retrying like a failed attempt",
                channel.name,
                type(exc).__name__,
                exc,
            )
            return exc
        return None

    @staticmethod
    def _resend_at(channel: NotificationChannel, entry: OutboxEntry, t: float) -> float | None:
        interval = channel.resend_interval
        if interval is None or entry.notification.status is not AlertState.FIRING:
            return None
        return t + interval

    def _resend(self, name: str, channel: NotificationChannel, now: float) -> None:
        """Repeat the latest firing notification of each group every ``resend_interval``.

        The due re-sends are claimed by moving them an interval ahead before sending, so
        one worker makes each; once one fails, the rest wait that interval, not a timeout each.
        """
        interval = channel.resend_interval
        if interval is None:
            return
        for entry in self.outbox.claim_resends(name, now, now + interval):
            error = self._attempt(channel, entry.notification)
            if error is not None:
                self._metrics.retries.add(1, self._attrs[name])
                warn_once(_logger, f"resend:{name}", "re-send to %r failed: %s", name, error)
                return
            self._metrics.delivered.add(1, self._attrs[name])

    def _maybe_purge(self, now: float) -> None:
        if now - self._last_purge < 3600.0:
            return
        self._last_purge = now
        self.outbox.purge(now - self.retention)

    def _run(self, name: str) -> None:
        event = self._events[name]
        while not self._stop.is_set() and not self.outbox.closed:
            event.clear()
            wait = self.poll_interval
            try:
                with handle_internal_errors("alert_dispatcher", _logger):
                    self._deliver_channel(name, None)
                with handle_internal_errors("alert_dispatcher", _logger):
                    nxt = self.outbox.next_due(name)
                    if nxt is not None:
                        wait = min(wait, max(0.0, nxt - self._clock()))
            except StorageError as exc:
                # the file is busy or broken: rows stay as they are and the next pass retries
                # (a row sent but not marked is re-sent with the same idempotency key)
                count_error("outbox_delivery", exc)
            if wait > 0:
                event.wait(wait)

    def __repr__(self) -> str:
        return f"Dispatcher(outbox={self.outbox!r}, channels={sorted(self.channels)!r})"


class _Instruments:
    """The self-metrics of every dispatcher reporting to one meter.

    Made once per meter: the SDK keeps only the first callback of an observable gauge
    registered twice under one name, so the gauge observes all live dispatchers instead.
    """

    def __init__(self, meter: metrics.Meter) -> None:
        self.sources: weakref.WeakSet[Dispatcher] = weakref.WeakSet()
        self.retries = meter.create_counter(
            "paca_otel.alerts.delivery.retries",
            unit="{attempt}",
            description="Failed notification attempts that will be tried again.",
        )
        self.failures = meter.create_counter(
            "paca_otel.alerts.delivery.failures",
            unit="{notification}",
            description="Notifications given up on (dead letters): deadline or non-retryable.",
        )
        self.delivered = meter.create_counter(
            "paca_otel.alerts.delivery.delivered",
            unit="{notification}",
            description="Notifications a channel accepted (re-sends included).",
        )
        meter.create_observable_gauge(
            "paca_otel.alerts.queue_depth",
            callbacks=[self._observe_depth],
            unit="{notification}",
            description="Notifications waiting in the outbox, per channel.",
        )

    def _observe_depth(self, _options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        out: list[metrics.Observation] = []
        for dispatcher in list(self.sources):
            if dispatcher.outbox.closed:
                continue
            try:
                counts = dispatcher.outbox.pending_by_channel(wait=False)
            except StorageError as exc:  # an export must not fail on a busy or broken file
                count_error("outbox_depth", exc)
                counts = None
            if counts is None:  # the file is in use: report the last counts, do not wait
                counts = dispatcher.last_depth
            dispatcher.last_depth = counts
            out.extend(
                metrics.Observation(counts.get(name, 0), {"channel": name})
                for name in dispatcher.channels
            )
        return out


_instruments_by_meter: weakref.WeakKeyDictionary[metrics.Meter, _Instruments] = (
    weakref.WeakKeyDictionary()
)
_instruments_lock = threading.Lock()


def _instruments(meter: metrics.Meter) -> _Instruments:
    """The instruments of ``meter``, made on its first sighting only."""
    found = _instruments_by_meter.get(meter)
    if found is None:
        with _instruments_lock:
            found = _instruments_by_meter.get(meter)
            if found is None:
                found = _instruments_by_meter[meter] = _Instruments(meter)
    return found
