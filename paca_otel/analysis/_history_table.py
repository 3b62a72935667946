"""The history's tables in the shared SQLite file: schema, statements and encryption at rest.

:class:`~paca_otel.analysis.history.HistoryStore` decides what to write and when; this module
is the only one that knows the SQL. Everything goes through the storage layer
(:mod:`paca_otel.storage`): the file's one connection and lock, busy handling, the
``history`` schema version, and the :class:`~paca_otel.storage.Codec`.

- ``history_series``: one row per series. ``key`` is the codec's keyed index of name and
  labels (an HMAC when ``storage_key`` is set), ``labels`` the codec's encoding of them
  (encrypted with a key), ``name`` in clear (``names()`` and queries by name need it).
- ``history_chunks``: compressed chunks (:mod:`paca_otel.analysis._chunks`) per series and
  tier (``tier`` is the resolution in ms, 0 for raw). A sensitive series' chunk is the
  codec's AES-GCM ciphertext (bound to this table) of the chunk in base64.
- ``history_progress``: per series and tier, up to where (exclusive, ms) it is rolled up.

A *shared* table (several processes on one file, see :mod:`paca_otel.analysis._history_shared`)
also bumps the ``history`` change counter (:mod:`paca_otel.storage._changes`) in every
transaction that adds or forgets series or writes roll-up progress, so readers reload their
catalog only then.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from paca_otel.storage import Codec, Database
from paca_otel.storage._changes import bump, prepare

__all__ = ["TOPIC", "ChunkRow", "ChunkTable", "SeriesRow", "series_key"]

_COMPONENT = "history"
_MIGRATIONS = [
    """
    CREATE TABLE history_series (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        labels BLOB NOT NULL,
        sensitive INTEGER NOT NULL
    );
    CREATE INDEX history_series_name ON history_series (name);
    CREATE TABLE history_chunks (
        series_id INTEGER NOT NULL,
        tier INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        count INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (series_id, tier, start_ms)
    ) WITHOUT ROWID;
    CREATE INDEX history_chunks_expiry ON history_chunks (tier, end_ms);
    CREATE TABLE history_progress (
        series_id INTEGER NOT NULL,
        tier INTEGER NOT NULL,
        until_ms INTEGER NOT NULL,
        PRIMARY KEY (series_id, tier)
    ) WITHOUT ROWID
    """
]
#: The change counter of a shared file (see :mod:`paca_otel.storage._changes`).
TOPIC = "history"
_CHUNKS = "history_chunks"  # the codec's context (associated data) of encrypted chunks
_SERIES = "history_series"
_ENCRYPTED = b"PE1"

#: ``(key, name, labels, sensitive)`` of a series.
SeriesRow = tuple[str, str, Mapping[str, str], bool]
#: ``(series, tier_ms, start_ms, end_ms, count, chunk)`` of a chunk to write.
ChunkRow = tuple[SeriesRow, int, int, int, int, bytes]


def series_key(codec: Codec, name: str, labels: Mapping[str, str]) -> str:
    """The ``key`` column of a series: its canonical text through the codec's index."""
    return codec.index(json.dumps([name, sorted(labels.items())], separators=(",", ":")))


class ChunkTable:
    """The history tables of one file.

    Args:
        db: The file (from :func:`~paca_otel.storage.open_database`); migrated here.
        codec: Encrypts labels and sensitive chunks.
        shared: Other processes read the file: bump the change counter for them.
    """

    def __init__(self, db: Database, codec: Codec, *, shared: bool = False) -> None:
        self.db = db
        self.codec = codec
        self.shared = shared
        self._ids: dict[str, int] = {}
        self._ids_lock = threading.Lock()
        db.migrate(_COMPONENT, _MIGRATIONS)
        if shared:
            prepare(db)

    def load(
        self, *, ends: bool = True, known: Mapping[str, Mapping[str, str]] | None = None
    ) -> tuple[list[SeriesRow], dict[str, int], dict[str, dict[int, int]]]:
        """Every series, where its raw data ends (ms), and its roll-up progress per tier.

        Args:
            ends: Also read where each series' raw data ends (a scan of the chunks' index).
            known: Labels already decoded, by key (a reader's reload decodes new series only).
        """
        rows = self.db.fetchall("SELECT id, key, name, labels, sensitive FROM history_series")
        end_rows = (
            self.db.fetchall(
                "SELECT series_id, max(end_ms) FROM history_chunks"
                " WHERE tier = 0 GROUP BY series_id"
            )
            if ends
            else []
        )
        progress_rows = self.db.fetchall("SELECT series_id, tier, until_ms FROM history_progress")
        keys = {series_id: key for series_id, key, *_ in rows}
        with self._ids_lock:
            self._ids = {key: series_id for series_id, key in keys.items()}
        known = known or {}
        decode = self.codec.decode
        series = [
            (key, name, known[key] if key in known else decode(labels, _SERIES), bool(sensitive))
            for _, key, name, labels, sensitive in rows
        ]
        progress: dict[str, dict[int, int]] = {}
        for series_id, tier, until in progress_rows:
            if series_id in keys:
                progress.setdefault(keys[series_id], {})[tier] = until
        return series, {keys[i]: end for i, end in end_rows if i in keys}, progress

    def write(
        self, chunks: Sequence[ChunkRow], progress: Sequence[tuple[SeriesRow, int, int]] = ()
    ) -> None:
        """Write chunks (replacing one with the same start) and progress in one transaction."""
        prepared = [
            (series, tier, start, end, count, self._protect(series[3], data))
            for series, tier, start, end, count, data in chunks
        ]
        with self.db.transaction("history write") as conn:
            known = len(self._ids)
            rows = [
                (self._id(conn, series), tier, start, end, count, data)
                for series, tier, start, end, count, data in prepared
            ]
            conn.executemany(
                "INSERT OR REPLACE INTO history_chunks VALUES (?, ?, ?, ?, ?, ?)", rows
            )
            conn.executemany(
                "INSERT OR REPLACE INTO history_progress VALUES (?, ?, ?)",
                [(self._id(conn, series), tier, until) for series, tier, until in progress],
            )
            if self.shared and (progress or len(self._ids) != known):
                bump(conn, [TOPIC])

    def _id(self, conn: Any, series: SeriesRow) -> int:
        key, name, labels, sensitive = series
        found = self._ids.get(key)
        if found is not None:
            return found
        conn.execute(
            "INSERT OR IGNORE INTO history_series (key, name, labels, sensitive)"
            " VALUES (?, ?, ?, ?)",
            (key, name, self.codec.encode(dict(labels), _SERIES), int(sensitive)),
        )
        (series_id,) = conn.execute(
            "SELECT id FROM history_series WHERE key = ?", (key,)
        ).fetchone()
        with self._ids_lock:
            self._ids[key] = int(series_id)
        return int(series_id)

    def read(self, key: str, tier: int, start_ms: int, end_ms: int) -> list[bytes]:
        """Chunks of a series and tier overlapping ``[start_ms, end_ms]``, oldest first."""
        series_id = self._ids.get(key)
        if series_id is None:
            return []
        rows = self.db.fetchall(
            "SELECT data FROM history_chunks WHERE series_id = ? AND tier = ? AND start_ms <= ?"
            " AND end_ms >= ? ORDER BY start_ms",
            (series_id, tier, end_ms, start_ms),
        )
        return [self._reveal(data) for (data,) in rows]

    def expire(self, cutoffs: Sequence[tuple[int, int]]) -> tuple[int, list[str]]:
        """Delete chunks of ``(tier, cutoff_ms)`` ending before the cutoff.

        Returns:
            How many were deleted, and the keys of series that have no chunk left.
        """
        deleted = 0
        with self.db.transaction("history retention") as conn:
            for tier, cutoff in cutoffs:
                deleted += conn.execute(
                    "DELETE FROM history_chunks WHERE tier = ? AND end_ms < ?", (tier, cutoff)
                ).rowcount
            empty = [
                key
                for (key,) in conn.execute(
                    "SELECT key FROM history_series AS s WHERE NOT EXISTS"
                    " (SELECT 1 FROM history_chunks AS c WHERE c.series_id = s.id)"
                )
            ]
        return deleted, empty

    def forget(self, keys: Sequence[str]) -> None:
        """Delete the rows of series that still have no chunk (a writer may have added one)."""
        with self.db.transaction("history retention") as conn:
            for key in keys:
                series_id = self._ids.get(key)
                if series_id is None:
                    continue
                gone = conn.execute(
                    "DELETE FROM history_series WHERE id = ? AND NOT EXISTS"
                    " (SELECT 1 FROM history_chunks WHERE series_id = ?)",
                    (series_id, series_id),
                ).rowcount
                if gone:
                    conn.execute("DELETE FROM history_progress WHERE series_id = ?", (series_id,))
                    with self._ids_lock:
                        del self._ids[key]
                    if self.shared:
                        bump(conn, [TOPIC])

    def _protect(self, sensitive: bool, data: bytes) -> bytes:
        if not sensitive:
            return data
        stored = self.codec.encode(base64.b64encode(data).decode("ascii"), _CHUNKS)
        if not isinstance(stored, bytes):  # pragma: no cover  # the store checks for a key
            msg = "a sensitive history series needs storage_key (PACA_OTEL_STORAGE_KEY)"
            raise TypeError(msg)
        return stored

    def _reveal(self, stored: bytes) -> bytes:
        if stored.startswith(_ENCRYPTED):
            return base64.b64decode(self.codec.decode(stored, _CHUNKS))
        return stored
