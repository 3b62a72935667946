"""Durable delivery of notifications: a SQLite outbox and the dispatcher that drains it.

The engine hands a :class:`~paca_otel.alerting.models.Notification` to :meth:`Outbox.enqueue`,
which commits it to SQLite (WAL) and returns; nothing on that path waits for a network. The
:class:`Dispatcher` runs one worker thread per channel (a slow SMTP server does not hold up
the webhook), sends what is due, and marks a row delivered only after ``send`` returned:
delivery is at-least-once, and every re-send carries the same idempotency key so receivers
can drop duplicates. Failed attempts back off exponentially with full jitter until the
notification's deadline, then go to the dead letters; a non-retryable failure goes there at
once. Rows are unique per (channel, idempotency key), so enqueueing a notification twice, or
again after a crash, sends it once.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics

from paca_otel._internal import drops, handle_internal_errors, warn_once
from paca_otel.alerting.channels.base import NotificationChannel
from paca_otel.alerting.models import AlertState, Notification
from paca_otel.errors import ChannelError, ConfigError

_logger = logging.getLogger("paca_otel.alerts")

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    group_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    enqueued_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    deadline REAL,
    last_error TEXT,
    finished_at REAL,
    resend_at REAL,
    UNIQUE (channel, idempotency_key)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (channel, status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_group ON outbox (channel, group_key);
CREATE INDEX IF NOT EXISTS outbox_resend ON outbox (channel, resend_at) WHERE resend_at IS NOT NULL;
"""

_COLUMNS = (
    "id, channel, idempotency_key, group_key, payload, status, attempts, enqueued_at, "
    "next_attempt_at, deadline, last_error, finished_at"
)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One stored notification and its delivery state (what ``dead_letters()`` returns)."""

    id: int
    channel: str
    idempotency_key: str
    group_key: str
    notification: Notification
    status: str
    attempts: int
    enqueued_at: float
    next_attempt_at: float
    deadline: float | None
    last_error: str | None
    finished_at: float | None


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    return OutboxEntry(
        id=row[0],
        channel=row[1],
        idempotency_key=row[2],
        group_key=row[3],
        notification=Notification.from_dict(json.loads(row[4])),
        status=row[5],
        attempts=row[6],
        enqueued_at=row[7],
        next_attempt_at=row[8],
        deadline=row[9],
        last_error=row[10],
        finished_at=row[11],
    )


class Outbox:
    """A durable queue of notifications in one SQLite file (or ``":memory:"``).

    One connection guarded by a lock serves all threads: every operation is a short indexed
    statement, and sends happen outside the lock. File databases use WAL with
    ``synchronous=NORMAL``: a committed enqueue survives the process being killed (the
    durability that matters for a crashing service); only an OS crash or power loss can
    lose the last commits.

    Args:
        path: SQLite file, created if missing; ``":memory:"`` for a process-local queue.
        clock: Time source for ``enqueued_at`` (tests pass a fake one).
        max_pending_per_channel: Bound on undelivered rows per channel. Beyond it the oldest
            pending row becomes a dead letter (``last_error`` says so) and the drop is counted
            in ``paca_otel.dropped{reason="alert_outbox_full"}``: during an alert storm the
            newest state is the one worth sending.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        clock: Callable[[], float] = time.time,
        max_pending_per_channel: int = 10_000,
    ) -> None:
        if max_pending_per_channel < 1:
            msg = f"max_pending_per_channel={max_pending_per_channel!r} must be >= 1"
            raise ConfigError(msg)
        self.path = os.fspath(path)
        self._clock = clock
        self._max_pending = max_pending_per_channel
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self._pending_estimate: dict[str, int] = {}
        try:
            conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
        except sqlite3.Error as exc:
            msg = f"cannot open the alert outbox at path={self.path!r}: {exc}"
            raise ConfigError(msg) from None
        self._conn: sqlite3.Connection | None = conn
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)

    # -- writing -------------------------------------------------------------------------

    def enqueue(self, notification: Notification, *, deadline: float | None = None) -> bool:
        """Store a notification for delivery; ``False`` if its (channel, key) is already here.

        Args:
            notification: What to send; ``notification.channel`` names the channel.
            deadline: Absolute time after which to give up; the dispatcher's ``deadline``
                (seconds after enqueueing) applies when ``None``.

        A newer notification for the same (channel, group) also stops re-sends of the older
        ones: the group's latest state is the one a resending channel should repeat.
        """
        now = self._clock()
        payload = json.dumps(notification.to_dict(), separators=(",", ":"))
        channel = notification.channel
        evicted = 0
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO outbox (channel, idempotency_key, group_key, payload,"
                    " enqueued_at, next_attempt_at, deadline) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        channel,
                        notification.idempotency_key,
                        notification.group_key,
                        payload,
                        now,
                        now,
                        deadline,
                    ),
                )
                inserted = cur.rowcount == 1
                if inserted:
                    conn.execute(
                        "UPDATE outbox SET resend_at = NULL WHERE channel = ? AND group_key = ?"
                        " AND id <> ? AND resend_at IS NOT NULL",
                        (channel, notification.group_key, cur.lastrowid),
                    )
                    evicted = self._evict_over_bound(conn, channel, now)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if evicted:
            drops.add("alert_outbox_full", evicted)
            warn_once(
                _logger,
                f"outbox_full:{channel}",
                "alert outbox for channel %r is full (%d pending); dropping the oldest",
                channel,
                self._max_pending,
            )
        if inserted:
            for listener in list(self._listeners):
                listener(channel)
        return inserted

    def _evict_over_bound(self, conn: sqlite3.Connection, channel: str, now: float) -> int:
        # An upper bound of the pending count (deliveries are not subtracted) spares the
        # COUNT(*) scan on most enqueues; it is made exact whenever it reaches the bound.
        estimate = self._pending_estimate.get(channel)
        if estimate is not None and estimate < self._max_pending:
            self._pending_estimate[channel] = estimate + 1
            return 0
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE channel = ? AND status = ?", (channel, PENDING)
        ).fetchone()
        excess = int(count) - self._max_pending
        self._pending_estimate[channel] = min(int(count), self._max_pending)
        if excess <= 0:
            return 0
        conn.execute(
            "UPDATE outbox SET status = ?, last_error = ?, finished_at = ? WHERE id IN ("
            " SELECT id FROM outbox WHERE channel = ? AND status = ? ORDER BY id LIMIT ?)",
            (DEAD, "dropped: outbox full", now, channel, PENDING, excess),
        )
        return excess

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(channel)`` after each new row commits (the dispatcher's wake-up)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[str], None]) -> None:
        """Stop calling a listener added with :meth:`add_listener`."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def mark_delivered(self, entry_id: int, now: float, *, resend_at: float | None = None) -> None:
        """Record a successful send; ``resend_at`` schedules the next re-send, if any."""
        self._execute(
            "UPDATE outbox SET status = ?, finished_at = ?, attempts = attempts + 1,"
            " last_error = NULL, resend_at = ? WHERE id = ?",
            (DELIVERED, now, resend_at, entry_id),
        )

    def mark_retry(self, entry_id: int, next_attempt_at: float, error: str) -> None:
        """Record a failed attempt that will be tried again at ``next_attempt_at``."""
        self._execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
            " WHERE id = ?",
            (next_attempt_at, error[:2000], entry_id),
        )

    def mark_dead(self, entry_id: int, now: float, error: str) -> None:
        """Give up on a notification: it becomes a dead letter with its last error."""
        self._execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?,"
            " finished_at = ? WHERE id = ?",
            (DEAD, error[:2000], now, entry_id),
        )

    def reschedule_resend(self, entry_id: int, resend_at: float | None) -> None:
        """Move (or cancel, with ``None``) the next re-send of a delivered notification."""
        self._execute("UPDATE outbox SET resend_at = ? WHERE id = ?", (resend_at, entry_id))

    def requeue(self, entry_id: int, *, deadline: float | None = None) -> bool:
        """Put a dead letter back in the queue (an operator fixed the receiver)."""
        now = self._clock()
        cur = self._execute(
            "UPDATE outbox SET status = ?, next_attempt_at = ?, deadline = ?, enqueued_at = ?"
            " WHERE id = ? AND status = ?",
            (PENDING, now, deadline, now, entry_id, DEAD),
        )
        if cur.rowcount:
            for listener in list(self._listeners):
                listener("")
        return cur.rowcount == 1

    def purge(self, before: float) -> int:
        """Delete delivered and dead rows finished before ``before`` (not ones still re-sent).

        After a purge the same idempotency key can be enqueued again; keep ``before`` well
        behind any possible re-enqueue of an old event.
        """
        cur = self._execute(
            "DELETE FROM outbox WHERE status IN (?, ?) AND finished_at < ? AND resend_at IS NULL",
            (DELIVERED, DEAD, before),
        )
        return int(cur.rowcount)

    # -- reading -------------------------------------------------------------------------

    def pending_page(self, channel: str, after_id: int = 0, limit: int = 200) -> list[OutboxEntry]:
        """Pending rows of ``channel`` in enqueue order, after ``after_id`` (one page)."""
        rows = self._fetch(
            f"SELECT {_COLUMNS} FROM outbox WHERE channel = ? AND status = ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (channel, PENDING, after_id, limit),
        )
        return [_entry(r) for r in rows]

    def due_resends(self, channel: str, now: float, limit: int = 100) -> list[OutboxEntry]:
        """Delivered rows of ``channel`` whose re-send is due."""
        rows = self._fetch(
            f"SELECT {_COLUMNS} FROM outbox WHERE channel = ? AND status = ?"
            " AND resend_at IS NOT NULL AND resend_at <= ? ORDER BY resend_at, id LIMIT ?",
            (channel, DELIVERED, now, limit),
        )
        return [_entry(r) for r in rows]

    def next_due(self, channel: str) -> float | None:
        """When ``channel`` next has something to do (attempt or re-send), if ever.

        Only the oldest pending row of each group counts: the rows behind it wait for it.
        """
        rows = self._fetch(
            "SELECT MIN(t) FROM ("
            " SELECT MIN(next_attempt_at) AS t FROM outbox WHERE id IN ("
            "  SELECT MIN(id) FROM outbox WHERE channel = ? AND status = ? GROUP BY group_key)"
            " UNION ALL SELECT MIN(resend_at) FROM outbox WHERE channel = ? AND status = ?"
            " AND resend_at IS NOT NULL)",
            (channel, PENDING, channel, DELIVERED),
        )
        value = rows[0][0] if rows else None
        return None if value is None else float(value)

    def pending_count(self, channel: str | None = None) -> int:
        """How many notifications wait for delivery (for one channel, or all)."""
        if channel is None:
            rows = self._fetch("SELECT COUNT(*) FROM outbox WHERE status = ?", (PENDING,))
        else:
            rows = self._fetch(
                "SELECT COUNT(*) FROM outbox WHERE status = ? AND channel = ?", (PENDING, channel)
            )
        return int(rows[0][0])

    def pending_by_channel(self) -> dict[str, int]:
        """Pending counts per channel (the queue-depth gauge)."""
        rows = self._fetch(
            "SELECT channel, COUNT(*) FROM outbox WHERE status = ? GROUP BY channel", (PENDING,)
        )
        return {str(c): int(n) for c, n in rows}

    def dead_letters(self, channel: str | None = None) -> list[OutboxEntry]:
        """Notifications given up on, oldest first, with attempts and last error."""
        return self.entries(status=DEAD, channel=channel)

    def entries(
        self, *, status: str | None = None, channel: str | None = None
    ) -> list[OutboxEntry]:
        """All rows, optionally filtered by status and channel (for the API and tests)."""
        clauses, params = [], []
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if channel is not None:
            clauses.append("channel = ?")
            params.append(channel)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._fetch(f"SELECT {_COLUMNS} FROM outbox{where} ORDER BY id", tuple(params))
        return [_entry(r) for r in rows]

    def close(self) -> None:
        """Close the database; later calls raise ``ChannelError``."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conn is None

    # -- plumbing ------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            msg = f"the alert outbox at {self.path!r} is closed"
            raise ChannelError(msg)
        return self._conn

    def _execute(self, sql: str, params: Iterable[Any]) -> sqlite3.Cursor:
        with self._lock:
            return self._connection().execute(sql, tuple(params))

    def _fetch(self, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(sql, tuple(params)).fetchall()

    def __repr__(self) -> str:
        return f"Outbox(path={self.path!r})"


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
        meter: metrics.Meter | None = None,
    ) -> None:
        if not 0 < base_delay <= max_delay:
            msg = f"need 0 < base_delay <= max_delay, got base_delay={base_delay!r}, "
            msg += f"max_delay={max_delay!r}"
            raise ConfigError(msg)
        if not deadline > 0:
            msg = f"deadline={deadline!r} must be a positive number of seconds"
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

    # -- control -------------------------------------------------------------------------

    def start(self) -> None:
        """Start one daemon worker per channel (idempotent)."""
        if self._threads:
            return
        self._stop.clear()
        self.outbox.add_listener(self._listener)
        for name in self.channels:
            thread = threading.Thread(
                target=self._run, args=(name,), name=f"paca-otel-alerts-{name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

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
        """Send what is due, oldest first, keeping each group's order.

        A group is skipped for the rest of the pass once one of its rows is not due yet or
        failed, so a later ``resolved`` never overtakes an earlier ``firing``.
        """
        channel = self.channels[name]
        with self._locks[name]:
            t = self._clock() if now is None else now
            self._maybe_purge(t)
            delivered = 0
            blocked: set[str] = set()
            last_id = 0
            while page := self.outbox.pending_page(name, last_id):
                for entry in page:
                    last_id = entry.id
                    if self._stop.is_set() and self._threads:
                        return delivered
                    if entry.group_key in blocked:
                        continue
                    if entry.next_attempt_at > t:
                        blocked.add(entry.group_key)
                        continue
                    error = self._attempt(channel, entry.notification)
                    t = self._clock() if now is None else now
                    if error is None:
                        delivered += 1
                        resend_at = self._resend_at(channel, entry, t)
                        self.outbox.mark_delivered(entry.id, t, resend_at=resend_at)
                        self._metrics.delivered.add(1, self._attrs[name])
                        continue
                    blocked.add(entry.group_key)
                    if not self._failed(entry, error, t):
                        self._resend(name, channel, t)
                        return delivered
            self._resend(name, channel, t)
            return delivered

    def _failed(self, entry: OutboxEntry, error: Exception, t: float) -> bool:
        """Record a failed attempt; ``True`` if the pass may go on with the next row."""
        attempts = entry.attempts + 1
        deadline = (
            entry.deadline if entry.deadline is not None else entry.enqueued_at + self.deadline
        )
        text = f"{type(error).__name__}: {error}"
        retryable = getattr(error, "retryable", True) is not False
        attrs = self._attrs[entry.channel]
        if not retryable or t >= deadline:
            why = "not retryable" if not retryable else f"deadline passed after {attempts} attempts"
            self.outbox.mark_dead(entry.id, t, f"{why}: {text}")
            self._metrics.failures.add(1, attrs)
            _logger.warning(
                "alert notification %s to %r given up (%s): %s",
                entry.idempotency_key,
                entry.channel,
                why,
                text,
            )
            return True
        self.outbox.mark_retry(entry.id, min(t + self.backoff(attempts), deadline), text)
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
        """Repeat the latest firing notification of each group every ``resend_interval``."""
        interval = channel.resend_interval
        if interval is None:
            return
        for entry in self.outbox.due_resends(name, now):
            error = self._attempt(channel, entry.notification)
            self.outbox.reschedule_resend(entry.id, now + interval)
            if error is None:
                self._metrics.delivered.add(1, self._attrs[name])
            else:
                self._metrics.retries.add(1, self._attrs[name])
                warn_once(_logger, f"resend:{name}", "re-send to %r failed: %s", name, error)

    def _maybe_purge(self, now: float) -> None:
        if now - self._last_purge < 3600.0:
            return
        self._last_purge = now
        self.outbox.purge(now - self.retention)

    def _run(self, name: str) -> None:
        event = self._events[name]
        while not self._stop.is_set() and not self.outbox.closed:
            event.clear()
            with handle_internal_errors("alert_dispatcher", _logger):
                self._deliver_channel(name, None)
            wait = self.poll_interval
            with handle_internal_errors("alert_dispatcher", _logger):
                nxt = self.outbox.next_due(name)
                if nxt is not None:
                    wait = min(wait, max(0.0, nxt - self._clock()))
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
            counts = dispatcher.outbox.pending_by_channel()
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
