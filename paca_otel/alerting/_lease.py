"""The leader lease: which one worker of a service evaluates rules and enqueues notifications.

Under ``uvicorn --workers N`` or gunicorn every worker runs the rule engine over one shared
state file. If each evaluated, one alert would page N times; so the workers elect a leader
through a row of the ``leases`` table in that file: the holder's id and an expiry. Only the
holder evaluates; it renews the row while it lives; the others (followers) take the row over
once it has expired. No extra process, no network: SQLite's write lock (``BEGIN IMMEDIATE``)
makes "read the row, take it if expired" atomic between processes.

Timing (``I`` = ``evaluation_interval``; see :func:`lease_timing`):

- every worker's scheduler polls the lease every ``P = I/4``; the leader renews at each poll
  and at the start of each evaluation, a follower tries to take an expired lease;
- the lease lives ``T = 1.5 I`` past its last renewal.

*Failover within 2 I.* A leader SIGKILLed at time ``k`` renewed last at ``r <= k``, so its lease
expires at ``r + T <= k + T``. Each follower polls every ``P``: the first poll after the expiry
comes at most ``P`` later, takes the lease and evaluates in the same tick. Failover is at most
``T + P = 1.75 I``, leaving ``0.25 I`` for scheduling delays and the new leader's read of the
alert records.

*One leader at a time.* The leader keeps its lease as long as two renewals are less than ``T``
apart: a poll (``P``) plus one evaluation cycle, so a cycle may take up to ``1.25 I`` (a longer
one has overrun its interval anyway). A leader paused for longer (SIGSTOP, a swap storm) or
whose renewal failed stops evaluating: renewals are conditional on still being the holder,
and before each cycle writes anything the engine asks :meth:`Lease.held`, which answers from
the process's own monotonic clock (valid until ``0.9 T`` after the renewal began), so a
leader that wakes after the lease could have passed on drops its cycle instead of writing.

A leader frozen *inside* one of its write transactions (a few milliseconds per cycle) holds
SQLite's write lock, so nobody can take over until it resumes or dies; death releases the
lock at once (the kernel drops a dead process's file locks), so SIGKILL is not affected.

*Clocks.* Expiries are wall-clock times (``time.time``), compared by processes of one host
that share the clock. A wall clock stepped forward by more than ``0.9 T`` can let a follower
take over while the old leader finishes a cycle; both then decide the same transitions and
the outbox keeps one notification per idempotency key (alert fingerprint, state, start time).
A clock stepped backward delays failover by the step. Across hosts, use the path the README
describes (Prometheus and Alertmanager), not this lease.

*A dead holder on this host* need not be waited for. The row also records where the holder
runs (host name and pid namespace, on Linux); a follower in the same place whose holder's pid
is gone (or a zombie) takes the lease at its next poll, within ``P``. That is the usual case
under uvicorn or gunicorn (a killed worker), and it spares a single process restarted after a
crash the wait for ``T``. Anywhere else (another container, no ``/proc``) the TTL decides; a
reused pid looks alive, so the check can only delay a takeover to the TTL, never steal a live
leader's lease.

The holder id is the pid plus a random token, made anew in a forked child, so a child of a
pre-forking server never inherits its parent's lease. A clean shutdown releases the lease
(:meth:`Lease.release`) so a restart hands over at the next poll instead of after ``T``.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paca_otel.errors import ConfigError
from paca_otel.storage import Database

__all__ = [
    "MIGRATIONS",
    "POLL_INTERVALS",
    "TTL_INTERVALS",
    "Lease",
    "LeaseHolder",
    "lease_timing",
]

logger = logging.getLogger("paca_otel.alerting")

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    origin TEXT NOT NULL,
    term INTEGER NOT NULL,
    acquired_at REAL NOT NULL,
    renewed_at REAL NOT NULL,
    expires_at REAL NOT NULL
)
"""

_SELECT = (
    "SELECT holder, origin, term, acquired_at, renewed_at, expires_at FROM leases WHERE name = ?"
)

#: Schema steps of the ``leases`` component (see ``Database.migrate``).
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1,)

#: Lease time-to-live, in evaluation intervals (see the module docstring).
TTL_INTERVALS = 1.5
#: Lease poll period of every worker, in evaluation intervals.
POLL_INTERVALS = 0.25
#: Share of the TTL after a renewal began during which the holder trusts its lease.
_TRUST = 0.9


@functools.cache
def _origin() -> str:
    """Where this process's pids mean something: host name and pid namespace ("" if unknown)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux, or no /proc: pids cannot be checked
        return ""
    return f"{socket.gethostname()}/{namespace}"


def _gone(pid: int) -> bool:
    """Whether process ``pid`` of this namespace has exited (no entry, or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except FileNotFoundError:
        return True
    except OSError:  # cannot tell: treat it as alive and let the TTL decide
        return False
    state = data[data.rfind(b")") + 2 : data.rfind(b")") + 3]  # the field after "(comm)"
    return state in (b"Z", b"X")


def lease_timing(evaluation_interval: float) -> tuple[float, float]:
    """``(ttl, poll)`` in seconds for an evaluation interval: failover <= ``ttl + poll`` < 2 I."""
    return TTL_INTERVALS * evaluation_interval, POLL_INTERVALS * evaluation_interval


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """The lease row as stored: who holds it, since when, until when.

    Attributes:
        holder: ``"<pid>-<token>"`` of the holding process.
        origin: Host name and pid namespace of the holder ("" where unknown).
        term: Bumped each time the lease changes hands (1 for the first holder).
        acquired_at: Wall time the holder took it.
        renewed_at: Wall time of its last renewal.
        expires_at: Wall time after which another worker may take it.
    """

    holder: str
    origin: str
    term: int
    acquired_at: float
    renewed_at: float
    expires_at: float

    @property
    def pid(self) -> int:
        """The holding process's pid."""
        return int(self.holder.split("-", 1)[0])

    def dead(self) -> bool:
        """Whether the holder is known to have exited (same host and pid namespace as us)."""
        return bool(self.origin) and self.origin == _origin() and _gone(self.pid)

    def free(self, now: float) -> bool:
        """Whether another process may take the lease at wall time ``now``."""
        return self.expires_at <= now or self.dead()


class Lease:
    """One named lease in a shared database, seen from this process.

    Args:
        db: The shared state file (an in-memory database works, for tests, but elects
            nobody else).
        name: The lease's name; one leader per name.
        ttl: Seconds a renewal keeps the lease.
        clock: Wall time (compared between processes).
        monotonic: This process's own clock, for :meth:`held`.

    Raises:
        ConfigError: ``ttl`` is not a positive number.
        StorageError: the table cannot be created.
    """

    def __init__(
        self,
        db: Database,
        name: str = "alerting",
        *,
        ttl: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            msg = f"lease ttl must be a positive number of seconds, got {ttl!r}"
            raise ConfigError(msg)
        self.db = db
        self.name = name
        self.ttl = float(ttl)
        self.clock = clock
        self.monotonic = monotonic
        self._pid = -1
        self._id = ""
        self._trusted_until = -float("inf")
        #: The term of this process's current hold (0: not holding).
        self.term = 0
        db.migrate("leases", MIGRATIONS)

    @property
    def holder_id(self) -> str:
        """This process's id: pid plus a random token, new in a forked child."""
        pid = os.getpid()
        if pid != self._pid:  # first use, or a fork: never act on the parent's hold
            self._pid = pid
            self._id = f"{pid}-{secrets.token_hex(6)}"
            self._trusted_until = -float("inf")
            self.term = 0
        return self._id

    def acquire(self) -> bool:
        """Renew the lease if this process holds it, take it if it expired; return whether held.

        A follower's call is one read while the lease is held by a live leader; writes happen
        only to renew or to take over.

        Raises:
            StorageError: the file could not be read or written (the caller counts it; a
                leader that cannot renew loses the lease after ``ttl``).
        """
        me = self.holder_id
        started = self.monotonic()
        now = self.clock()
        current = self.current()
        if current is not None and current.holder != me and not current.free(now):
            self.term = 0
            return False
        with self.db.transaction("lease") as conn:
            row = conn.execute(_SELECT, (self.name,)).fetchone()
            found = None if row is None else _holder(row)
            if found is None:
                term = 1
                conn.execute(
                    "INSERT INTO leases (name, holder, origin, term, acquired_at, renewed_at,"
                    " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (self.name, me, _origin(), term, now, now, now + self.ttl),
                )
            elif found.holder == me:
                term = found.term
                conn.execute(
                    "UPDATE leases SET renewed_at = ?, expires_at = ? WHERE name = ?",
                    (now, now + self.ttl, self.name),
                )
            elif found.free(now):
                term = found.term + 1
                conn.execute(
                    "UPDATE leases SET holder = ?, origin = ?, term = ?, acquired_at = ?,"
                    " renewed_at = ?, expires_at = ? WHERE name = ?",
                    (me, _origin(), term, now, now, now + self.ttl, self.name),
                )
            else:  # taken by another process between the read and the write lock
                term = 0
        self.term = term
        if term:
            self._trusted_until = started + _TRUST * self.ttl
        return term != 0

    def held(self) -> bool:
        """Whether this process may still act as the holder, by its own clock (no I/O).

        True from a successful :meth:`acquire` until ``0.9 ttl`` after that call began: no
        other process can have taken the lease before then.
        """
        return (
            self.term != 0 and self._pid == os.getpid() and self.monotonic() < self._trusted_until
        )

    def release(self) -> None:
        """Give the lease up now if held (a clean shutdown): the next poll elsewhere takes it.

        Raises:
            StorageError: the file could not be written (the lease then expires by itself).
        """
        if self.term == 0 or self._pid != os.getpid():
            return
        self.term = 0
        self._trusted_until = -float("inf")
        self.db.execute(
            "UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ?",
            (self.name, self._id),
        )

    def current(self) -> LeaseHolder | None:
        """The stored lease row, or ``None`` if nobody ever held it.

        Raises:
            StorageError: the file could not be read.
        """
        rows = self.db.fetchall(_SELECT, (self.name,))
        return _holder(rows[0]) if rows else None

    def __repr__(self) -> str:
        return f"Lease(name={self.name!r}, ttl={self.ttl:g}, held={self.held()})"


def _holder(row: tuple[Any, ...]) -> LeaseHolder:
    holder, origin, term, acquired, renewed, expires = row
    return LeaseHolder(
        str(holder), str(origin), int(term), float(acquired), float(renewed), float(expires)
    )
