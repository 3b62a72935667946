"""The scrubber: decides which keys and values are sensitive and replaces them with a marker.

One :class:`Scrubber` is built at set-up from the privacy settings and shared by every surface
(span exporter, log filter and processor, metric labels, JSON payloads). Everything that can be
decided once is decided in ``__init__``: the key patterns become one case-insensitive regex, the
value detectors one list of compiled regexes. Keys repeat endlessly (the same dozen attribute
names on every span), so each key's verdict is cached in a bounded dict; string values that were
found clean are cached in a bounded set, so a value seen before costs one set lookup. Caches are
cleared wholesale when full: simpler than LRU, bounded, and a working set refills in a moment.
Only values judged clean are cached, so the scrubber keeps no secret alive. A value not seen
before meets a cheap test first (substring tests, no regex) that every built-in detector's match
implies; only the few that pass it reach the detectors' regexes.

Every ``scrub_*`` method returns the very object it was given when nothing matched, so callers
copy only when a secret was found (the common case costs lookups, not allocations).

Hand-written because no maintained library does key + value scrubbing of OTel attribute
mappings with these detectors: Sentry's ``EventScrubber`` works on Sentry events only, Logfire's
scrubber is internal to Logfire, and Presidio is an NLP engine far too heavy for a span path.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

from paca_otel.errors import ConfigError
from paca_otel.privacy._candidate import candidate_test

__all__ = [
    "BUILTIN_DETECTORS",
    "DEFAULT_ALLOW_KEYS",
    "DEFAULT_KEY_PATTERNS",
    "DEFAULT_VALUE_PATTERNS",
    "REDACTED",
    "Scrubber",
    "luhn_valid",
]

REDACTED: Final = "[REDACTED]"

DEFAULT_KEY_PATTERNS: Final[tuple[str, ...]] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api[-_]?key",
    "authorization",
    "cookie",
    "set-cookie",
    "session",
    "credential",
    "private[-_]?key",
)
"""Matched case-insensitively anywhere in a key (``http.request.header.authorization``)."""

BUILTIN_DETECTORS: Final[frozenset[str]] = frozenset(
    {
        "card_number",
        "bearer_credentials",
        "basic_credentials",
        "key_value",
        "url_credentials",
        "paca_token",
    }
)
"""Names accepted in ``value_patterns`` besides regular expressions.

- ``card_number``: 13-19 digits, optionally grouped by spaces or dashes, that pass the Luhn
  check (so order ids and timestamps are left alone).
- ``bearer_credentials``: ``Bearer <token>`` with a token of 16 or more token68 characters.
- ``basic_credentials``: ``Basic <base64>`` whose payload decodes to ``user:password``.
- ``key_value``: ``key=value`` / ``key: value`` inside free text (URLs, messages) whose key is
  sensitive by the key patterns; only the value part (up to the next space, ``&``, ``;``,
  ``,``, ``?`` or ``#``, or the closing quote) is replaced.
- ``url_credentials``: the password in ``scheme://user:password@host``.
- ``paca_token``: a paca-otel API token (``paca_`` + 43 url-safe characters) anywhere.
"""

DEFAULT_VALUE_PATTERNS: Final[tuple[str, ...]] = (
    "card_number",
    "bearer_credentials",
    "basic_credentials",
    "key_value",
    "url_credentials",
    "paca_token",
)

DEFAULT_ALLOW_KEYS: Final[tuple[str, ...]] = (
    # OTel GenAI semantic conventions: token *counts*, not credentials.
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.request.max_tokens",
    # paca-otel's audit records name the token used; the name is not the token.
    "token_name",
)
"""Keys never scrubbed (exact names, case-insensitive), neither by key nor by value."""

_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_BEARER = re.compile(r"\b(?i:bearer)\s+[A-Za-z0-9\-._~+/]{16,}=*")
_BASIC = re.compile(r"\b(?i:basic)\s+([A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])")
_URL_USERINFO = re.compile(r"(://[^/@\s:]*:)[^/@\s]+@")
_PACA_TOKEN = re.compile(r"paca_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
# A key, a separator, then a quoted value or one run without separators. The key is judged by
# the key patterns (through the verdict cache), so this stays one simple regex. The lookbehind
# starts a key only at the start of a word: without it a long run of word characters would be
# retried from every position (quadratic time on hostile input).
_KEY_VALUE = re.compile(
    r"""(?<![A-Za-z0-9_.\-])(?P<key>[A-Za-z0-9_.\-]+)(?P<sep>["']?\s*[=:]\s*)(?P<value>"[^"]*"|'[^']*'|[^\s&;,"'?#]+)"""
)

_SCAN, _SENSITIVE, _ALLOWED = 0, 1, 2
_SCALARS: Final = frozenset({int, float, bool})  # attribute values never scanned
_MAX_DEPTH: Final = 64  # payload nesting beyond this is replaced: no real payload is that deep


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum every payment card number carries.

    Used so that only card-shaped numbers that could be real cards are scrubbed: about one
    random 16-digit number in ten passes, a real card number always does.
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def _compile(setting: str, index: int, pattern: str, flags: int = 0) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        msg = f"{setting}[{index}] must be a non-empty string (a regular expression)"
        raise ConfigError(msg)
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        msg = f"{setting}[{index}] = {pattern!r} is not a valid regular expression: {exc}"
        raise ConfigError(msg) from None


class Scrubber:
    """Replaces sensitive keys' values and secret-shaped values with :data:`REDACTED`.

    Args:
        key_patterns: Regular expressions searched case-insensitively in each key; a match
            makes the key sensitive and its whole value is replaced.
        value_patterns: Names from :data:`BUILTIN_DETECTORS` or regular expressions; every
            match inside a string value is replaced (built-ins validate their match first).
        allow_keys: Exact keys (case-insensitive) never scrubbed, by key or by value.
        marker: The replacement. It is a constant, so it never echoes any part of a secret.
        cache_size: Bound of each cache (key verdicts, clean values, label sets).

    Raises:
        ConfigError: A pattern is not a valid regular expression, or the marker is empty.
    """

    __slots__ = (
        "_allow",
        "_cache_size",
        "_candidate",
        "_clean",
        "_custom",
        "_detectors",
        "_key_regex",
        "_key_verdicts",
        "_label_cache",
        "_plain_keys",
        "key_patterns",
        "marker",
        "value_patterns",
    )

    def __init__(
        self,
        *,
        key_patterns: Iterable[str] = DEFAULT_KEY_PATTERNS,
        value_patterns: Iterable[str] = DEFAULT_VALUE_PATTERNS,
        allow_keys: Iterable[str] = DEFAULT_ALLOW_KEYS,
        marker: str = REDACTED,
        cache_size: int = 4096,
    ) -> None:
        if not isinstance(marker, str) or not marker:
            msg = "scrub_marker must be a non-empty string, e.g. '[REDACTED]'"
            raise ConfigError(msg)
        if cache_size < 1:
            msg = f"scrub cache_size must be at least 1, got {cache_size}"
            raise ConfigError(msg)
        self.key_patterns = tuple(key_patterns)
        self.value_patterns = tuple(value_patterns)
        self.marker = marker
        self._cache_size = cache_size
        self._allow = frozenset(key.lower() for key in allow_keys)
        compiled = [
            _compile("scrub_key_patterns", i, p, re.IGNORECASE)
            for i, p in enumerate(self.key_patterns)
        ]
        self._key_regex: re.Pattern[str] | None = (
            re.compile("|".join(f"(?:{c.pattern})" for c in compiled), re.IGNORECASE)
            if compiled
            else None
        )
        # (built-in?, detector) in the configured order
        self._detectors: tuple[tuple[bool, Callable[[str], str]], ...] = tuple(
            (p in BUILTIN_DETECTORS, self._detector(i, p))
            for i, p in enumerate(self.value_patterns)
        )
        self._custom = any(not builtin for builtin, _ in self._detectors)
        # One cheap test that every built-in detector's match implies: most clean strings stop
        # here, without a regex. Custom regexes always run.
        self._candidate: Callable[[str], bool] | None = candidate_test(
            frozenset(p for p in self.value_patterns if p in BUILTIN_DETECTORS)
        )
        self._key_verdicts: dict[str, int] = {}
        self._plain_keys: set[str] = set()
        # strings found clean, and other attribute values (numbers...) that are never scanned
        self._clean: set[object] = set()
        # label set -> its scrubbed copy, or None when it was clean
        self._label_cache: dict[tuple[tuple[str, object], ...], Mapping[str, object] | None] = {}

    def __repr__(self) -> str:
        return (
            f"Scrubber(key_patterns={len(self.key_patterns)}, "
            f"value_patterns={len(self.value_patterns)}, allow_keys={len(self._allow)}, "
            f"marker={self.marker!r})"
        )

    # -- set-up -----------------------------------------------------------------------------

    def _detector(self, index: int, pattern: str) -> Callable[[str], str]:
        marker = self.marker

        # Replacements are functions, never templates: a marker such as r"\g<0>" must come
        # out literally, not echo the match.
        def constant(match: re.Match[str]) -> str:
            return marker

        if pattern == "card_number":

            def card(match: re.Match[str]) -> str:
                digits = match.group().replace(" ", "").replace("-", "")
                return marker if luhn_valid(digits) else match.group()

            return lambda text: _CARD.sub(card, text)
        if pattern == "bearer_credentials":
            return lambda text: _BEARER.sub(constant, text)
        if pattern == "basic_credentials":

            def basic(match: re.Match[str]) -> str:
                return marker if _is_basic_payload(match.group(1)) else match.group()

            return lambda text: _BASIC.sub(basic, text)
        if pattern == "url_credentials":

            def userinfo(match: re.Match[str]) -> str:
                return f"{match.group(1)}{marker}@"

            return lambda text: _URL_USERINFO.sub(userinfo, text) if "@" in text else text
        if pattern == "paca_token":
            return lambda text: _PACA_TOKEN.sub(constant, text)
        if pattern == "key_value":

            def key_value(match: re.Match[str]) -> str:
                if self._verdict(match.group("key")) != _SENSITIVE:
                    return match.group()
                value = match.group("value")
                quote = value[0] if value[0] in "\"'" else ""
                return f"{match.group('key')}{match.group('sep')}{quote}{marker}{quote}"

            return lambda text: (
                _KEY_VALUE.sub(key_value, text) if ("=" in text or ":" in text) else text
            )
        regex = _compile("scrub_value_patterns", index, pattern)
        return lambda text: regex.sub(constant, text)

    # -- keys -------------------------------------------------------------------------------

    def _verdict(self, key: str) -> int:
        verdict = self._key_verdicts.get(key)
        if verdict is not None:
            return verdict
        if key.lower() in self._allow:
            verdict = _ALLOWED
        elif self._key_regex is not None and self._key_regex.search(key):
            verdict = _SENSITIVE
        else:
            verdict = _SCAN
        if len(self._key_verdicts) >= self._cache_size:
            self._key_verdicts.clear()
            self._plain_keys.clear()
        self._key_verdicts[key] = verdict
        if verdict == _SCAN:
            self._plain_keys.add(key)
        return verdict

    def is_sensitive_key(self, key: str) -> bool:
        """Whether ``key`` matches a key pattern and is not on the allow-list."""
        return self._verdict(key) == _SENSITIVE

    def known_clean(self) -> tuple[set[str], set[object]]:
        """The live caches behind the fast path: keys known plain, values known clean.

        For a caller with a loop of its own (the span exporter's batch): a mapping whose keys
        are all in the first set and whose values are all in the second needs no scrubbing, by
        key or by value; anything else goes through :meth:`needs_scrub`, which fills the
        caches. The sets are updated in place (and cleared when full), never replaced, so one
        call serves a whole batch. Read them, never change them. Neither holds a value found
        sensitive.
        """
        return self._plain_keys, self._clean

    # -- values -----------------------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        """``text`` with every value-pattern match replaced; ``text`` itself when clean."""
        if text in self._clean or not self._detectors:
            return text
        builtin = self._candidate is not None and self._candidate(text)
        if not builtin and not self._custom:
            clean = self._clean  # self._remember(text), inlined: the common case, per new value
            if len(clean) >= self._cache_size:
                clean.clear()
            clean.add(text)
            return text
        result = text
        for is_builtin, detect in self._detectors:
            if builtin or not is_builtin:
                result = detect(result)
        if result == text:
            self._remember(text)
            return text
        return result

    def scrub_value(self, value: object) -> object:
        """A string or a sequence of strings with secrets replaced; other values unchanged.

        Returns ``value`` itself when nothing matched.
        """
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, tuple | list) and value:
            items = [self.scrub_value(item) for item in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                return type(value)(items)
        return value

    # -- mappings ---------------------------------------------------------------------------

    def needs_scrub(self, attributes: Mapping[str, object], *, values: bool = True) -> bool:
        """Cheap test whether :meth:`scrub_mapping` could change ``attributes``.

        The fast path of the span exporter: when every key is a known plain key and every
        value a known clean one, this is two C-level set passes (give it a ``dict``: a
        ``dict``'s values are read in C, other mappings' one ``__getitem__`` at a time).

        Args:
            attributes: The mapping to test.
            values: Whether value patterns apply too (else keys only).
        """
        if not self._plain_keys.issuperset(attributes) and any(
            self._verdict(key) != _SCAN for key in attributes
        ):
            return True
        if not values or not self._detectors:
            return False
        seen = attributes.values() if type(attributes) is dict else list(attributes.values())
        try:
            if self._clean.issuperset(seen):  # one C-level pass: all seen before and clean
                return False
        except TypeError:  # an unhashable value (a list): judged one by one below
            pass
        return self.values_need_scrub(seen)

    def values_need_scrub(self, values: Collection[object]) -> bool:
        """Whether value patterns would change any of ``values``; those found clean are cached.

        The slow half of :meth:`needs_scrub`, for a caller that has already found some value
        not known clean (the span exporter's batch loop): values in the clean cache are skipped
        one by one, the others judged.
        """
        if not self._detectors:
            return False
        clean = self._clean
        for value in values:
            try:
                if value in clean:
                    continue
            except TypeError:  # an unhashable value (a list): judged below
                pass
            if type(value) in _SCALARS:  # never scanned, so clean
                self._remember(value)
            elif isinstance(value, str):
                if self.scrub_text(value) is not value:  # remembered when clean
                    return True
            elif isinstance(value, tuple | list):
                if self.scrub_value(value) is not value:
                    return True
                if isinstance(value, tuple):
                    self._remember(value)
            else:  # other objects (bytes...): never scanned either
                self._remember(value)
        return False

    def _remember(self, value: object) -> None:
        clean = self._clean
        if len(clean) >= self._cache_size:
            clean.clear()
        try:  # noqa: SIM105  # contextlib.suppress costs two Python calls, on the hot path
            clean.add(value)
        except TypeError:  # unhashable: simply not cached
            pass

    def scrub_mapping(
        self, attributes: Mapping[str, object], *, values: bool = True
    ) -> Mapping[str, object]:
        """A flat mapping (span or log attributes) scrubbed by key and by value.

        Returns ``attributes`` itself when nothing matched, else a new ``dict`` in the same
        order. A sensitive key's value is replaced whatever its type.

        Args:
            attributes: The mapping to scrub.
            values: Whether value patterns apply too (else keys only).
        """
        changed: dict[str, object] | None = None
        for key, value in attributes.items():
            verdict = self._verdict(key)
            if verdict == _ALLOWED:
                continue
            new: object
            if verdict == _SENSITIVE:
                new = self.marker
            elif values:
                new = self.scrub_value(value)
            else:
                continue
            if new is not value:
                if changed is None:
                    changed = {}
                changed[key] = new
        if changed is None:
            return attributes
        return {key: changed.get(key, value) for key, value in attributes.items()}

    def scrub_labels(self, labels: Mapping[str, object]) -> Mapping[str, object]:
        """Metric labels scrubbed, with the result cached per label set.

        Label sets repeat on every recording, so after the first sighting this is one tuple
        and one dict lookup. Returns ``labels`` itself when nothing matched.
        """
        try:
            cache_key = tuple(labels.items())
            cached = self._label_cache[cache_key]
        except KeyError:
            pass  # first sighting of this label set
        except TypeError:  # an unhashable value (a list): scrub without caching
            return self.scrub_mapping(labels)
        else:
            return labels if cached is None else cached
        result = self.scrub_mapping(labels)
        if len(self._label_cache) >= self._cache_size:
            self._label_cache.clear()
        self._label_cache[cache_key] = None if result is labels else result
        return result

    def scrub_payload(self, payload: object) -> object:
        """A JSON-like value (dicts, lists, tuples, strings, scalars) scrubbed recursively.

        A sensitive key's value is replaced whole, even when it is a nested object. Other
        objects are returned unchanged. Nesting deeper than 64 levels (or a cycle) is replaced
        by the marker, so a hostile payload cannot exhaust the stack. Returns ``payload``
        itself when nothing matched.
        """
        return self._payload(payload, 0)

    def _payload(self, value: object, depth: int) -> object:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, Mapping):
            if depth >= _MAX_DEPTH:
                return self.marker
            changed = False
            out: dict[object, object] = {}
            for key, item in value.items():
                verdict = self._verdict(key) if isinstance(key, str) else _SCAN
                if verdict == _ALLOWED:
                    new = item
                elif verdict == _SENSITIVE:
                    new = self.marker
                else:
                    new = self._payload(item, depth + 1)
                changed = changed or new is not item
                out[key] = new
            return out if changed else value
        if isinstance(value, list | tuple):
            if depth >= _MAX_DEPTH:
                return self.marker
            items = [self._payload(item, depth + 1) for item in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                return type(value)(items) if isinstance(value, tuple) else items
            return value
        return value


def _is_basic_payload(encoded: str) -> bool:
    """Whether ``encoded`` is base64 of ``user:password`` (so "basic settings" is left alone)."""
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return ":" in text and text.isprintable()


def build_scrubber(settings: Any) -> Scrubber | None:
    """The scrubber the privacy settings describe (``None`` with ``scrub_enabled=False``).

    Every surface builds its scrubber here, so ``scrub_*`` settings mean the same everywhere.

    Raises:
        ConfigError: a pattern does not compile or the marker is empty; the message names
            the setting.
    """
    if not settings.scrub_enabled:
        return None
    return Scrubber(
        key_patterns=settings.scrub_key_patterns or DEFAULT_KEY_PATTERNS,
        value_patterns=settings.scrub_value_patterns or DEFAULT_VALUE_PATTERNS,
        allow_keys=settings.scrub_allow_keys or DEFAULT_ALLOW_KEYS,
        marker=settings.scrub_marker,
    )
