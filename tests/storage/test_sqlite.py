"""The one SQLite layer: shared connections, migrations, busy handling, clear errors."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from paca_otel.alerting._state import MIGRATIONS, StateStore
from paca_otel.delivery._outbox import Outbox
from paca_otel.errors import ConfigError, StorageError
from paca_otel.storage import Database, open_database
from tests.peers import ROOT
from tests.storage.faults import FAULTS, broken_state_file


def _holder(path: Path, begin: str = "BEGIN IMMEDIATE") -> sqlite3.Connection:
    """A second, real connection holding the file's write lock until closed/committed."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.execute(begin)
    return conn


def test_one_connection_per_file_shared_by_state_and_outbox(tmp_path: Path) -> None:
    """Alert state and the outbox on one path use one connection, closed by the last user."""
    path = tmp_path / "state.sqlite3"
    state = StateStore(path)
    outbox = Outbox(path)
    assert state.db is open_database(path) is outbox.database
    state.db.close()  # the extra reference taken just above
    state.close()
    assert not outbox.closed
    assert not outbox.database.closed
    db = outbox.database
    outbox.close()
    assert db.closed


def test_memory_databases_are_private() -> None:
    """``None`` and ``:memory:`` give a new database each time (nothing shared by accident)."""
    a, b = open_database(None), open_database(":memory:")
    assert a is not b
    a.close()
    b.close()


def test_migrations_apply_only_missing_steps(tmp_path: Path) -> None:
    """Reopening with one more step runs just that step, and the version is recorded."""
    path = tmp_path / "m.sqlite3"
    ran: list[int] = []
    v1 = "CREATE TABLE t (a INTEGER)"

    def v2(conn: sqlite3.Connection) -> None:
        ran.append(2)
        conn.execute("ALTER TABLE t ADD COLUMN b TEXT")

    db = open_database(path)
    assert db.migrate("demo", [v1]) == 1
    assert db.version("demo") == 1
    db.close()
    db = open_database(path)
    assert db.migrate("demo", [v1, v2]) == 2
    assert db.migrate("demo", [v1, v2]) == 2
    assert ran == [2]
    db.execute("INSERT INTO t (a, b) VALUES (1, 'x')")
    assert db.fetchall("SELECT a, b FROM t") == [(1, "x")]
    assert db.version("other") == 0
    db.close()


def test_newer_schema_is_refused_naming_the_path(tmp_path: Path) -> None:
    """A file written by a newer version fails with a StorageError naming path and versions."""
    path = tmp_path / "new.sqlite3"
    db = open_database(path)
    db.migrate("demo", ["CREATE TABLE a (x)", "CREATE TABLE b (x)"])
    db.close()
    db = open_database(path)
    with pytest.raises(StorageError, match=r"new\.sqlite3.*version 2, newer .* \(1\)"):
        db.migrate("demo", ["CREATE TABLE a (x)"])
    db.close()


def test_write_waits_for_a_busy_file_and_succeeds_when_it_frees(tmp_path: Path) -> None:
    """``database is locked`` past the busy timeout is retried with backoff, not raised."""
    path = tmp_path / "busy.sqlite3"
    db = Database(path, busy_timeout=0.05, retry_for=60.0)
    db.execute("CREATE TABLE t (x)")
    holder = _holder(path)
    done = threading.Event()

    def write() -> None:
        db.execute("INSERT INTO t VALUES (1)")
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert not done.wait(0.3)  # still waiting on the other connection's lock
    holder.execute("COMMIT")
    holder.close()
    writer.join(30)
    assert done.is_set()
    assert db.fetchall("SELECT x FROM t") == [(1,)]
    assert db.errors == 0
    db.close()


def test_busy_beyond_the_budget_is_a_storage_error_naming_the_path(tmp_path: Path) -> None:
    """A lock held longer than the budget gives StorageError (path, cause), counted."""
    path = tmp_path / "held.sqlite3"
    db = Database(path, busy_timeout=0.05, retry_for=0.2)
    db.execute("CREATE TABLE t (x)")
    holder = _holder(path)
    try:
        with (
            pytest.raises(StorageError, match=r"held\.sqlite3.* is locked by another"),
            db.transaction() as conn,
        ):
            conn.execute("INSERT INTO t VALUES (1)")
        assert db.errors == 1
        assert db.fetchall("SELECT COUNT(*) FROM t") == [(0,)]  # WAL: reads go on meanwhile
    finally:
        holder.close()
        db.close()


def test_wal_switch_at_open_is_retried_while_another_connection_holds_the_file(
    tmp_path: Path,
) -> None:
    """``PRAGMA journal_mode=WAL`` on a locked file waits for it instead of failing."""
    path = tmp_path / "open.sqlite3"
    sqlite3.connect(path).close()
    holder = _holder(path, "BEGIN EXCLUSIVE")  # rollback-journal file: blocks the WAL switch
    opened: list[Database] = []
    opener = threading.Thread(target=lambda: opened.append(Database(path, busy_timeout=0.05)))
    opener.start()
    opener.join(0.3)
    assert not opened  # still retrying
    holder.execute("COMMIT")
    holder.close()
    opener.join(30)
    assert opened
    assert opened[0].fetchall("PRAGMA journal_mode") == [("wal",)]
    opened[0].close()


def test_three_processes_open_one_new_file_at_once(tmp_path: Path) -> None:
    """Three workers starting together on one file all open it (no ``database is locked``)."""
    path = tmp_path / "workers.sqlite3"
    code = (
        "import sys\n"
        "from paca_otel.delivery._outbox import Outbox\n"
        "from paca_otel.alerting._state import MIGRATIONS, StateStore\n"
        "sys.stdin.readline()\n"  # start together
        "state = StateStore(sys.argv[1]); outbox = Outbox(sys.argv[1])\n"
        "state.close(); outbox.close(); print('ok')\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(3)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [proc.communicate(timeout=60) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert [out.strip() for out, _ in results] == ["ok", "ok", "ok"]


@pytest.mark.parametrize("fault", FAULTS)
def test_unusable_file_is_a_storage_error_naming_the_path(tmp_path: Path, fault: str) -> None:
    """Garbage, corrupt pages or a read-only file: a ConfigError subclass naming the path."""
    with broken_state_file(tmp_path, fault) as path:
        with pytest.raises(StorageError) as info:
            StateStore(path)
        assert isinstance(info.value, ConfigError)
        assert isinstance(info.value, ValueError)
        assert str(path) in str(info.value)
        assert "state_path" in str(info.value)
        with pytest.raises(StorageError, match=str(path.name)):
            Outbox(path)


def test_writer_thread_runs_jobs_in_order_and_counts_errors(tmp_path: Path) -> None:
    """``submit`` runs jobs off the caller's thread, in order; a StorageError is counted."""
    db = open_database(tmp_path / "w.sqlite3")
    db.execute("CREATE TABLE t (x)")
    callers: list[str] = []

    def job(n: int) -> None:
        callers.append(threading.current_thread().name)
        db.execute("INSERT INTO t VALUES (?)", (n,))

    for n in range(5):
        db.submit(lambda n=n: job(n), "test_insert")  # type: ignore[misc]  # bind n per job

    def failing() -> None:
        raise StorageError("boom at state_path='x'")

    db.submit(failing, "test_fail")
    assert db.flush(10)
    assert db.fetchall("SELECT x FROM t") == [(n,) for n in range(5)]
    assert set(callers) == {"paca-otel-storage"}
    db.close()


def test_closed_database_raises_storage_error(tmp_path: Path) -> None:
    """Using a closed database fails clearly instead of with a raw sqlite3 error."""
    db = open_database(tmp_path / "c.sqlite3")
    db.close()
    with pytest.raises(StorageError, match="closed"):
        db.execute("SELECT 1")


def test_file_from_before_schema_versions_opens_with_its_rows(tmp_path: Path) -> None:
    """A state file written before the storage layer existed is adopted and upgraded."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE alerts (fingerprint TEXT PRIMARY KEY, rule TEXT, data TEXT NOT NULL);"
        "CREATE TABLE silences (id TEXT PRIMARY KEY, data TEXT NOT NULL);"
        "CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);"
    )
    conn.execute(
        "INSERT INTO silences VALUES ('s1', ?)",
        ('{"id":"s1","matchers":[["host","=","a"]],"starts_at":1.0,"ends_at":2.0}',),
    )
    conn.commit()
    conn.close()
    state = StateStore(path)
    assert [s.id for s in state.load_silences()] == ["s1"]
    assert state.db.version("alert_state") == len(MIGRATIONS)
    state.close()
