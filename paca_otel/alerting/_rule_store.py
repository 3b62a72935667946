"""Shared rules: one service's rules in its state file, so every worker evaluates the same set.

A rule added through one worker's API (or ``AlertManager.add_rule``, or ``rules_file``) must
reach the leader, whichever worker that is, and show in every worker's ``GET /rules``. So the
engine writes each change here and re-reads the table when its ``rules`` change counter moved
(:mod:`paca_otel.storage._changes`).

- Writes are queued on the file's writer thread (:meth:`Database.submit`), like silences: a
  rule added on the event loop never waits on the file. Until a write lands, :meth:`load`
  overlays it on what is stored, so a reload in between does not drop the caller's change;
  a write that failed (the file busy for longer than its budget) stays in the overlay and is
  queued again at the next tick (:meth:`RuleStore.retry`).
- A write that stores what is already there changes nothing and bumps no counter: N workers
  adding the same rule from code at start converge on one row without making each other reload.
- Last write wins: a worker that restarts and adds a rule from code replaces an API edit of
  it; a rule removed through the API comes back when code adds it again.
- Each rule keeps its origin: ``file:<absolute path>`` for a rule from a rules file, ``NULL``
  for one from code or the API. A rules file owns its rules: loading it removes the stored
  rules of that origin it no longer has (``AlertingRuntime.load_rules_file``), so a rule
  deleted from the file goes at the next deploy instead of firing on from here. Whoever wrote
  a rule last owns it: an API edit of a file rule makes it the API's, which no file load
  removes. Rows stored before origins existed (schema 1) have none, like API rules.
- Payloads go through the storage codec (JSON, encrypted with ``storage_key``); the name
  column holds the codec's index of the name.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, NamedTuple

from paca_otel._internal import warn_once
from paca_otel.errors import PacaOtelError
from paca_otel.rules._rule import Rule
from paca_otel.storage import Codec, Database
from paca_otel.storage._changes import bump, prepare

__all__ = ["MIGRATIONS", "RULES_TOPIC", "RuleStore", "StoredRule"]

logger = logging.getLogger("paca_otel.alerting")

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS rules (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL
)
"""

# Version 2: where each rule came from (encoded like ``data``: a file path is not secret, but
# with ``storage_key`` nothing about a rule is stored in clear); NULL: code or the API.
_ORIGIN = "ALTER TABLE rules ADD COLUMN origin TEXT"

#: Schema steps of the ``rules`` component (see ``Database.migrate``).
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _ORIGIN)

#: The change topic of the ``rules`` table.
RULES_TOPIC = "rules"

_ORIGIN_CONTEXT = "rules.origin"  # the codec context of the origin column


class StoredRule(NamedTuple):
    """A stored rule and its origin (``file:<path>``; ``None``: code or the API)."""

    rule: Rule
    origin: str | None


def rule_data(rule: Rule) -> dict[str, Any]:
    """A rule's stored form: its fields by their YAML names (``for``), JSON-ready."""
    return rule.model_dump(mode="json", by_alias=True)


class RuleStore:
    """The ``rules`` table of a shared state file.

    Args:
        db: The shared database (a file: in memory there is no one to share with).
        codec: How payloads are stored.

    Raises:
        StorageError: the tables cannot be created.
    """

    def __init__(self, db: Database, codec: Codec) -> None:
        self.db = db
        self.codec = codec
        self._lock = threading.Lock()
        # changes queued on the writer thread, by name (None: a removal), each with its token
        self._pending: dict[str, tuple[object, StoredRule | None]] = {}
        self._failed: set[str] = set()  # names whose write failed, still in the overlay
        db.migrate("rules", MIGRATIONS)
        prepare(db)

    def put_later(self, rule: Rule, origin: str | None = None) -> None:
        """Store ``rule`` from ``origin`` (replacing the one of its name) on the writer thread."""
        self._queue(rule.name, StoredRule(rule, origin))

    def delete_later(self, name: str) -> None:
        """Remove the rule ``name`` on the writer thread."""
        self._queue(name, None)

    def _queue(self, name: str, rule: StoredRule | None) -> None:
        token = object()
        with self._lock:
            self._pending[name] = (token, rule)
            self._failed.discard(name)

        def job() -> None:
            stored = False
            try:
                self._write(name, rule)
                stored = True
            finally:
                with self._lock:
                    if self._pending.get(name, (None,))[0] is token:
                        if stored:
                            del self._pending[name]
                        else:  # kept in the overlay; queued again by retry()
                            self._failed.add(name)

        self.db.submit(job, "rule_write")

    def retry(self) -> None:
        """Queue again the writes that failed (the file was busy for too long)."""
        with self._lock:
            failed = [(name, self._pending[name][1]) for name in self._failed]
            self._failed.clear()
        for name, rule in failed:
            self._queue(name, rule)

    def _write(self, name: str, stored: StoredRule | None) -> None:
        key = self.codec.index(name)
        with self.db.transaction("rule write") as conn:
            row = conn.execute("SELECT data, origin FROM rules WHERE name = ?", (key,)).fetchone()
            if stored is None:
                if row is None:
                    return
                conn.execute("DELETE FROM rules WHERE name = ?", (key,))
            else:
                data = rule_data(stored.rule)
                same = row is not None and self._decoded(row[0]) == data
                if same and self._origin(row[1]) == stored.origin:
                    return  # the same rule: every worker adding it at start converges here
                origin = stored.origin
                conn.execute(
                    "INSERT OR REPLACE INTO rules (name, data, origin) VALUES (?, ?, ?)",
                    (
                        key,
                        self.codec.encode(data, "rules"),
                        None if origin is None else self.codec.encode(origin, _ORIGIN_CONTEXT),
                    ),
                )
            bump(conn, (RULES_TOPIC,))

    def _origin(self, stored: str | bytes | None) -> str | None:
        """A row's origin; one that does not decode counts as none (never removed by a file)."""
        if stored is None:
            return None
        origin = self._decoded(stored, _ORIGIN_CONTEXT)
        return origin if isinstance(origin, str) else None

    def _decoded(self, stored: str | bytes, context: str = "rules") -> Any:
        try:
            return self.codec.decode(stored, context)
        except (PacaOtelError, ValueError):
            return None

    def load(self) -> dict[str, StoredRule]:
        """The stored rules and their origins by name, with this process's queued changes on top.

        A row that does not decode or validate (written by a newer paca-otel, another storage
        key) is skipped with a warning: one bad rule must not stop a worker.

        Raises:
            StorageError: the file cannot be read.
        """
        rows = self.db.fetchall("SELECT data, origin FROM rules ORDER BY rowid")
        rules: dict[str, StoredRule] = {}
        for stored, origin in rows:
            try:
                rule = Rule(**self.codec.decode(stored, "rules"))
            except (PacaOtelError, ValueError, TypeError) as exc:
                warn_once(logger, "stored_rule", "skipping a stored rule that is unusable: %s", exc)
                continue
            rules[rule.name] = StoredRule(rule, self._origin(origin))
        with self._lock:
            pending = dict(self._pending)
        for name, (_, queued) in pending.items():
            if queued is None:
                rules.pop(name, None)
            else:
                rules[name] = queued
        return rules

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until queued writes are stored."""
        return self.db.flush(timeout)
