"""Storage: one SQLite layer (``_sqlite.py``) and the codec of stored payloads (``_codec.py``).

Every table paca-otel keeps on disk (alert state, the notification outbox, later the history,
audit and lease tables) goes through here: one connection per file, schema migrations, busy
handling, and encryption at rest with ``storage_key``.
"""

from __future__ import annotations

from paca_otel.errors import StorageError
from paca_otel.storage._codec import Codec
from paca_otel.storage._sqlite import Database, count_error, open_database

__all__ = ["Codec", "Database", "StorageError", "count_error", "open_database"]
