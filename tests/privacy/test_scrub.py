"""Tests for the Scrubber: key and value detection, allow-list, marker, caches, payloads."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paca_otel.errors import ConfigError
from paca_otel.privacy import (
    BUILTIN_DETECTORS,
    DEFAULT_VALUE_PATTERNS,
    REDACTED,
    Scrubber,
    luhn_valid,
)

SECRET = "hunter2-s3cr3t-VALUE"
CARD = "4111 1111 1111 1111"  # Visa's test number: Luhn-valid
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.sig"
BASIC = "Basic " + base64.b64encode(b"bob:" + SECRET.encode()).decode()


@pytest.fixture
def scrubber() -> Scrubber:
    """A scrubber with the default patterns."""
    return Scrubber()


@pytest.mark.parametrize(
    "key",
    [
        "password", "db.PASSWORD", "user_passwd", "client_secret", "access_token", "api_key",
        "X-Api-Key", "apikey", "http.request.header.authorization", "cookie",
        "http.response.header.set-cookie", "session_id", "aws.credentials", "private_key",
        "ssh-private-key",
    ],
)  # fmt: skip
def test_default_key_patterns_match_case_insensitive_substrings(
    scrubber: Scrubber, key: str
) -> None:
    """Each default pattern matches anywhere in a key, whatever its case."""
    assert scrubber.is_sensitive_key(key)
    assert scrubber.scrub_mapping({key: SECRET}) == {key: REDACTED}


@pytest.mark.parametrize("key", ["http.route", "user.id", "url.path", "http.request.method"])
def test_ordinary_keys_are_not_sensitive(scrubber: Scrubber, key: str) -> None:
    """Keys without a sensitive word are left alone."""
    assert not scrubber.is_sensitive_key(key)


def test_sensitive_key_value_replaced_whatever_its_type(scrubber: Scrubber) -> None:
    """A PIN given as a number or a list of tokens is replaced whole."""
    out = scrubber.scrub_mapping({"pin_secret": 1234, "tokens": ("a", "b"), "n": 1})
    assert out == {"pin_secret": REDACTED, "tokens": REDACTED, "n": 1}


def test_clean_mapping_is_returned_as_is(scrubber: Scrubber) -> None:
    """Nothing sensitive: the very same mapping comes back (no copy)."""
    attributes = {"http.route": "/items/{id}", "http.response.status_code": 200}
    assert scrubber.scrub_mapping(attributes) is attributes
    assert not scrubber.needs_scrub(attributes)


def test_allow_list_overrides_key_and_value_patterns() -> None:
    """An allowed key is never scrubbed, neither by key nor by value; matching is exact."""
    scrubber = Scrubber(allow_keys=["session.count", "Notes"])
    out = scrubber.scrub_mapping({"session.count": 3, "notes": CARD, "session.id": "s"})
    assert out == {"session.count": 3, "notes": CARD, "session.id": REDACTED}


def test_default_allow_list_keeps_genai_token_counts(scrubber: Scrubber) -> None:
    """OTel GenAI token counts contain "token" but are not credentials."""
    attributes = {"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3}
    assert scrubber.scrub_mapping(attributes) is attributes


def test_luhn_valid_card_numbers_are_scrubbed_invalid_ones_kept(scrubber: Scrubber) -> None:
    """Card-shaped numbers are scrubbed only when they pass Luhn; order ids survive."""
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert scrubber.scrub_text(f"paid with {CARD} today") == f"paid with {REDACTED} today"
    assert scrubber.scrub_text("card 5500-0000-0000-0004") == f"card {REDACTED}"
    assert scrubber.scrub_text("order 4111111111111112") == "order 4111111111111112"
    assert scrubber.scrub_text("ts=1733000000000000000") == "ts=1733000000000000000"
    assert scrubber.scrub_text("id 123456789012") == "id 123456789012"  # 12 digits: too short


@given(st.integers(min_value=10**12, max_value=10**19 - 1))
def test_card_detector_agrees_with_luhn(number: int) -> None:
    """Any 13-19 digit number is scrubbed exactly when it passes the Luhn check."""
    text = str(number)
    scrubbed = Scrubber().scrub_text(text)
    assert (scrubbed == REDACTED) is luhn_valid(text)
    assert (scrubbed == text) is not luhn_valid(text)


def test_bearer_and_basic_credentials_are_scrubbed(scrubber: Scrubber) -> None:
    """Bearer tokens and Basic user:password payloads are replaced, ordinary words are not."""
    assert scrubber.scrub_text(f"header {BEARER}") == f"header {REDACTED}"
    assert scrubber.scrub_text(f"Authorization: {BASIC}") == f"Authorization: {REDACTED}"
    assert scrubber.scrub_text("the bearer of news") == "the bearer of news"
    assert scrubber.scrub_text("basic settings apply") == "basic settings apply"


def test_key_value_pairs_in_text_are_scrubbed(scrubber: Scrubber) -> None:
    """token=..., "password": "..." and URL query secrets lose their value, keep their key."""
    assert (
        scrubber.scrub_text(f"https://api/x?api_key={SECRET}&page=2")
        == f"https://api/x?api_key={REDACTED}&page=2"
    )
    assert scrubber.scrub_text(f'{{"password": "{SECRET}"}}') == f'{{"password": "{REDACTED}"}}'
    assert scrubber.scrub_text(f"login failed token={SECRET}") == f"login failed token={REDACTED}"
    assert scrubber.scrub_text("http://localhost:8000/?page=2") == "http://localhost:8000/?page=2"


def test_url_credentials_are_scrubbed(scrubber: Scrubber) -> None:
    """The password in scheme://user:password@host is replaced, the rest of the URL kept."""
    assert (
        scrubber.scrub_text(f"postgres://bob:{SECRET}@db:5432/app")
        == f"postgres://bob:{REDACTED}@db:5432/app"
    )


def test_paca_tokens_are_scrubbed_anywhere(scrubber: Scrubber) -> None:
    """A paca-otel API token is recognised by its prefix and shape."""
    token = "paca_" + "x" * 43
    assert scrubber.scrub_text(f"oops {token}") == f"oops {REDACTED}"


def test_custom_patterns_replace_the_defaults() -> None:
    """Each pattern list is settable: custom keys and a custom value regex."""
    scrubber = Scrubber(key_patterns=["ssn"], value_patterns=[r"\b\d{3}-\d{2}-\d{4}\b"])
    assert scrubber.scrub_mapping({"user_ssn": "x", "password": "p"}) == {
        "user_ssn": REDACTED,
        "password": "p",
    }
    assert scrubber.scrub_text("ssn 123-45-6789") == f"ssn {REDACTED}"
    assert scrubber.scrub_text(CARD) == CARD


def test_custom_marker_and_no_value_patterns() -> None:
    """The marker is settable; with no value patterns only keys are scrubbed."""
    scrubber = Scrubber(value_patterns=(), marker="***")
    assert scrubber.scrub_mapping({"token": SECRET, "note": CARD}) == {"token": "***", "note": CARD}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("template", "secret", "other"),
    [
        ("token={}", SECRET, "other-value"),
        ("x Bearer {} y", "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.sig", "0123456789abcdefghij"),
        ("Authorization: Basic {}", _b64(f"bob:{SECRET}"), _b64("eve:another-pass")),
        ("paid {}", CARD, "4000 0000 0000 0002"),
        ("postgres://bob:{}@db", SECRET, "x"),
    ],
)
def test_marker_leaks_no_part_of_the_secret(
    scrubber: Scrubber, template: str, secret: str, other: str
) -> None:
    """No 4-character piece of the secret survives, and the output does not depend on it."""
    out = scrubber.scrub_text(template.format(secret))
    assert REDACTED in out
    assert not [secret[i : i + 4] for i in range(len(secret) - 3) if secret[i : i + 4] in out]
    assert scrubber.scrub_text(template.format(other)) == out


@pytest.mark.parametrize("marker", [r"\g<0>", r"\1", "<<\\>>"])
def test_marker_is_inserted_literally_never_as_a_template(marker: str) -> None:
    """A marker that looks like a regex back-reference does not echo the match."""
    scrubber = Scrubber(marker=marker, value_patterns=[*DEFAULT_VALUE_PATTERNS, r"ssn-\d+"])
    for text in (BEARER, f"postgres://bob:{SECRET}@db", "paca_" + "x" * 43, "ssn-123456"):
        out = scrubber.scrub_text(text)
        assert marker in out
        assert SECRET not in out
        assert "eyJhbGci" not in out
        assert "xxxx" not in out
        assert "123456" not in out


def test_custom_patterns_with_inline_flags_run_alongside_builtins() -> None:
    """A custom regex with its own (?i) flag compiles and runs; built-ins still apply."""
    scrubber = Scrubber(value_patterns=["card_number", r"(?i)internal-[a-z]+"])
    assert scrubber.scrub_text("INTERNAL-abc") == REDACTED
    assert scrubber.scrub_text(f"card {CARD}") == f"card {REDACTED}"
    assert scrubber.scrub_text("plain") == "plain"


def test_bad_pattern_is_a_config_error_naming_the_setting() -> None:
    """An invalid regex fails at set-up with the setting, index and pattern."""
    with pytest.raises(ConfigError, match=r"scrub_key_patterns\[1\].*not a valid"):
        Scrubber(key_patterns=["ok", "bad("])
    with pytest.raises(ConfigError, match=r"scrub_value_patterns\[0\]"):
        Scrubber(value_patterns=["[unclosed"])
    with pytest.raises(ConfigError, match="scrub_marker"):
        Scrubber(marker="")


def test_key_verdicts_are_cached_and_bounded() -> None:
    """Each key is judged once; the cache never grows past its bound."""
    scrubber = Scrubber(cache_size=8)
    calls = 0
    assert scrubber._key_regex is not None
    search = scrubber._key_regex.search

    class Counting:
        def search(self, key: str) -> object:
            nonlocal calls
            calls += 1
            return search(key)

    object.__setattr__(scrubber, "_key_regex", Counting())
    for _ in range(3):
        scrubber.scrub_mapping({"a": 1, "password": 2})
    assert calls == 2
    for i in range(100):
        scrubber.is_sensitive_key(f"k{i}")
    assert len(scrubber._key_verdicts) <= 8


def test_clean_values_are_cached_and_bounded() -> None:
    """A clean string is scanned once, then answered from a bounded cache."""
    scrubber = Scrubber(cache_size=16)
    text = "an ordinary value of some length"
    assert scrubber.scrub_text(text) is text
    assert text in scrubber._clean
    for i in range(100):
        scrubber.scrub_text(f"value {i}")
    assert len(scrubber._clean) <= 16


def test_key_verdicts_are_stable_and_per_scrubber() -> None:
    """A key's verdict never changes within a scrubber; new settings mean a new, empty cache."""
    scrubber = Scrubber()
    verdicts = [scrubber.is_sensitive_key(key) for key in ("x.custom", "db.password") * 3]
    assert verdicts == [False, True] * 3
    assert len(scrubber._key_verdicts) == 2
    stricter = Scrubber(key_patterns=["custom"])
    assert stricter.is_sensitive_key("x.custom")
    assert not stricter.is_sensitive_key("db.password")
    assert not scrubber.is_sensitive_key("x.custom")  # the first scrubber is unaffected


def test_caches_hold_no_value_found_sensitive() -> None:
    """Only values judged clean are cached: a secret is not kept in memory by the scrubber."""
    scrubber = Scrubber()
    scrubber.scrub_mapping({"note": f"token={SECRET}", "card": CARD, "password": SECRET})
    for _ in range(2):  # judged, then answered from the cache
        assert not scrubber.needs_scrub({"url.path": "/items/1", "n": 3, "ok": True})
    assert not any(SECRET in str(value) or "4111" in str(value) for value in scrubber._clean)
    assert {"/items/1", 3, True} <= scrubber._clean


def test_values_need_scrub_judges_and_caches_only_clean_values() -> None:
    """The slow half of needs_scrub: clean values are cached, a secret is reported, not kept."""
    scrubber = Scrubber()
    assert not scrubber.values_need_scrub(["/items/7", 3, ("x", "y"), ["a"], b"raw"])
    _plain_keys, clean = scrubber.known_clean()
    assert {"/items/7", 3, ("x", "y")} <= clean
    assert scrubber.values_need_scrub(["/ok", f"token={SECRET}"])
    assert not any(SECRET in str(value) for value in clean)
    assert not Scrubber(value_patterns=()).values_need_scrub([f"token={SECRET}"])


def test_known_clean_sets_are_live_and_never_replaced() -> None:
    """One known_clean() call serves a whole batch: the sets fill and clear in place."""
    scrubber = Scrubber(cache_size=4)
    plain_keys, clean = scrubber.known_clean()
    for i in range(20):
        assert not scrubber.needs_scrub({f"k{i}": f"v{i}"})
        assert len(plain_keys) <= 4
        assert len(clean) <= 4
    assert scrubber.known_clean()[0] is plain_keys
    assert scrubber.known_clean()[1] is clean
    assert "k19" in plain_keys
    assert "v19" in clean


@pytest.mark.parametrize(
    "attributes",
    [
        {"url.path": "/items/1", "server.port": 8000},
        {"url.path": "/a", "tags": ("x", "y"), "ratio": 0.5},
        {"url.path": "/a", "note": f"api_key={SECRET}"},
        {"url.path": "/a", "list": ["x", f"Bearer {SECRET}-0123456789"]},
        {"session_id": "abc"},
        {},
    ],
)
def test_needs_scrub_agrees_with_scrub_mapping(attributes: dict[str, object]) -> None:
    """The fast test is true exactly when scrubbing changes the mapping, dict or not, twice."""
    from types import MappingProxyType

    scrubber = Scrubber()
    changes = scrubber.scrub_mapping(attributes) is not attributes
    for _ in range(2):  # the second time from the caches
        assert scrubber.needs_scrub(attributes) is changes
        assert scrubber.needs_scrub(MappingProxyType(attributes)) is changes


# Pieces every built-in detector reacts to, and look-alikes: mixed case, Unicode digits and
# whitespace, the long s and dotless i that case-insensitive regexes fold to s and i.
_PIECES = [
    "bearer", "BeArEr", "Bearer ", "basic", "BASIC ", "ba\u017fic ", "bas\u0131c ", "\u2003", " ",
    "\t", "-", "=", ":", "@", "://", "paca_", "4", "1", "7", "\u0663", "\uff14",
    "4111 1111 1111 1111", "5500-0000-0000-0004", "eyJhbGciOiJIUzI1NiJ9.c2Vj", "Ym9iOnB3MTI=",
    "YWxpY2U6c2VjcmV0", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ", "token", "\u00e9", "a", "/",
]  # fmt: skip


def _reference(scrubber: Scrubber, text: str) -> str:
    """``text`` through every configured detector, with no pre-test in front."""
    for _, detect in scrubber._detectors:
        text = detect(text)
    return text


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=14).map("".join) | st.text(max_size=40),
    st.sampled_from([*sorted(BUILTIN_DETECTORS), "defaults"]),
)
def test_candidate_test_never_hides_a_detector_match(text: str, name: str) -> None:
    """The cheap test in front of the detectors lets through every text a detector changes."""
    scrubber = Scrubber(value_patterns=DEFAULT_VALUE_PATTERNS if name == "defaults" else [name])
    assert scrubber.scrub_text(text) == _reference(scrubber, text)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        # the shortest text each detector changes
        ("bearer_credentials", "Bearer " + "a" * 16),
        ("basic_credentials", "Basic YTpiYw"),  # base64 of "a:bc", unpadded
        ("card_number", "4222222222222"),  # 13 digits, Luhn-valid
        ("url_credentials", "s://b:p@h"),
        ("paca_token", "paca_" + "A" * 43),
        ("key_value", "token=x"),
        ("key_value", "token:x"),
        # case and Unicode: the detectors' regexes fold the long s, see Arabic-Indic digits
        ("bearer_credentials", f"header BEARER {SECRET}-0123456789"),
        ("basic_credentials", "ba\u017fic " + base64.b64encode(b"bob:pw12").decode()),
        ("card_number", "card " + "\u0663" * 16),
    ],
)
def test_candidate_test_edge_cases_match_the_detectors(name: str, text: str) -> None:
    """Boundary lengths, upper case and non-ASCII text take the same road as without the test."""
    for patterns in ([name], DEFAULT_VALUE_PATTERNS):
        scrubber = Scrubber(value_patterns=patterns)
        assert scrubber.scrub_text(text) == _reference(scrubber, text)
    assert Scrubber(value_patterns=[name]).scrub_text(text) != text or name == "card_number"


def test_labels_are_scrubbed_and_cached_per_label_set(scrubber: Scrubber) -> None:
    """scrub_labels returns the same object for clean sets and a cached copy for dirty ones."""
    clean = {"route": "/a", "method": "GET"}
    assert scrubber.scrub_labels(clean) is clean
    assert scrubber.scrub_labels(dict(clean)) == clean
    dirty = {"api_key": SECRET, "route": "/a"}
    first = scrubber.scrub_labels(dirty)
    assert first == {"api_key": REDACTED, "route": "/a"}
    assert scrubber.scrub_labels(dict(dirty)) is first
    assert scrubber.scrub_labels({"tags": ["a", f"token={SECRET}"]}) == {
        "tags": ["a", f"token={REDACTED}"]
    }


def test_payload_scrubbing_walks_nested_json(scrubber: Scrubber) -> None:
    """Nested dicts and lists: sensitive keys replaced whole, strings scanned, rest kept."""
    payload = {
        "alert": "HighLatency",
        "labels": {"api_key": SECRET, "env": "prod"},
        "history": [{"credentials": {"user": "bob", "pass": SECRET}}, f"token={SECRET}", 3.5],
        "tuple": (CARD, None, True),
    }
    out = scrubber.scrub_payload(payload)
    assert SECRET not in json.dumps(out)
    assert "4111" not in json.dumps(out)
    assert out == {
        "alert": "HighLatency",
        "labels": {"api_key": REDACTED, "env": "prod"},
        "history": [{"credentials": REDACTED}, f"token={REDACTED}", 3.5],
        "tuple": (REDACTED, None, True),
    }
    assert payload["labels"]["api_key"] == SECRET  # type: ignore[index]  # input untouched
    clean = {"a": [1, {"b": "c"}]}
    assert scrubber.scrub_payload(clean) is clean


def test_payload_depth_and_cycles_are_bounded(scrubber: Scrubber) -> None:
    """A cyclic or absurdly deep payload is cut off with the marker instead of recursing."""
    cyclic: list[object] = []
    cyclic.append(cyclic)
    out = scrubber.scrub_payload(cyclic)
    assert REDACTED in json.dumps(out, default=str) or out is cyclic
    deep: object = "x"
    for _ in range(200):
        deep = {"d": deep}
    assert REDACTED in json.dumps(scrubber.scrub_payload(deep))


def test_repr_shows_no_patterns_cache_or_secret(scrubber: Scrubber) -> None:
    """The scrubber's repr carries counts only, never a value it has seen."""
    scrubber.scrub_mapping({"password": SECRET, "x": "seen-value"})
    assert SECRET not in repr(scrubber)
    assert "seen-value" not in repr(scrubber)


@pytest.mark.parametrize(
    "text",
    [
        "a" * 200_000 + "=",
        "=" + "a-" * 100_000,
        "4" * 200_000,
        "Basic " + "A" * 200_000 + "===",
        "://a:" * 50_000,
    ],
)
def test_hostile_long_inputs_scrub_in_linear_time(scrubber: Scrubber, text: str) -> None:
    """Long runs that would make a careless regex backtrack quadratically finish at once."""
    assert isinstance(scrubber.scrub_text(text), str)
