"""Durable alert state: the engine's alerts, silences and history in one SQLite file.

The rule engine writes through here on every transition, so a process that restarts (a deploy,
a crash) picks up pending alerts with their ``for`` timers and firing alerts with the time they
were last notified, instead of re-paging everyone or forgetting a half-elapsed ``for``. With no
path the same code runs on ``:memory:``, so tests and the durable mode share one code path.

Only the stdlib ``sqlite3`` is used, in WAL mode, behind one lock: writes are a handful of rows
per evaluation cycle and happen on the engine's thread, never on a request thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from paca_otel.alerting.models import AlertEvent, AlertState, Severity
from paca_otel.errors import ConfigError

_SCHEMA = """
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
);
"""

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

    def to_json(self) -> str:
        """Serialise for the ``alerts`` table."""
        return json.dumps(
            {
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
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> AlertRecord:
        """Inverse of :meth:`to_json`."""
        data: dict[str, Any] = json.loads(text)
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

    def to_json(self) -> str:
        """Serialise for the ``silences`` table."""
        return json.dumps(
            {
                "id": self.id,
                "matchers": [list(m) for m in self.matchers],
                "starts_at": self.starts_at,
                "ends_at": self.ends_at,
                "comment": self.comment,
                "created_by": self.created_by,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> SilenceRecord:
        """Inverse of :meth:`to_json`."""
        data: dict[str, Any] = json.loads(text)
        return cls(
            id=data["id"],
            matchers=tuple((str(n), str(o), str(v)) for n, o, v in data["matchers"]),
            starts_at=float(data["starts_at"]),
            ends_at=float(data["ends_at"]),
            comment=data.get("comment", ""),
            created_by=data.get("created_by", ""),
        )


def _event_json(event: AlertEvent) -> str:
    """``AlertEvent.to_dict`` without ``dataclasses.asdict``'s deep copies (10x faster)."""
    return json.dumps(
        {
            "rule": event.rule,
            "state": event.state.value,
            "labels": event.labels,
            "annotations": event.annotations,
            "value": event.value,
            "severity": event.severity.value,
            "starts_at": event.starts_at,
            "ends_at": event.ends_at,
            "fingerprint": event.fingerprint,
        },
        separators=(",", ":"),
    )


class StateStore:
    """Alerts, silences and event history in SQLite (a file, or ``:memory:``).

    Every method takes the store's own lock, so the engine thread and API threads can share it.
    The file may be the outbox's too: the tables differ and both use WAL with a busy timeout.

    Raises:
        ConfigError: the file cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        target = ":memory:" if path is None else os.fspath(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                target, check_same_thread=False, isolation_level=None, timeout=10.0
            )
        except sqlite3.Error as exc:
            msg = f"cannot open the alert state database at state_path={target!r}: {exc}"
            raise ConfigError(msg) from None
        if target != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # alerts ---------------------------------------------------------------------------------
    def save_alerts(self, records: list[AlertRecord], deleted: list[str]) -> None:
        """Upsert ``records`` and delete ``deleted`` fingerprints in one transaction."""
        if not records and not deleted:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO alerts (fingerprint, rule, data) VALUES (?, ?, ?)",
                    [(r.fingerprint, r.rule, r.to_json()) for r in records],
                )
                self._db.executemany(
                    "DELETE FROM alerts WHERE fingerprint = ?", [(fp,) for fp in deleted]
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def load_alerts(self) -> list[AlertRecord]:
        """Every alert saved by a previous engine on this file."""
        with self._lock:
            rows = self._db.execute("SELECT data FROM alerts ORDER BY rowid").fetchall()
        return [AlertRecord.from_json(row[0]) for row in rows]

    # silences -------------------------------------------------------------------------------
    def save_silence(self, silence: SilenceRecord) -> None:
        """Insert or replace one silence."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO silences (id, data) VALUES (?, ?)",
                (silence.id, silence.to_json()),
            )

    def load_silences(self) -> list[SilenceRecord]:
        """Every silence on file, expired ones included (the engine filters by time)."""
        with self._lock:
            rows = self._db.execute("SELECT data FROM silences ORDER BY rowid").fetchall()
        return [SilenceRecord.from_json(row[0]) for row in rows]

    def delete_silences(self, ids: list[str]) -> None:
        """Forget silences (the engine garbage-collects long-expired ones)."""
        if not ids:
            return
        with self._lock:
            self._db.executemany("DELETE FROM silences WHERE id = ?", [(i,) for i in ids])

    # history --------------------------------------------------------------------------------
    def append_history(self, events: list[AlertEvent]) -> None:
        """Record transitions, trimming the table to :data:`HISTORY_LIMIT` rows."""
        if not events:
            return
        with self._lock:
            self._db.executemany(
                "INSERT INTO history (data) VALUES (?)",
                [(_event_json(e),) for e in events],
            )
            self._db.execute(
                "DELETE FROM history WHERE seq <= (SELECT MAX(seq) FROM history) - ?",
                (HISTORY_LIMIT,),
            )

    def load_history(self, limit: int) -> list[AlertEvent]:
        """The newest ``limit`` events, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM history ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [AlertEvent.from_dict(json.loads(row[0])) for row in reversed(rows)]

    def close(self) -> None:
        """Close the connection; the engine calls this from ``close()``."""
        with self._lock:
            self._db.close()
