"""Change counters: a reader learns which shared topics another writer changed."""

from __future__ import annotations

from pathlib import Path

from paca_otel.storage import open_database
from paca_otel.storage._changes import ChangeWatch, bump, prepare


def test_a_watch_reports_each_bumped_topic_once(tmp_path: Path) -> None:
    """Every topic is new the first time; afterwards only bumped ones are reported."""
    db = open_database(tmp_path / "state.sqlite3")
    try:
        prepare(db)
        prepare(db)  # idempotent: every worker calls it at start
        with db.transaction() as conn:
            bump(conn, ["rules", "silences"])
        watch = ChangeWatch(db)
        first = watch.changed()
        assert first == {"rules": 1, "silences": 1}
        watch.seen(first)
        assert watch.changed() == {}
        with db.transaction() as conn:
            bump(conn, ["rules"])
        assert watch.changed() == {"rules": 2}
        assert watch.changed() == {"rules": 2}  # until seen: a failed reload is retried
    finally:
        db.close()


def test_a_bump_rolled_back_with_its_write_is_not_seen(tmp_path: Path) -> None:
    """The counter moves in the writer's transaction: no change, no counter."""
    db = open_database(tmp_path / "state.sqlite3")
    try:
        prepare(db)
        watch = ChangeWatch(db)
        try:
            with db.transaction() as conn:
                bump(conn, ["rules"])
                raise RuntimeError("the write failed")
        except RuntimeError:
            pass
        assert watch.changed() == {}
        assert db.shared
        memory = open_database(None)
        assert not memory.shared  # nobody else can write: callers skip the counters
        memory.close()
    finally:
        db.close()
