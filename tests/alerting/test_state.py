"""The alert state store's ``flaps`` table: written, read back, counted, upgraded, encrypted."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from paca_otel.alerting._state import MIGRATIONS, StateStore
from paca_otel.storage import Codec, open_database

ENTRY = {"rule": "HighMem", "times": [1_000.0, 1_015.0], "flapping": True, "last_event": None}


def alerts_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT version FROM changes WHERE topic = 'alerts'").fetchone()
    return int(row[0]) if row else 0


def test_flap_entries_are_upserted_deleted_and_read_back(tmp_path: Path) -> None:
    """Upserts and deletions land in one write; each write moves the alerts change counter."""
    path = tmp_path / "state.sqlite3"
    state = StateStore(path)
    try:
        state.write_flaps({"fp1": ENTRY, "fp2": {**ENTRY, "flapping": False}})
        assert alerts_version(path) == 1
        state.write_flaps({"fp1": None, "fp2": ENTRY})
        assert state.load_flaps() == {"fp2": ENTRY}
        assert alerts_version(path) == 2
        state.write_flaps({})  # nothing owed: no write, no counter move
        assert alerts_version(path) == 2
    finally:
        state.close()


def test_a_schema_1_state_file_gains_the_flaps_table_and_keeps_its_rows(tmp_path: Path) -> None:
    """A file written before flap entries were stored opens at the current version."""
    path = tmp_path / "old.sqlite3"
    old = open_database(path)
    old.migrate("alert_state", MIGRATIONS[:1])
    silence = {"id": "s1", "matchers": [["host", "=", "a"]], "starts_at": 1.0, "ends_at": 2.0}
    old.execute("INSERT INTO silences (id, data) VALUES (?, ?)", ("s1", json.dumps(silence)))
    old.close()
    state = StateStore(path)
    try:
        assert state.db.version("alert_state") == len(MIGRATIONS) == 2
        assert [s.id for s in state.load_silences()] == ["s1"]
        assert state.load_flaps() == {}
        state.write_flaps({"fp1": ENTRY})
        assert state.load_flaps() == {"fp1": ENTRY}
    finally:
        state.close()


def test_with_a_storage_key_flap_entries_are_not_stored_in_clear(tmp_path: Path) -> None:
    """Rule names and label values in a flap entry are encrypted like alert rows."""
    path = tmp_path / "state.sqlite3"
    codec = Codec("a passphrase of 16+ characters")
    state = StateStore(path, codec=codec)
    try:
        state.write_flaps({"fp1": ENTRY})
        ((rule, data),) = state.db.fetchall("SELECT rule, data FROM flaps")
        assert "HighMem" not in rule
        assert isinstance(data, bytes)
        assert b"HighMem" not in data
        assert state.load_flaps() == {"fp1": ENTRY}
    finally:
        state.close()
