"""The cheap test in front of the value detectors: which texts could hold a built-in secret.

Most attribute values are clean (methods, routes, paths, user agents), and each new one would
otherwise go through every detector's regex. One test that every built-in detector's match
implies lets the clean ones stop after a few substring checks. Kept apart from the scrubber
because its correctness is a claim about the detectors' regexes, argued line by line here and
checked by tests/privacy/test_scrub.py against the detectors themselves.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Final

__all__ = ["candidate_test"]

# For each built-in detector, a regex that every one of its matches contains. Searched only in
# non-ASCII text (Unicode digits and case folding); ASCII text gets the plain string tests below.
_CANDIDATES: Final = {
    "card_number": r"\d[\d -]{12}",
    "bearer_credentials": r"(?i:bearer)\s",
    "basic_credentials": r"(?i:basic)\s",
    "key_value": r"[=:]",
    "url_credentials": "@",
    "paca_token": "paca_",
}
_DIGITS: Final = b"0123456789"


def candidate_test(names: frozenset[str]) -> Callable[[str], bool] | None:
    """A test that is true for every text some detector in ``names`` could change.

    Built once per scrubber. It may say yes to clean text (the detectors then decide), never
    no to a secret. For ASCII text it is a few substring tests (C speed, no regex): 2 to 8
    times fewer instructions than one combined regex search, from "GET" to a browser's user
    agent (the regex tries every alternative at every position). Each test follows from its
    detector's regex in ``_scrub.py``: a card number has 13 or more ASCII digits; a bearer
    credential is "bearer" (any case) plus a separator and 16 token characters; basic is
    "basic" plus a separator and 6 base64 characters; key=value needs ``=`` or ``:``; URL
    credentials an ``@``; a paca token "paca_". Non-ASCII text falls back to the candidate
    regex, since ``\\d``, ``\\s`` and case-insensitive matching reach beyond ASCII there.
    """
    if not names:
        return None
    fallback = re.compile("|".join(_CANDIDATES[name] for name in sorted(names))).search
    needles = [
        needle
        for name, needle in (
            ("key_value", "="),
            ("key_value", ":"),
            ("url_credentials", "@"),
            ("paca_token", "paca_"),
        )
        if name in names
    ]
    words = [
        (word, size)
        for name, word, size in (
            ("basic_credentials", "basic", 12),
            ("bearer_credentials", "bearer", 23),
        )
        if name in names
    ]
    card = "card_number" in names
    # The shortest text any detector other than the substring ones can change.
    shortest = min([size for _, size in words] + ([13] if card else []), default=sys.maxsize)
    # Unrolled below (a loop costs twice as much on short texts): lists padded by repeating an
    # entry, which changes no answer.
    any_needle = bool(needles)
    n1, n2, n3, n4 = (needles * 4)[:4] if needles else ("",) * 4
    any_word = bool(words)
    (w1, s1), (w2, s2) = (words * 2)[:2] if words else (("", 0),) * 2

    def candidate(text: str) -> bool:
        if any_needle and (n1 in text or n2 in text or n3 in text or n4 in text):
            return True
        size = len(text)
        if size < shortest:
            return False
        if not text.isascii():
            return fallback(text) is not None
        if any_word:
            lower = text.lower()
            if (size >= s1 and w1 in lower) or (size >= s2 and w2 in lower):
                return True
        return card and size >= 13 and size - len(text.encode().translate(None, _DIGITS)) >= 13

    return candidate
