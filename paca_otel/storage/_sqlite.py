"""The one SQLite layer: one connection per file per process, migrations, busy handling.

Alert state, the notification outbox and, later, the history, audit and lease tables live in
one file (``state_path``). Opening it twice in one process (as the alert state and the outbox
each did) meant two connections with two locks competing for SQLite's write lock; here
:func:`open_database` hands every user of a path the same :class:`Database`, reference-counted.

Why hand-written: the stdlib ``sqlite3`` module is the dependency; what it lacks and this adds
is small and specific to us:

- **Busy handling.** Each connection has a ``busy_timeout``; a statement that still finds the
  file locked (``database is locked``: another process, or a WAL read-to-write upgrade that
  SQLite refuses to wait for) is retried with exponential backoff and full jitter until a
  budget runs out. Opening retries ``PRAGMA journal_mode=WAL`` the same way: three workers
  starting at once on one file used to fail there.
- **Serialised access.** One lock per file, held only around one statement or one
  transaction, never around computation or network I/O. Writes nobody waits for (a silence
  made through the API) go to the file's writer thread via :meth:`Database.submit`, so no
  SQLite work runs on the event loop.
- **Schema versions.** ``schema_versions`` holds one version per component (``alert_state``,
  ``outbox``, ...); :meth:`Database.migrate` applies the missing steps in one transaction and
  refuses a file written by a newer version.
- **Clear errors.** Every ``sqlite3`` error becomes a :class:`~paca_otel.errors.StorageError`
  naming the path and what to do (garbage, corrupt pages, a read-only file or directory).
  Errors are counted in ``paca_otel.storage.errors{operation}``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics

from paca_otel._internal import handle_internal_errors, warn_once
from paca_otel.errors import StorageError

__all__ = ["BUSY_TIMEOUT", "Database", "count_error", "open_database"]

_logger = logging.getLogger("paca_otel.storage")

#: Seconds SQLite's own busy handler waits for a lock before a statement fails.
BUSY_TIMEOUT = 2.0
#: Seconds opening a file keeps retrying while another process holds it (workers starting).
OPEN_RETRY_FOR = 15.0

_registry: dict[str, Database] = {}
_memory: weakref.WeakSet[Database] = weakref.WeakSet()  # private in-memory ones, held at fork
_registry_lock = threading.Lock()
_held: list[Database] = []  # the in-memory databases whose locks a fork in progress holds


def _close_before_fork() -> None:
    """In the parent, just before ``fork()``: close every file's connection (reopened on use).

    SQLite keeps per-process state for each open file (its lock bookkeeping, the WAL index
    mapping), and a child that inherits it cannot safely open the same file again: measured
    under ``gunicorn --preload``, a worker's fresh connection waited out the whole busy budget
    on locks only the parent's connection could release. With the connections closed across
    the fork, the child inherits no SQLite state at all. Each file's lock stays held until the
    fork is done, so no statement runs meanwhile; the parent reconnects on its next statement.

    In-memory databases cannot be closed (their rows would go), but their locks are held across
    the fork too, and none is created meanwhile: so no thread of ours is inside SQLite when the
    process forks. A thread that is holds SQLite's process-wide mutexes (memory, page cache),
    which then stay held in the child: measured, a preforked child's first ``sqlite3.connect``
    hung forever behind the parent's rule engine writing its in-memory state.
    """
    _registry_lock.acquire()
    for db in _registry.values():
        db._suspend_for_fork()
    _held[:] = list(_memory)
    for db in _held:
        db._lock.acquire()


def _after_fork_in_parent() -> None:
    for db in _held:
        db._lock.release()
    _held.clear()
    for db in _registry.values():
        db._lock.release()
    _registry_lock.release()


def _forget_after_fork() -> None:
    # The child opens its own connections; the parent's (closed above) are not reused here.
    global _registry_lock  # noqa: PLW0603  # held across the fork by _close_before_fork
    _registry_lock = threading.Lock()
    _registry.clear()
    for db in _held:  # held by this (the forking) thread: an inherited one stays usable
        db._lock.release()
    _held.clear()


os.register_at_fork(
    before=_close_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_forget_after_fork,
)


def _count(operation: str) -> None:
    """Add one to ``paca_otel.storage.errors`` on the current global provider.

    Looked up per error, not cached: errors are rare, the SDK returns the instrument it already
    has, and a cached one would miss a provider set later.
    """
    metrics.get_meter("paca_otel").create_counter(
        "paca_otel.storage.errors",
        unit="{error}",
        description="Storage operations that failed (busy, read-only, corrupt file).",
    ).add(1, {"operation": operation})


def count_error(operation: str, error: StorageError) -> None:
    """Count a storage error in the self-metric and warn once per operation.

    Running loops (evaluation, delivery) call this instead of raising: the host keeps serving
    and alert state stays in memory until the file is usable again.
    """
    _count(operation)
    warn_once(
        _logger,
        f"storage:{operation}",
        "paca-otel storage error in %s; alert state stays in memory and the host keeps "
        "running (further errors are counted in paca_otel.storage.errors): %s",
        operation,
        error,
    )


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _explain(path: str, exc: sqlite3.Error, what: str) -> str:
    """A message naming the path, the cause and the fix."""
    text = str(exc)
    lower = text.lower()
    if "not a database" in lower or "malformed" in lower or "corrupt" in lower:
        cause = "is not a SQLite database or has corrupt pages"
        fix = "move the file away (it is recreated) or point state_path elsewhere"
    elif "readonly" in lower or "read-only" in lower:
        cause = "is read-only"
        fix = "make the file and its directory writable, or point state_path elsewhere"
    elif "unable to open" in lower:
        cause = "cannot be opened"
        fix = "check that the directory exists and is writable"
    elif _is_busy(exc):
        cause = "is locked by another connection"
        fix = "another process holds a write lock; it is retried"
    else:
        cause = "failed"
        fix = "check the file"
    return f"alert state database at state_path={path!r} {cause} during {what} ({text}): {fix}"


class Database:
    """One SQLite connection to one file, shared by every table's module in this process.

    Use :func:`open_database` rather than the constructor, so one path gets one connection.

    Args:
        path: The file (created if missing), or ``":memory:"`` for a private in-memory one.
        busy_timeout: Seconds SQLite waits for another connection's lock per statement.
        retry_for: Seconds, counted from a statement's first attempt, within which it is retried
            with backoff after ``database is locked`` (SQLite returns that at once, without
            its busy handler, where waiting could deadlock: a WAL read-to-write upgrade, a
            journal-mode switch). The longer of the two is a statement's busy budget.
        open_retry_for: The same budget while opening (WAL switch, migrations).

    Raises:
        StorageError: the file cannot be opened or is not a usable SQLite database.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        retry_for: float = BUSY_TIMEOUT,
        open_retry_for: float = OPEN_RETRY_FOR,
    ) -> None:
        self.path = os.fspath(path)
        self.busy_timeout = float(busy_timeout)
        self.retry_for = float(retry_for)
        self._lock = threading.RLock()
        self._refs = 1
        self._writer: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], str] | threading.Event | None]
        self._jobs = queue.SimpleQueue()
        #: Storage errors seen on this file (also in ``paca_otel.storage.errors``).
        self.errors = 0
        self._conn: sqlite3.Connection | None = None
        self._reconnect = False  # closed across a fork(), reopened on the next statement
        conn = self._connect()
        self._conn = conn
        try:
            if self.path != ":memory:":
                self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL"), "open", open_retry_for)
                conn.execute("PRAGMA synchronous=NORMAL")
                (check,) = self._retry(
                    lambda: conn.execute("PRAGMA quick_check").fetchone(), "open", open_retry_for
                )
                if check != "ok":
                    msg = _explain(self.path, sqlite3.DatabaseError(f"malformed: {check}"), "open")
                    raise StorageError(msg)
                # a write probe: a read-only file or directory fails here, at set-up
                self._retry(lambda: conn.execute("BEGIN IMMEDIATE"), "open", open_retry_for)
                conn.execute("ROLLBACK")
            self._retry(
                lambda: conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_versions ("
                    " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
                ),
                "open",
                open_retry_for,
            )
        except BaseException:
            conn.close()
            self._conn = None
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                self.path,
                check_same_thread=False,  # one lock below serialises every thread's use
                isolation_level=None,  # explicit BEGIN/COMMIT in transaction()
                timeout=self.busy_timeout,
            )
        except sqlite3.Error as exc:
            raise StorageError(_explain(self.path, exc, "open")) from None

    def _suspend_for_fork(self) -> None:
        """Close the connection before a fork, holding the lock until it is done."""
        self._lock.acquire()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._reconnect = True

    # -- statements ----------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None and self._reconnect:
            self._conn = self._connect()  # WAL mode is a property of the file: it stays
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._reconnect = False
        if self._conn is None:
            msg = f"the alert state database at state_path={self.path!r} is closed"
            raise StorageError(msg)
        return self._conn

    def _retry(self, call: Callable[[], Any], what: str, budget: float | None = None) -> Any:
        """Run ``call``, retrying ``database is locked`` with backoff; map errors."""
        end = time.monotonic() + (self.retry_for if budget is None else budget)
        attempt = 0
        while True:
            try:
                return call()
            except sqlite3.Error as exc:
                if _is_busy(exc) and time.monotonic() < end:
                    attempt += 1
                    delay = random.uniform(0.0, min(1.0, 0.02 * 2.0**attempt))  # jitter, not crypto
                    time.sleep(max(0.0, min(delay, end - time.monotonic())))
                    continue
                self.errors += 1
                raise StorageError(_explain(self.path, exc, what)) from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement (autocommit) under the file's lock."""
        with self._lock:
            conn = self._connection()
            return self._retry(lambda: conn.execute(sql, tuple(params)), sql.split(None, 1)[0])  # type: ignore[no-any-return]  # sqlite3 returns Cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many rows (autocommit) under the file's lock."""
        with self._lock:
            conn = self._connection()
            self._retry(lambda: conn.executemany(sql, rows), sql.split(None, 1)[0])

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query, read under the file's lock."""
        with self._lock:
            conn = self._connection()
            return self._retry(  # type: ignore[no-any-return]  # sqlite3 rows are tuples
                lambda: conn.execute(sql, tuple(params)).fetchall(), "SELECT"
            )

    def try_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]] | None:
        """Like :meth:`fetchall`, but ``None`` at once if another thread holds the file's lock.

        For readers that must not wait behind a write stuck on a busy file (a metric callback
        during a scrape): they report their last value instead.
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            conn = self._connection()
            return self._retry(  # type: ignore[no-any-return]  # sqlite3 rows are tuples
                lambda: conn.execute(sql, tuple(params)).fetchall(), "SELECT", 0.0
            )
        finally:
            self._lock.release()

    @contextmanager
    def transaction(self, what: str = "write") -> Iterator[sqlite3.Connection]:
        """Hold the lock for one write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``).

        Statements inside run on the yielded connection; a ``sqlite3`` error inside rolls
        back and becomes a :class:`StorageError`. Keep the body to statements only.
        """
        with self._lock:
            conn = self._connection()
            self._retry(lambda: conn.execute("BEGIN IMMEDIATE"), what)
            try:
                yield conn
            except sqlite3.Error as exc:
                self._rollback(conn)
                self.errors += 1
                raise StorageError(_explain(self.path, exc, what)) from None
            except BaseException:
                self._rollback(conn)
                raise
            self._retry(lambda: conn.execute("COMMIT"), what)

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        # no transaction may be left to roll back (SQLite ends some on the error)
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")

    # -- schema --------------------------------------------------------------------------

    def version(self, component: str) -> int:
        """The schema version of ``component`` in this file (0: never created)."""
        rows = self.fetchall(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        )
        return int(rows[0][0]) if rows else 0

    def migrate(
        self, component: str, steps: Sequence[str | Callable[[sqlite3.Connection], None]]
    ) -> int:
        """Bring ``component``'s tables to version ``len(steps)``; return the version.

        Step ``i`` (1-based) moves the schema from version ``i - 1`` to ``i``: SQL (statements
        separated by ``;``, none inside a literal) or a function given the connection. All
        missing steps run in one transaction, so concurrent openers (workers starting at
        once) apply them once.

        Raises:
            StorageError: the file holds a newer version than this code knows (a downgrade).
        """
        target = len(steps)
        with self.transaction(f"migration of {component}") as conn:
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            ).fetchone()
            current = int(row[0]) if row else 0
            if current > target:
                msg = (
                    f"alert state database at state_path={self.path!r} holds {component} "
                    f"schema version {current}, newer than this paca-otel knows ({target}): "
                    "upgrade paca-otel or point state_path elsewhere"
                )
                raise StorageError(msg)
            for step in steps[current:]:
                if callable(step):
                    step(conn)
                else:
                    for statement in step.split(";"):
                        if statement.strip():
                            conn.execute(statement)
            if current != target:
                conn.execute(
                    "INSERT OR REPLACE INTO schema_versions (component, version) VALUES (?, ?)",
                    (component, target),
                )
        return target

    # -- background writes ---------------------------------------------------------------

    def submit(self, job: Callable[[], None], what: str) -> None:
        """Run ``job`` on this file's writer thread, in submission order; do not wait.

        For writes a caller must not wait on (the event loop): storage errors are counted,
        not raised. :meth:`flush` waits for the queue to drain.
        """
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(
                    target=self._write_loop, name="paca-otel-storage", daemon=True
                )
                self._writer.start()
        self._jobs.put((job, what))

    def _write_loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            job, what = item
            try:
                with handle_internal_errors(f"storage_{what}", _logger):
                    job()
            except StorageError as exc:
                count_error(what, exc)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted job ran; ``False`` if ``timeout`` passed first."""
        writer = self._writer
        if writer is None or not writer.is_alive():
            return True
        done = threading.Event()
        self._jobs.put(done)
        return done.wait(timeout)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        """Whether other processes can open this database too (a file, not ``:memory:``)."""
        return self.path != ":memory:"

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (every user closed it)."""
        return self._conn is None and not self._reconnect

    def acquire(self) -> Database:
        """One more user of this connection (:func:`open_database` calls this)."""
        with self._lock:
            self._refs += 1
        return self

    def close(self) -> None:
        """Release one user; the last one drains the writer and closes the connection."""
        with _registry_lock, self._lock:
            self._refs -= 1
            if self._refs > 0 or self.closed:
                return
            if _registry.get(self.path) is self:
                del _registry[self.path]
        self.flush()
        if self._writer is not None:
            self._jobs.put(None)
        with self._lock:
            self._reconnect = False
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"Database(path={self.path!r})"


def open_database(
    path: str | os.PathLike[str] | None,
    *,
    busy_timeout: float = BUSY_TIMEOUT,
    retry_for: float = BUSY_TIMEOUT,
) -> Database:
    """The process's connection to ``path`` (shared, reference-counted; close it when done).

    ``None`` or ``":memory:"`` gives a new private in-memory database each time.

    Raises:
        StorageError: the file cannot be opened or is not a usable SQLite database.
    """
    if path is None or os.fspath(path) == ":memory:":
        with _registry_lock:  # no connect() under way when a fork starts (see _close_before_fork)
            db = Database(":memory:", busy_timeout=busy_timeout, retry_for=retry_for)
            _memory.add(db)
        return db
    key = os.path.realpath(os.fspath(path))
    with _registry_lock:
        found = _registry.get(key)
        if found is not None and not found.closed:
            return found.acquire()
        db = Database(key, busy_timeout=busy_timeout, retry_for=retry_for)
        _registry[key] = db
        return db
