"""Durable delivery of notifications: the SQLite outbox (``_dispatcher.py`` drains it).

The engine hands a :class:`~paca_otel.rules._models.Notification` to :meth:`Outbox.enqueue`,
which commits it to SQLite (WAL) and returns; nothing on that path waits for a network. The
:class:`Dispatcher` runs one worker thread per channel (a slow SMTP server does not hold up
the webhook), sends what is due, and marks a row delivered only after ``send`` returned:
delivery is at-least-once, and every re-send carries the same idempotency key so receivers
can drop duplicates. Failed attempts back off exponentially with full jitter until the
notification's deadline, then go to the dead letters; a non-retryable failure goes there at
once. Rows are unique per (channel, idempotency key), so enqueueing a notification twice (from
any process), or again after a crash, stores and sends it once.

Several processes may share one file (``uvicorn --workers 3`` with one ``state_path``), each
with its own dispatcher. A dispatcher **claims** rows before sending them: :meth:`Outbox.claim`
marks a batch with its owner id and a lease expiry in one write transaction, so no two live
workers send the same row, and only the holder's :meth:`~Outbox.mark_delivered` (retry, dead)
takes effect. A clean stop releases a worker's claims at once; a worker that dies holding
claims (SIGKILL, OOM) loses them as soon as another worker on the machine sees its process is
gone (:mod:`.claims`), or else when the lease lapses, and that worker sends them. Claims keep
each group's order: a row is claimable only when every earlier pending row of its group is
claimable too, so a ``resolved`` never overtakes its ``firing`` in another process.

The table lives in the :mod:`paca_otel.storage` file of ``state_path`` (one connection shared
with the alert state); payloads, group keys and errors go through the storage codec, so with a
``storage_key`` nothing about an alert is stored in clear.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from paca_otel._internal import drops, warn_once
from paca_otel.delivery._outbox_sql import (
    ANY_FREE,
    CLAIMABLE,
    COLUMNS,
    MAX_CLAIM_BATCH,
    MIGRATIONS,
    marks,
)
from paca_otel.errors import ChannelError, ConfigError
from paca_otel.rules._models import Notification
from paca_otel.storage import Codec, Database, open_database

__all__ = [
    "DEAD",
    "DELIVERED",
    "MAX_CLAIM_BATCH",
    "MIGRATIONS",
    "PENDING",
    "Outbox",
    "OutboxEntry",
]

_logger = logging.getLogger("paca_otel.alerts")

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


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
    #: The worker holding the row (pending) or that finished it (delivered, dead), if any.
    claim_owner: str | None = None
    #: When a pending row's claim lapses; ``None`` when nobody holds it.
    claim_expires: float | None = None


def _entry(row: tuple[Any, ...], codec: Codec) -> OutboxEntry:
    notification = Notification.from_dict(codec.decode(row[4], "outbox"))
    return OutboxEntry(
        id=row[0],
        channel=row[1],
        idempotency_key=row[2],
        group_key=notification.group_key,  # the column may hold the codec's index of it
        notification=notification,
        status=row[5],
        attempts=row[6],
        enqueued_at=row[7],
        next_attempt_at=row[8],
        deadline=row[9],
        last_error=None if row[10] is None else codec.decode(row[10], "outbox_error"),
        finished_at=row[11],
        claim_owner=row[12],
        claim_expires=row[13],
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
            Opened through :func:`~paca_otel.storage.open_database`: the alert state on the
            same path shares the connection.
        database: An open database to use instead of ``path`` (one reference is taken).
        codec: How payloads are stored (JSON, encrypted with a key); plain JSON by default.
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
        database: Database | None = None,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.time,
        max_pending_per_channel: int = 10_000,
        scrub: Callable[[Any], Any] | None = None,
    ) -> None:
        if max_pending_per_channel < 1:
            msg = f"max_pending_per_channel={max_pending_per_channel!r} must be >= 1"
            raise ConfigError(msg)
        db = open_database(path) if database is None else database.acquire()
        self.path = db.path
        self.codec = codec or Codec()
        # The privacy scrubber: what is stored is what every channel renders, so a secret
        # scrubbed here reaches neither the file nor a webhook, email or chat message.
        self._scrub = scrub
        self._clock = clock
        self._max_pending = max_pending_per_channel
        self._estimate_lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self._pending_estimate: dict[str, int] = {}
        try:
            db.migrate("outbox", MIGRATIONS)
        except BaseException:
            db.close()
            raise
        self._db: Database | None = db

    # -- writing -------------------------------------------------------------------------

    def enqueue(self, notification: Notification, *, deadline: float | None = None) -> bool:
        """Store a notification for delivery; ``False`` if its (channel, key) is already here.

        Args:
            notification: What to send; ``notification.channel`` names the channel.
            deadline: Absolute time after which to give up; the dispatcher's ``deadline``
                (seconds after enqueueing) applies when ``None``.

        A newer notification for the same (channel, group) also stops re-sends of the older
        ones: the group's latest state is the one a resending channel should repeat.

        Raises:
            StorageError: the file stayed busy or cannot be written; nothing was stored.
        """
        now = self._clock()
        data = notification.to_dict()
        if self._scrub is not None:
            data = self._scrub(data)
        payload = self.codec.encode(data, "outbox")
        group_key = self.codec.index(notification.group_key)
        channel = notification.channel
        evicted = 0
        with self._database().transaction("outbox enqueue") as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO outbox (channel, idempotency_key, group_key, payload,"
                " enqueued_at, next_attempt_at, deadline) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (channel, notification.idempotency_key, group_key, payload, now, now, deadline),
            )
            inserted = cur.rowcount == 1
            if inserted:
                conn.execute(
                    "UPDATE outbox SET resend_at = NULL WHERE channel = ? AND group_key = ?"
                    " AND id <> ? AND resend_at IS NOT NULL",
                    (channel, group_key, cur.lastrowid),
                )
                evicted = self._evict_over_bound(conn, channel, now)
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
        with self._estimate_lock:
            estimate = self._pending_estimate.get(channel)
            if estimate is not None and estimate < self._max_pending:
                self._pending_estimate[channel] = estimate + 1
                return 0
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE channel = ? AND status = ?", (channel, PENDING)
        ).fetchone()
        excess = int(count) - self._max_pending
        with self._estimate_lock:
            self._pending_estimate[channel] = min(int(count), self._max_pending)
        if excess <= 0:
            return 0
        conn.execute(
            "UPDATE outbox SET status = ?, last_error = ?, finished_at = ? WHERE id IN ("
            " SELECT id FROM outbox WHERE channel = ? AND status = ? ORDER BY id LIMIT ?)",
            (DEAD, self._error("dropped: outbox full"), now, channel, PENDING, excess),
        )
        return excess

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(channel)`` after each new row commits (the dispatcher's wake-up)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[str], None]) -> None:
        """Stop calling a listener added with :meth:`add_listener`."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    # -- claims --------------------------------------------------------------------------

    def claim(
        self,
        channel: str,
        owner: str,
        now: float,
        *,
        lease: float,
        after_id: int = 0,
        limit: int = 20,
    ) -> list[OutboxEntry]:
        """Claim the next due rows of ``channel`` for ``owner`` until ``now + lease``.

        One write transaction picks the rows and marks them, so two workers never hold the
        same row. A row is picked when it is pending, due, after ``after_id`` (the pass's
        last row), and free: unclaimed, its claim lapsed, or ``owner``'s own. Every earlier
        pending row of its group must be picked too: a group whose head waits (backoff),
        belongs to another live worker or was passed over earlier in the pass (``id <=
        after_id``) stays whole with its head, so per-group order holds across processes.

        Returns:
            The claimed rows in enqueue order (empty: nothing to do now).

        Raises:
            ConfigError: ``limit`` is not between 1 and ``MAX_CLAIM_BATCH``.
            StorageError: the file stayed busy or cannot be written; nothing was claimed.
        """
        if not 0 < limit <= MAX_CLAIM_BATCH:
            msg = f"limit={limit!r} must be between 1 and {MAX_CLAIM_BATCH}"
            raise ConfigError(msg)
        args = {"channel": channel, "owner": owner, "now": now, "after_id": after_id}
        # an idle poll stays a read: the write lock is taken only when something may be free
        if not self._database().fetchall(ANY_FREE, (channel, after_id, now, now, owner)):
            return []
        with self._database().transaction("outbox claim") as conn:
            ids = [r[0] for r in conn.execute(CLAIMABLE, {**args, "limit": limit}).fetchall()]
            if not ids:
                return []
            conn.execute(
                f"UPDATE outbox SET claim_owner = ?, claim_expires = ? WHERE id IN ({marks(ids)})",
                (owner, now + lease, *ids),
            )
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM outbox WHERE id IN ({marks(ids)}) ORDER BY id", ids
            ).fetchall()
        return [_entry(r, self.codec) for r in rows]  # decoded after the lock is released

    def renew(self, owner: str, ids: Sequence[int], expires: float) -> set[int]:
        """Extend ``owner``'s claims on ``ids`` to ``expires``; return the ids still held.

        A row missing from the answer was taken over after the claim lapsed (or finished by
        another worker): its holder must not send it.
        """
        if not ids:
            return set()
        where = f"claim_owner = ? AND status = 'pending' AND id IN ({marks(ids)})"
        with self._database().transaction("outbox claim renewal") as conn:
            conn.execute(
                f"UPDATE outbox SET claim_expires = ? WHERE {where}", (expires, owner, *ids)
            )
            rows = conn.execute(f"SELECT id FROM outbox WHERE {where}", (owner, *ids)).fetchall()
        return {int(r[0]) for r in rows}

    def release(self, owner: str, ids: Iterable[int] | None = None) -> int:
        """Give ``owner``'s claims on ``ids`` (``None``: all of them) back; return how many.

        For rows a worker will not send now, and for the claims of a worker that is gone.
        """
        sql = "UPDATE outbox SET claim_owner = NULL, claim_expires = NULL WHERE claim_owner = ?"
        sql += " AND status = 'pending'"
        if ids is None:
            return int(self._execute(sql, (owner,)).rowcount)
        ids = list(ids)
        if not ids:
            return 0
        return int(self._execute(f"{sql} AND id IN ({marks(ids)})", (owner, *ids)).rowcount)

    def claim_holders(self, channel: str, now: float) -> set[str]:
        """The owners holding unexpired claims on pending rows of ``channel`` at ``now``."""
        rows = self._fetch(
            "SELECT DISTINCT claim_owner FROM outbox WHERE channel = ? AND status = 'pending'"
            " AND claim_expires > ?",
            (channel, now),
        )
        return {str(r[0]) for r in rows}

    def claim_resends(
        self, channel: str, now: float, next_resend_at: float, limit: int = 100
    ) -> list[OutboxEntry]:
        """Take the re-sends of ``channel`` due at ``now`` by moving them to ``next_resend_at``.

        Moving ``resend_at`` is the claim: one transaction, so each due re-send is made by one
        worker. A worker dying mid-send skips that repetition; the next one comes an interval
        later (a re-send repeats state the receiver already had, the cheaper loss).
        """
        with self._database().transaction("outbox resend claim") as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM outbox WHERE channel = ? AND status IN (?, ?)"
                " AND resend_at IS NOT NULL AND resend_at <= ? ORDER BY resend_at, id LIMIT ?",
                (channel, DELIVERED, DEAD, now, min(limit, MAX_CLAIM_BATCH)),
            ).fetchall()
            if rows:
                ids = [r[0] for r in rows]
                conn.execute(
                    f"UPDATE outbox SET resend_at = ? WHERE id IN ({marks(ids)})",
                    (next_resend_at, *ids),
                )
        return [_entry(r, self.codec) for r in rows]

    # -- finishing an attempt (the claim holder only) --------------------------------------

    @staticmethod
    def _holder(owner: str | None) -> tuple[str, tuple[Any, ...]]:
        """The WHERE clause that lets only ``owner`` (or, for ``None``, nobody) hold the row."""
        if owner is None:
            return "claim_expires IS NULL", ()
        return "claim_owner = ?", (owner,)

    def mark_delivered(
        self, entry_id: int, now: float, *, owner: str | None = None, resend_at: float | None = None
    ) -> bool:
        """Record a successful send; ``resend_at`` schedules the next re-send, if any.

        Only ``owner``'s claim may finish the row (``None``: only a row nobody claimed). A
        lapsed claim still counts while no other worker took the row over.

        Returns:
            Whether the row was marked (``False``: another worker holds it now).
        """
        holder, args = self._holder(owner)
        cur = self._execute(
            "UPDATE outbox SET status = ?, finished_at = ?, attempts = attempts + 1,"
            f" last_error = NULL, resend_at = ?, claim_expires = NULL WHERE id = ? AND {holder}",
            (DELIVERED, now, resend_at, entry_id, *args),
        )
        return cur.rowcount == 1

    def mark_retry(
        self, entry_id: int, next_attempt_at: float, error: str, *, owner: str | None = None
    ) -> bool:
        """Record a failed attempt to try again at ``next_attempt_at``; the claim is released.

        Returns:
            Whether the row was marked (only ``owner``'s claim may, as for ``mark_delivered``).
        """
        holder, args = self._holder(owner)
        cur = self._execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
            f" claim_owner = NULL, claim_expires = NULL WHERE id = ? AND {holder}",
            (next_attempt_at, self._error(error), entry_id, *args),
        )
        return cur.rowcount == 1

    def mark_dead(
        self,
        entry_id: int,
        now: float,
        error: str,
        *,
        owner: str | None = None,
        resend_at: float | None = None,
    ) -> bool:
        """Give up on a notification: it becomes a dead letter with its last error.

        ``resend_at`` keeps re-sending it anyway (a firing alert on a resending channel:
        the receiver should learn about it once it is back, as long as it fires).

        Returns:
            Whether the row was marked (only ``owner``'s claim may, as for ``mark_delivered``).
        """
        holder, args = self._holder(owner)
        cur = self._execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?,"
            f" finished_at = ?, resend_at = ?, claim_expires = NULL WHERE id = ? AND {holder}",
            (DEAD, self._error(error), now, resend_at, entry_id, *args),
        )
        return cur.rowcount == 1

    def requeue(self, entry_id: int, *, deadline: float | None = None) -> bool:
        """Put a dead letter back in the queue (an operator fixed the receiver)."""
        now = self._clock()
        cur = self._execute(
            "UPDATE outbox SET status = ?, next_attempt_at = ?, deadline = ?, enqueued_at = ?,"
            " claim_owner = NULL, claim_expires = NULL WHERE id = ? AND status = ?",
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
            f"SELECT {COLUMNS} FROM outbox WHERE channel = ? AND status = ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (channel, PENDING, after_id, limit),
        )
        return [_entry(r, self.codec) for r in rows]

    def next_due(self, channel: str) -> float | None:
        """When ``channel`` next has something to do (attempt or re-send), if ever.

        Only the oldest pending row of each group counts: the rows behind it wait for it. A
        claimed head counts from when its claim lapses (its holder normally finishes it first),
        so a worker does not spin on rows another worker is sending.
        """
        rows = self._fetch(
            "SELECT MIN(t) FROM ("
            " SELECT MIN(MAX(next_attempt_at, COALESCE(claim_expires, next_attempt_at))) AS t"
            " FROM outbox WHERE id IN ("
            "  SELECT MIN(id) FROM outbox WHERE channel = ? AND status = ? GROUP BY group_key)"
            " UNION ALL SELECT MIN(resend_at) FROM outbox WHERE channel = ? AND status IN (?, ?)"
            " AND resend_at IS NOT NULL)",
            (channel, PENDING, channel, DELIVERED, DEAD),
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

    def pending_by_channel(self, *, wait: bool = True) -> dict[str, int] | None:
        """Pending counts per channel (the queue-depth gauge).

        With ``wait=False``, ``None`` at once when another thread is using the file (a write
        waiting on a busy file): the gauge then reports its last counts instead of stalling
        an export or a scrape.
        """
        sql = "SELECT channel, COUNT(*) FROM outbox WHERE status = ? GROUP BY channel"
        if wait:
            rows: list[tuple[Any, ...]] | None = self._fetch(sql, (PENDING,))
        else:
            rows = self._database().try_fetchall(sql, (PENDING,))
        return None if rows is None else {str(c): int(n) for c, n in rows}

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
        rows = self._fetch(f"SELECT {COLUMNS} FROM outbox{where} ORDER BY id", tuple(params))
        return [_entry(r, self.codec) for r in rows]

    def close(self) -> None:
        """Release the database (the last user of the file closes it); later calls raise."""
        db, self._db = self._db, None
        if db is not None:
            db.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._db is None

    @property
    def database(self) -> Database:
        """The storage connection (shared with the alert state on the same file).

        Raises:
            ChannelError: the outbox is closed.
        """
        return self._database()

    # -- plumbing ------------------------------------------------------------------------

    def _database(self) -> Database:
        db = self._db
        if db is None:
            msg = f"the alert outbox at {self.path!r} is closed"
            raise ChannelError(msg)
        return db

    def _error(self, text: str) -> str | bytes:
        return self.codec.encode(text[:2000], "outbox_error")

    def _execute(self, sql: str, params: Iterable[Any]) -> sqlite3.Cursor:
        return self._database().execute(sql, tuple(params))

    def _fetch(self, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        return self._database().fetchall(sql, tuple(params))

    def __repr__(self) -> str:
        return f"Outbox(path={self.path!r})"
