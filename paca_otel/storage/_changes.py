"""Change counters: how a process notices that another one changed shared rows, in one read.

Workers of one service share the alert state file (rules, silences, alert records). Each
re-reads a table only when it changed: every write transaction that changes a *topic*
(``rules``, ``silences``, ``alerts``) bumps that topic's counter in the ``changes`` table, and
a :class:`ChangeWatch` compares the counters with the ones it saw last. One small ``SELECT``
per evaluation tick replaces a full reload.

Why not ``PRAGMA data_version``: it moves on *any* commit of another connection, and the leader
renews its lease (a commit) every few hundred milliseconds, so every follower would reload
everything on every tick.

With an in-memory database nobody else can write, so callers skip the counters there
(:attr:`Database.shared` is ``False``): no cost for a single process without a state file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from paca_otel.storage._sqlite import Database

__all__ = ["MIGRATIONS", "ChangeWatch", "bump", "prepare"]

_SCHEMA_V1 = "CREATE TABLE IF NOT EXISTS changes (topic TEXT PRIMARY KEY, version INTEGER NOT NULL)"

#: Schema steps of the ``changes`` component (see ``Database.migrate``).
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1,)


def prepare(db: Database) -> None:
    """Create the ``changes`` table in ``db`` if it is missing (idempotent, any process)."""
    db.migrate("changes", MIGRATIONS)


def bump(conn: sqlite3.Connection, topics: Iterable[str]) -> None:
    """Add one to each topic's counter, inside the caller's write transaction.

    Bumping in the writer's own transaction makes the change and its counter visible together:
    a reader that sees the new counter also sees the rows.
    """
    conn.executemany(
        "INSERT INTO changes (topic, version) VALUES (?, 1)"
        " ON CONFLICT (topic) DO UPDATE SET version = version + 1",
        [(topic,) for topic in topics],
    )


class ChangeWatch:
    """The counters one reader saw last, to tell which topics changed since.

    Args:
        db: The shared database (its ``changes`` table must exist: :func:`prepare`).

    A reader calls :meth:`changed` *before* re-reading a topic's rows and :meth:`seen` once
    it has them: a write landing in between is then read twice, never missed.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._seen: dict[str, int] = {}

    def changed(self) -> dict[str, int]:
        """Topics whose counter moved since :meth:`seen` (all, the first time), with it.

        Raises:
            StorageError: the file cannot be read.
        """
        rows = self.db.fetchall("SELECT topic, version FROM changes")
        return {str(t): int(v) for t, v in rows if self._seen.get(str(t)) != int(v)}

    def seen(self, versions: dict[str, int]) -> None:
        """Record ``versions`` (from :meth:`changed`) as read."""
        self._seen.update(versions)
