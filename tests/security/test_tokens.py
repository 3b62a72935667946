"""Tests for API tokens: generation, the api_tokens setting, constant-time verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest

from paca_otel.errors import ConfigError
from paca_otel.security import (
    TOKEN_PREFIX,
    ApiToken,
    Role,
    TokenRegistry,
    generate_token,
    hash_token,
    parse_api_tokens,
)

HASH_A = hash_token("paca_a")
HASH_B = hash_token("paca_b")


def test_generated_tokens_are_prefixed_random_and_long() -> None:
    """paca_ + 43 url-safe characters (256 bits), different every time."""
    tokens = {generate_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert re.fullmatch(r"paca_[A-Za-z0-9_-]{43}", token)
        assert len(token) - len(TOKEN_PREFIX) >= 22  # >= 128 bits in base64


def test_hash_is_sha256_hex() -> None:
    """Settings store the lowercase hex SHA-256 of the token."""
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


def test_round_trip_create_configure_verify() -> None:
    """A token's printed entry, parsed back from settings, verifies that token only."""
    token = generate_token()
    entry = ApiToken("ci-bot", Role.VIEWER, hash_token(token)).entry()
    registry = TokenRegistry(parse_api_tokens(entry))
    found = registry.verify(token)
    assert found is not None
    assert (found.name, found.role) == ("ci-bot", Role.VIEWER)
    assert registry.verify(generate_token()) is None
    assert registry.verify(token + "x") is None
    assert registry.verify("") is None
    assert registry.verify("x" * 10_000) is None


def test_verify_compares_every_entry_with_compare_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verification goes through hmac.compare_digest for every configured hash, no early exit."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    token = generate_token()
    registry = TokenRegistry(
        parse_api_tokens(
            [f"a:admin:{hash_token(token)}", f"b:viewer:{HASH_B}", f"c:viewer:{HASH_A}"]
        )
    )
    assert registry.verify(token) is not None
    assert len(calls) == 3


def test_settings_formats_compact_newlines_and_json() -> None:
    """Comma or newline separated entries, a JSON list of strings or objects, or Python items."""
    expected = (ApiToken("a", Role.ADMIN, HASH_A), ApiToken("b", Role.OPERATOR, HASH_B))
    assert parse_api_tokens(f"a:admin:{HASH_A}, b:operator:{HASH_B.upper()}") == expected
    assert parse_api_tokens(f"a:admin:{HASH_A}\nb:Operator:{HASH_B}\n") == expected
    assert parse_api_tokens(json.dumps([f"a:admin:{HASH_A}", f"b:operator:{HASH_B}"])) == expected
    assert (
        parse_api_tokens(
            json.dumps(
                [
                    {"name": "a", "role": "admin", "sha256": HASH_A},
                    {"name": "b", "role": "operator", "sha256": HASH_B},
                ]
            )
        )
        == expected
    )
    assert parse_api_tokens(list(expected)) == expected
    assert parse_api_tokens("") == ()
    assert parse_api_tokens(None) == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a:admin", r"entry 1 must be name:role:sha256hex .*got 2 field"),
        (f"a:admin:{HASH_A},b:root:{HASH_B}", r"entry 2 role must be one of viewer, operator"),
        ("a:admin:abc123", r"entry 1: the hash must be 64 hexadecimal"),
        (f"bad name:admin:{HASH_A}", r"entry 1: a token name must be 1-64"),
        (f"a:admin:{HASH_A},a:viewer:{HASH_B}", r"entries 1 and 2 are both named 'a'"),
        (f"a:admin:{HASH_A},b:viewer:{HASH_A}", r"entries 1 and 2 have the same hash"),
        ("[not json", r"api_tokens is not valid JSON"),
        ('{"name": "a"}', r"must be name:role:sha256hex"),
        ('[{"name": "a", "role": "admin"}]', r"exactly the keys name, role and sha256"),
        ("[42]", r"entry 1 must be a 'name:role:sha256hex' string or an object, not int"),
    ],
)
def test_settings_errors_name_the_entry(value: str, message: str) -> None:
    """Each malformed setting is a ConfigError naming api_tokens and the entry's position."""
    with pytest.raises(ConfigError, match=message) as info:
        parse_api_tokens(value)
    assert isinstance(info.value, ValueError)
    assert "api_tokens" in str(info.value)


def test_settings_errors_never_echo_a_raw_token() -> None:
    """A raw token pasted into the setting is refused without being repeated anywhere."""
    token = generate_token()
    for value in (
        token,
        f"ci:{token}",
        f"ci:viewer:{token}",
        json.dumps([{"name": "ci", "role": "viewer", "sha256": token}]),
    ):
        with pytest.raises(ConfigError, match="looks like a raw token") as info:
            parse_api_tokens(value)
        assert token not in str(info.value)
        assert token[5:15] not in repr(info.value)
    with pytest.raises(ConfigError) as info:
        parse_api_tokens(f"ci:viewer:{token[5:]}")  # a token without its prefix: bad hash
    assert token[5:] not in str(info.value)


def test_reprs_hold_no_hash_or_token() -> None:
    """ApiToken and TokenRegistry reprs show names and roles only."""
    token = ApiToken("ci", Role.VIEWER, HASH_A)
    registry = TokenRegistry([token])
    assert HASH_A not in repr(token)
    assert HASH_A not in repr(registry)
    assert repr(registry) == "TokenRegistry([ci:viewer])"
    assert len(registry) == 1
