"""Durable alert state: the engine's alerts, flap entries, silences and history in SQLite.

The rule engine writes through here after every evaluation cycle, so a process that restarts
(a deploy, a crash) picks up pending alerts with their ``for`` timers and firing alerts with the
time they were last notified, instead of re-paging everyone or forgetting a half-elapsed
``for``. Flap entries (an alert's recent state changes, see ``_silences.py``) are kept for the
same reason: a flapping alert stays muted across a restart or a change of leader instead of
starting a new storm, and its "stopped flapping" announcement still comes. With no path the
same code runs on ``:memory:``, so tests and the durable mode share one code path.

The file is the one :mod:`paca_otel.storage` connection of ``state_path`` (the outbox shares
it); payloads go through the storage codec (JSON, encrypted with ``storage_key``). Nothing
here runs under the engine's lock: the engine snapshots what changed and writes it afterwards.

Several workers of one service share the file: one (the leader) writes alerts, flap entries
and history, any may write silences. Each write bumps its topic's change counter (``alerts`` or
``silences``, see :mod:`paca_otel.storage._changes`) in the same transaction, so the other
workers re-read a table only when it changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from paca_otel.rules._models import AlertEvent, AlertState, Severity
from paca_otel.storage import Codec, Database, open_database
from paca_otel.storage._changes import bump, prepare

#: Change topics (see :mod:`paca_otel.storage._changes`): alert rows and history; silences.
ALERTS_TOPIC = "alerts"
SILENCES_TOPIC = "silences"

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL
)
"""

# step 2: the flap detector's entries (payload: times in the window, flag, last event)
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS flaps (
    fingerprint TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    data TEXT NOT NULL
)
"""

#: Schema steps of the ``alert_state`` component (see ``Database.migrate``).
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2)

#: History rows kept on disk; older ones are trimmed on write so the file stays small.
HISTORY_LIMIT = 1_000


@dataclass(slots=True)
class AlertRecord:
    """The mutable state of one alert (one rule x one label set) as the engine tracks it.

    Attributes:
        rule: The rule's name.
        labels: The label set of the series (sorted pairs, hashable), before rule labels.
        fingerprint: Stable id of rule + labels; the primary key on disk.
        state: ``pending`` or ``firing`` while tracked (resolved alerts are dropped).
        active_since: When the condition first held in this episode (Prometheus ``activeAt``);
            the ``for`` timer and the events' ``starts_at``.
        last_true: Last evaluation at which the condition held; ``keep_firing_for`` counts
            from here.
        value: The last value the condition produced (``None`` for no-data alerts).
        last_notified: When a ``firing`` notification last went out; ``None`` while one is
            owed (silenced, flapping or grouped but not yet sent).
        false_since: First evaluation of the current run in which the condition (or, with
            hysteresis, the clear condition) no longer held a firing alert; Prometheus'
            ``KeepFiringSince``.
        fired_at: When it last went from pending to firing (shown by the API).
    """

    rule: str
    labels: tuple[tuple[str, str], ...]
    fingerprint: str
    state: AlertState
    active_since: float
    last_true: float
    value: float | None = None
    last_notified: float | None = None
    false_since: float | None = None
    fired_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored form (JSON-ready), for the ``alerts`` table."""
        return {
            "rule": self.rule,
            "labels": [list(p) for p in self.labels],
            "fingerprint": self.fingerprint,
            "state": self.state.value,
            "active_since": self.active_since,
            "last_true": self.last_true,
            "value": self.value,
            "last_notified": self.last_notified,
            "false_since": self.false_since,
            "fired_at": self.fired_at,
        }

    def to_json(self) -> str:
        """Serialise as JSON text."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AlertRecord:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(
            rule=data["rule"],
            labels=tuple((str(k), str(v)) for k, v in data["labels"]),
            fingerprint=data["fingerprint"],
            state=AlertState(data["state"]),
            active_since=float(data["active_since"]),
            last_true=float(data["last_true"]),
            value=data.get("value"),
            last_notified=data.get("last_notified"),
            false_since=data.get("false_since"),
            fired_at=data.get("fired_at"),
        )


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """A pending or firing alert as the API and dashboard show it.

    ``labels`` are the series labels merged with the rule's; ``silenced_by`` is the id of a
    silence muting it now, if any.
    """

    rule: str
    state: AlertState
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    severity: Severity
    active_since: float
    fired_at: float | None
    last_notified: float | None
    fingerprint: str
    flapping: bool = False
    silenced_by: str | None = None


@dataclass(frozen=True, slots=True)
class SilenceRecord:
    """A silence: label matchers plus a time range; matching alerts are not notified.

    ``matchers`` are ``(name, op, value)`` triples with the store's matcher operators.
    """

    id: str
    matchers: tuple[tuple[str, str, str], ...]
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The stored form (JSON-ready), for the ``silences`` table."""
        return {
            "id": self.id,
            "matchers": [list(m) for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "comment": self.comment,
            "created_by": self.created_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SilenceRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(
            id=data["id"],
            matchers=tuple((str(n), str(o), str(v)) for n, o, v in data["matchers"]),
            starts_at=float(data["starts_at"]),
            ends_at=float(data["ends_at"]),
            comment=data.get("comment", ""),
            created_by=data.get("created_by", ""),
        )


def _event_dict(event: AlertEvent) -> dict[str, Any]:
    """``AlertEvent.to_dict`` without ``dataclasses.asdict``'s deep copies (10x faster)."""
    return {
        "rule": event.rule,
        "state": event.state.value,
        "labels": event.labels,
        "annotations": event.annotations,
        "value": event.value,
        "severity": event.severity.value,
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
        "fingerprint": event.fingerprint,
    }


class StateStore:
    """Alerts, flap entries, silences and event history in SQLite (a file, or ``:memory:``).

    Args:
        path: The SQLite file (``None``: in memory); opened through
            :func:`~paca_otel.storage.open_database`, so the outbox on the same path shares
            the connection.
        database: An open database to use instead of ``path`` (the runtime passes the one it
            shares with the outbox); the store then takes one reference to it.
        codec: How payloads are stored (JSON, encrypted with a key); plain JSON by default.

    Every method is one statement or transaction under the database's lock; call them off the
    engine lock and off the event loop (:meth:`save_silence_later` queues the write instead).

    Raises:
        StorageError: the file cannot be opened or is not a usable SQLite database (the
            message names the path).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        database: Database | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.db = open_database(path) if database is None else database.acquire()
        self.codec = codec or Codec()
        self._closed = False
        #: Whether other processes may share the file (then writes bump change counters).
        self.shared = self.db.shared
        try:
            self.db.migrate("alert_state", MIGRATIONS)
            if self.shared:
                prepare(self.db)
        except BaseException:
            self.db.close()
            raise

    # alerts ---------------------------------------------------------------------------------
    def write_alerts(self, changes: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Upsert alert rows (``fingerprint -> to_dict()``) and delete ``None`` ones, atomically."""
        self._write_by_fingerprint("alerts", changes)

    def save_alerts(self, records: list[AlertRecord], deleted: list[str]) -> None:
        """Upsert ``records`` and delete ``deleted`` fingerprints in one transaction."""
        changes: dict[str, Mapping[str, Any] | None] = dict.fromkeys(deleted)
        changes.update({r.fingerprint: r.to_dict() for r in records})
        self.write_alerts(changes)

    def load_alerts(self) -> list[AlertRecord]:
        """Every alert saved by a previous engine on this file."""
        rows = self.db.fetchall("SELECT data FROM alerts ORDER BY rowid")
        return [AlertRecord.from_dict(self.codec.decode(row[0], "alerts")) for row in rows]

    # flap entries ---------------------------------------------------------------------------
    def write_flaps(self, changes: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Upsert flap entries (``fingerprint -> payload``), delete ``None`` ones, atomically.

        They belong to the alert state the leader writes, so they bump the same change counter
        as alert rows: followers re-read both together.
        """
        self._write_by_fingerprint("flaps", changes)

    def _write_by_fingerprint(
        self, table: str, changes: Mapping[str, Mapping[str, Any] | None]
    ) -> None:
        """Upsert and delete (``None``) rows of ``table`` (``alerts`` or ``flaps``) atomically."""
        if not changes:
            return
        upserts = [
            (fp, self.codec.index(str(data["rule"])), self.codec.encode(dict(data), table))
            for fp, data in changes.items()
            if data is not None
        ]
        deletes = [(fp,) for fp, data in changes.items() if data is None]
        # ``table`` is one of two constants, never input: formatting it into the SQL is safe.
        with self.db.transaction(f"{table} write") as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO {table} (fingerprint, rule, data) VALUES (?, ?, ?)",
                upserts,
            )
            conn.executemany(f"DELETE FROM {table} WHERE fingerprint = ?", deletes)
            if self.shared:
                bump(conn, (ALERTS_TOPIC,))

    def load_flaps(self) -> dict[str, dict[str, Any]]:
        """Every flap entry on file: ``fingerprint -> payload`` as given to :meth:`write_flaps`."""
        rows = self.db.fetchall("SELECT fingerprint, data FROM flaps ORDER BY rowid")
        return {str(row[0]): self.codec.decode(row[1], "flaps") for row in rows}

    # silences -------------------------------------------------------------------------------
    def save_silence(self, silence: SilenceRecord) -> None:
        """Insert or replace one silence."""
        data = self.codec.encode(silence.to_dict(), "silences")
        with self.db.transaction("silence write") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO silences (id, data) VALUES (?, ?)", (silence.id, data)
            )
            if self.shared:
                bump(conn, (SILENCES_TOPIC,))

    def save_silence_later(
        self, silence: SilenceRecord, done: Callable[[bool], None] | None = None
    ) -> None:
        """Queue :meth:`save_silence` on the file's writer thread (callers on the event loop).

        ``done(stored)`` runs on that thread once the write is over, with whether it worked.
        """

        def job() -> None:
            stored = False
            try:
                self.save_silence(silence)
                stored = True
            finally:
                if done is not None:
                    done(stored)

        self.db.submit(job, "silence_write")

    def load_silences(self) -> list[SilenceRecord]:
        """Every silence on file, expired ones included (the engine filters by time)."""
        rows = self.db.fetchall("SELECT data FROM silences ORDER BY rowid")
        return [SilenceRecord.from_dict(self.codec.decode(row[0], "silences")) for row in rows]

    def delete_silences(self, ids: list[str]) -> None:
        """Forget silences (the engine garbage-collects long-expired ones)."""
        if ids:
            with self.db.transaction("silence delete") as conn:
                conn.executemany("DELETE FROM silences WHERE id = ?", [(i,) for i in ids])
                if self.shared:
                    bump(conn, (SILENCES_TOPIC,))

    # history --------------------------------------------------------------------------------
    def append_history(self, events: list[AlertEvent]) -> None:
        """Record transitions, trimming the table to :data:`HISTORY_LIMIT` rows."""
        if not events:
            return
        rows = [(self.codec.encode(_event_dict(e), "history"),) for e in events]
        with self.db.transaction("history write") as conn:
            conn.executemany("INSERT INTO history (data) VALUES (?)", rows)
            conn.execute(
                "DELETE FROM history WHERE seq <= (SELECT MAX(seq) FROM history) - ?",
                (HISTORY_LIMIT,),
            )
            if self.shared:
                bump(conn, (ALERTS_TOPIC,))

    def load_history(self, limit: int) -> list[AlertEvent]:
        """The newest ``limit`` events, oldest first."""
        rows = self.db.fetchall("SELECT data FROM history ORDER BY seq DESC LIMIT ?", (limit,))
        return [
            AlertEvent.from_dict(self.codec.decode(row[0], "history")) for row in reversed(rows)
        ]

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait for queued writes (:meth:`save_silence_later`)."""
        return self.db.flush(timeout)

    def close(self) -> None:
        """Release the connection (the last user of the file closes it)."""
        if not self._closed:
            self._closed = True
            self.db.close()
