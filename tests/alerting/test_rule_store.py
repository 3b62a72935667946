"""The shared ``rules`` table: each rule's origin, stored, upgraded from schema 1, encrypted."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from paca_otel.alerting._rule_store import MIGRATIONS, RuleStore, StoredRule, rule_data
from paca_otel.storage import Codec, Database, open_database
from tests.alerting.test_engine import make_rule

ORIGIN = "file:/etc/shop/rules.yaml"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A state file's one connection in this process, closed after the test."""
    database = open_database(tmp_path / "state.sqlite3")
    yield database
    database.close()


def rules_version(path: str) -> int:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT version FROM changes WHERE topic = 'rules'").fetchone()
    return int(row[0]) if row else 0


def test_a_rule_is_stored_with_its_origin_and_read_back_with_it(db: Database) -> None:
    """A file's rule keeps its origin in the file; one from code or the API has none."""
    store = RuleStore(db, Codec())
    store.put_later(make_rule(), ORIGIN)
    store.put_later(make_rule(name="FromApi"))
    assert store.flush()
    assert RuleStore(db, Codec()).load() == {
        "HighMem": StoredRule(make_rule(), ORIGIN),
        "FromApi": StoredRule(make_rule(name="FromApi"), None),
    }


def test_storing_the_same_rule_and_origin_again_bumps_no_counter(db: Database) -> None:
    """Workers loading one file converge; a new origin alone is a change (one write)."""
    store = RuleStore(db, Codec())
    for origin in (ORIGIN, ORIGIN, None, None, ORIGIN):
        store.put_later(make_rule(), origin)
        assert store.flush()
    assert rules_version(db.path) == 3


def test_a_schema_1_file_upgrades_in_place_and_keeps_its_rules(tmp_path: Path) -> None:
    """A rules table without origins gains the column; its rules read back as the API's."""
    path = tmp_path / "old.sqlite3"
    old = open_database(path)
    old.migrate("rules", MIGRATIONS[:1])
    old.execute(
        "INSERT INTO rules (name, data) VALUES (?, ?)",
        ("HighMem", json.dumps(rule_data(make_rule()))),
    )
    old.close()
    db = open_database(path)
    try:
        store = RuleStore(db, Codec())
        assert db.version("rules") == 2
        assert store.load() == {"HighMem": StoredRule(make_rule(), None)}
        store.put_later(make_rule(), ORIGIN)  # the file claims it at its next load
        assert store.flush()
        assert RuleStore(db, Codec()).load()["HighMem"].origin == ORIGIN
    finally:
        db.close()
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(rules)")}
    assert "origin" in columns


def test_with_a_storage_key_the_origin_is_not_stored_in_clear(db: Database) -> None:
    """The origin is encrypted like the rule: the file's path is not in the state file."""
    codec = Codec("a passphrase of 16+ characters")
    store = RuleStore(db, codec)
    store.put_later(make_rule(), ORIGIN)
    assert store.flush()
    (stored,) = db.fetchall("SELECT origin FROM rules")
    assert isinstance(stored[0], bytes)
    assert b"shop" not in stored[0]
    assert RuleStore(db, codec).load()["HighMem"].origin == ORIGIN
