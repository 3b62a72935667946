"""The storage codec: JSON once, AES-GCM with a key, no plaintext in the file."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from paca_otel.alerting._engine import RuleEngine
from paca_otel.config import PacaOtelSettings
from paca_otel.delivery._outbox import Outbox
from paca_otel.errors import ConfigError, StorageError
from paca_otel.pipeline._store import SeriesStore
from paca_otel.rules._rule import Rule
from paca_otel.storage import Codec, open_database

KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
SECRET = "s3cr3t-label-value-7f1e"


def test_plain_codec_round_trips_json_text() -> None:
    """Without a key a payload is compact JSON text and reads back equal."""
    codec = Codec()
    value = {"a": [1, 2.5, None], "b": "ü", "c": {"d": True}}
    stored = codec.encode(value, "t")
    assert stored == '{"a":[1,2.5,null],"b":"\\u00fc","c":{"d":true}}'
    assert codec.decode(stored, "t") == value
    assert codec.index("x") == "x"
    assert not codec.encrypted


def test_encrypted_codec_round_trips_and_hides_the_payload() -> None:
    """With a key the payload is an AES-GCM blob without the plaintext; it reads back equal."""
    codec = Codec(SecretStr(KEY))
    stored = codec.encode({"label": SECRET}, "alerts")
    assert isinstance(stored, bytes)
    assert SECRET.encode() not in stored
    assert codec.encode({"label": SECRET}, "alerts") != stored  # a fresh nonce per row
    assert codec.decode(stored, "alerts") == {"label": SECRET}
    assert codec.index(SECRET) == codec.index(SECRET) != SECRET
    assert SECRET not in codec.index(SECRET)


def test_ciphertext_is_bound_to_its_table() -> None:
    """A row moved to another table does not decrypt (the context is authenticated)."""
    codec = Codec(KEY)
    stored = codec.encode([1], "alerts")
    with pytest.raises(StorageError, match="do not decrypt"):
        codec.decode(stored, "outbox")


def test_wrong_or_missing_key_is_a_clear_error() -> None:
    """Encrypted rows read without the key, or with another, fail naming the setting."""
    stored = Codec(KEY).encode({"x": 1}, "alerts")
    with pytest.raises(StorageError, match="storage_key is not set"):
        Codec().decode(stored, "alerts")
    other = base64.urlsafe_b64encode(os.urandom(32)).decode()
    with pytest.raises(StorageError, match="do not decrypt"):
        Codec(other).decode(stored, "alerts")


def test_plaintext_rows_still_read_after_a_key_is_set() -> None:
    """Rows written before encryption was turned on stay readable."""
    assert Codec(KEY).decode(Codec().encode({"x": 1}, "t"), "t") == {"x": 1}


def test_passphrase_keys_are_stretched_and_short_ones_refused() -> None:
    """A long passphrase works; a short one or an empty key is a ConfigError hiding the value."""
    codec = Codec("correct horse battery staple")
    assert codec.decode(codec.encode("v", "t"), "t") == "v"
    with pytest.raises(ConfigError, match="at least 16") as info:
        Codec("hunter2")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match="empty"):
        Codec("")
    assert "correct" not in repr(codec)


def test_storage_key_setting_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """``PACA_OTEL_STORAGE_KEY`` fills ``storage_key``, which never shows in reprs."""
    monkeypatch.setenv("PACA_OTEL_STORAGE_KEY", KEY)
    settings = PacaOtelSettings()
    assert settings.storage_key is not None
    assert settings.storage_key.get_secret_value() == KEY
    assert KEY not in repr(settings)
    assert Codec.from_settings(settings).encrypted


def test_encrypted_file_holds_no_plaintext(tmp_path: Path) -> None:
    """Alert rows, history, silences and outbox rows with a key: the file bytes hold no secret."""
    path = tmp_path / "enc.sqlite3"
    codec = Codec(KEY)
    db = open_database(path)
    outbox = Outbox(database=db, codec=codec)
    store = SeriesStore()
    engine = RuleEngine(store, outbox=outbox, database=db, codec=codec, clock=lambda: 1000.0)
    db.close()
    engine.add_rule(
        Rule(
            name="leak", condition="x > 1", cooldown=0,
            annotations={"summary": "tenant {{ $labels.tenant }}"},
        )
    )  # fmt: skip
    store.append("x", (("tenant", SECRET),), 5.0, 1000.0)
    events = engine.evaluate_once(1000.0)
    assert [e.labels["tenant"] for e in events] == [SECRET]
    engine.silence({"tenant": SECRET}, duration=60, comment=f"maintenance of {SECRET}")
    outbox.mark_retry(outbox.entries()[0].id, 2000.0, f"HTTP 500 for {SECRET}")
    engine.close()
    outbox.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert SECRET.encode() not in raw
    assert b"maintenance" not in raw
    assert b"tenant" not in raw

    # and it all reads back with the key
    db = open_database(path)
    outbox = Outbox(database=db, codec=codec)
    engine = RuleEngine(SeriesStore(), outbox=outbox, database=db, codec=codec)
    db.close()
    assert [e.labels["tenant"] for e in engine.history()] == [SECRET]
    assert [s.comment for s in engine.silences.all()] == [f"maintenance of {SECRET}"]
    (entry,) = outbox.entries()
    assert entry.notification.events[0].labels["tenant"] == SECRET
    assert entry.last_error == f"HTTP 500 for {SECRET}"
    engine.close()
    outbox.close()
