"""The audit log's store: one table through the storage layer, plus one JSON log line per record.

The record itself (:class:`~paca_otel.security.AuditRecord`: token name, role, action, target,
result, status, client, time; never a token) and its JSON line come from
:mod:`paca_otel.security`; this module keeps them. Writes go to the storage layer's writer
thread (:meth:`~paca_otel.storage.Database.submit`), so recording an API access costs the
request one queue put, and old rows are deleted past ``audit_retention`` on the same thread.
Reads (``GET /api/v1/audit``) run in a worker thread after the queue drains.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

from paca_otel._internal import drops, warn_once
from paca_otel.errors import StorageError
from paca_otel.privacy import Scrubber
from paca_otel.security import AUDIT_LOGGER, AuditRecord, render_audit_line
from paca_otel.storage import Database, open_database

__all__ = ["AuditLog", "AuditQuery"]

_logger = logging.getLogger(AUDIT_LOGGER)
_internal = logging.getLogger("paca_otel.web")

_COMPONENT: Final = "audit_log"
_MIGRATIONS: Final = (
    "CREATE TABLE IF NOT EXISTS audit_log ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, token_name TEXT, role TEXT,"
    " action TEXT NOT NULL, target TEXT NOT NULL, result TEXT NOT NULL, status INTEGER,"
    " client TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time)",
)
_PRUNE_EVERY: Final = 300.0  # seconds between retention sweeps
_MAX_PENDING: Final = 10_000  # records queued for the writer before new ones are dropped
MAX_ROWS: Final = 1_000_000
"""Rows kept at most whatever their age: a flood of refused requests cannot fill the disk."""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """A page of the audit log, newest first, optionally filtered."""

    limit: int = 100
    offset: int = 0
    token_name: str | None = None
    action: str | None = None
    result: str | None = None


class AuditLog:
    """Records audit rows into ``state_path`` (or memory) and writes each as a JSON log line.

    Args:
        path: The SQLite file (``None``: a private in-memory database).
        retention: Seconds rows are kept.
        max_rows: Rows kept at most (the oldest go first).
        prune_every: Seconds between sweeps of old rows (on the writer thread).
        scrubber: Cleans the free-text fields (a secret pasted into a rule name).
    """

    def __init__(
        self,
        path: Any,
        *,
        retention: float,
        scrubber: Scrubber | None = None,
        max_rows: int = MAX_ROWS,
        prune_every: float = _PRUNE_EVERY,
    ) -> None:
        self.retention = float(retention)
        self.max_rows = max_rows
        self.prune_every = prune_every
        self.scrubber = scrubber or Scrubber()
        self._db: Database = open_database(path)
        self._db.migrate(_COMPONENT, _MIGRATIONS)
        self._lock = threading.Lock()
        self._pending = 0
        self._last_prune = 0.0

    def __repr__(self) -> str:
        return f"AuditLog(db={self._db!r}, retention={self.retention})"

    def record(self, record: AuditRecord) -> None:
        """Log ``record`` as a JSON line and queue it for the table; never raises."""
        try:
            data = record.to_dict(self.scrubber)
            _logger.info(render_audit_line(record, self.scrubber))
        except Exception:  # auditing must never fail the request it records
            warn_once(_internal, "audit_render", "paca-otel: an audit record could not be built")
            drops.add("audit_record")
            return
        row = (
            record.time, data["token_name"], data["role"], data["action"], data["target"],
            data["result"], data["status"], data["client"],
        )  # fmt: skip
        with self._lock:
            if self._pending >= _MAX_PENDING:
                drops.add("audit_queue_full")
                return
            self._pending += 1
        self._db.submit(lambda: self._write(row), "audit_write")

    def _write(self, row: tuple[Any, ...]) -> None:
        try:
            self._db.execute(
                "INSERT INTO audit_log (time, token_name, role, action, target, result, status,"
                " client) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            now = time.time()
            if now - self._last_prune >= self.prune_every:
                self._last_prune = now
                self._db.execute("DELETE FROM audit_log WHERE time < ?", (now - self.retention,))
                self._db.execute(
                    "DELETE FROM audit_log WHERE id <= (SELECT MAX(id) FROM audit_log) - ?",
                    (self.max_rows,),
                )
        finally:
            with self._lock:
                self._pending -= 1

    def query(self, query: AuditQuery) -> tuple[list[dict[str, Any]], int]:
        """A page of rows (newest first) and the total matching; waits for queued writes.

        Call from a worker thread: it waits for the writer and reads the file.

        Raises:
            StorageError: the file cannot be read.
        """
        self._db.flush(timeout=2.0)
        where: list[str] = ["time >= ?"]
        params: list[Any] = [time.time() - self.retention]
        for column, value in (
            ("token_name", query.token_name),
            ("action", query.action),
            ("result", query.result),
        ):
            if value is not None:
                where.append(f"{column} = ?")  # column names are the fixed ones above
                params.append(value)
        clause = " AND ".join(where)
        (total,) = self._db.fetchall(f"SELECT COUNT(*) FROM audit_log WHERE {clause}", params)[
            0
        ]  # fixed column names, values bound
        rows = self._db.fetchall(
            "SELECT time, token_name, role, action, target, result, status, client"
            f" FROM audit_log WHERE {clause} ORDER BY id DESC LIMIT ? OFFSET ?",  # as above
            [*params, query.limit, query.offset],
        )
        keys = ("time", "token_name", "role", "action", "target", "result", "status", "client")
        return [dict(zip(keys, row, strict=True)) for row in rows], int(total)

    def close(self) -> None:
        """Drain the queue and release the file."""
        try:
            self._db.close()
        except StorageError:
            drops.add("audit_close")
