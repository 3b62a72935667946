"""SQLite files across a real os.fork(): the child opens the parent's file at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from paca_otel.storage import Database, open_database
from tests._fork import run_forked


def test_forked_child_opens_a_file_the_parent_is_writing(tmp_path: Path) -> None:
    """Forks taken while another thread writes: each child opens and writes the same file.

    SQLite's per-process lock bookkeeping must not cross the fork: a child that inherited it
    found the file locked by a connection only the parent had, until its busy budget ran out.
    The parent reconnects after each fork and keeps writing.
    """
    path = tmp_path / "state.db"
    db = open_database(path)
    db.execute("CREATE TABLE t (who TEXT)")
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            with db.transaction() as conn:
                conn.execute("INSERT INTO t VALUES ('parent')")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()

    def child(report_fd: int, go_fd: int) -> dict[str, Any]:
        started = time.monotonic()
        mine = Database(path, retry_for=2.0, open_retry_for=2.0)
        mine.execute("INSERT INTO t VALUES ('child')")
        return {"seconds": time.monotonic() - started, "fresh": mine is not db}

    try:
        reports = []
        for _ in range(5):
            report, code = run_forked(child)
            reports.append(report)
            assert code == 0
            time.sleep(0.02)
    finally:
        stop.set()
        writer.join(5)
    assert all(r["fresh"] for r in reports)
    assert max(r["seconds"] for r in reports) < 1.5, reports
    rows = dict(db.fetchall("SELECT who, count(*) FROM t GROUP BY who"))
    assert rows["child"] == 5
    assert rows["parent"] > 5
    db.close()


def test_forked_child_opens_sqlite_while_the_parent_writes_in_memory() -> None:
    """Forks taken while another thread writes an in-memory database: each child opens one.

    A thread inside SQLite at the fork would leave SQLite's process-wide mutexes held in the
    child, whose first connect would hang; the in-memory database's lock is held across it.
    """
    db = open_database(None)
    db.execute("CREATE TABLE t (n INTEGER)")
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            with db.transaction() as conn:
                conn.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(50)])
                conn.execute("DELETE FROM t WHERE n < 25")
            time.sleep(0)  # let the forking thread take the lock now and then

    writer = threading.Thread(target=write, daemon=True)
    writer.start()

    def child(report_fd: int, go_fd: int) -> dict[str, Any]:
        mine = open_database(None)
        mine.execute("CREATE TABLE t (n INTEGER)")
        inherited = db.fetchall("SELECT count(*) FROM t")[0][0]  # the parent's copy still works
        mine.close()
        return {"inherited_rows": inherited >= 0}

    try:
        for _ in range(15):
            assert run_forked(child) == ({"inherited_rows": True}, 0)
    finally:
        stop.set()
        writer.join(5)
    db.close()
