"""Label-matcher regexes (``=~``, ``!~``) compiled with RE2: linear time, PromQL's syntax.

Python's ``re`` backtracks, so a matcher such as ``user=~"(a+)+b"`` takes exponential time on
a value like ``"aaaa…c"``: one evaluation of such a rule froze the whole process for seconds
(``re`` holds the GIL while it matches). Rule conditions and silences come from rule files and
the HTTP API, i.e. from users, so their regexes must not be able to do that. RE2 guarantees
time linear in the input and bounded memory (8 MiB per pattern, RE2's default), and it is the
syntax Prometheus and Alertmanager use (Go's ``regexp`` is RE2), so a rule means the same in
paca-otel and in Prometheus. The ``google-re2`` bindings are used through their public
``re2.compile``/``re2.Options`` API; nothing is hand-written here beyond the anchoring.

As in Prometheus (``^(?s:<re>)$``), a matcher is fully anchored and ``.`` matches newlines.
Values are matched as UTF-8 bytes: that skips the bindings' per-match offset decoding, and a
lone surrogate (which ``str.encode`` refuses) is passed through instead of raising.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol, cast

import re2


class LabelRegex(Protocol):
    """The part of a compiled RE2 pattern this package uses."""

    def fullmatch(self, text: bytes) -> object | None: ...


class RegexSyntaxError(ValueError):
    """RE2 refused the pattern; the message is RE2's reason (``missing ): (``...)."""


def _options() -> re2.Options:
    options = re2.Options()
    options.dot_nl = True  # Prometheus compiles matchers as (?s:...): "." matches "\n" too
    options.never_capture = True  # groups are never read: skip capture bookkeeping
    options.log_errors = False  # RE2 would print every rejected pattern to stderr
    return options


_OPTIONS = _options()


@lru_cache(maxsize=4096)
def compile_label_regex(pattern: str) -> LabelRegex:
    """Compile ``pattern`` once (cached) for :func:`regex_fullmatch`.

    Raises:
        RegexSyntaxError: RE2 rejects the pattern (lookaround, backreferences, ``\\Z``,
            unbalanced parentheses, repetition counts above 1000, or too large to compile).
    """
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        msg = f"{reason} (label regexes use RE2 syntax, as in Prometheus)"
        raise RegexSyntaxError(msg) from None
    return cast(LabelRegex, compiled)


def regex_fullmatch(regex: LabelRegex, value: str) -> bool:
    """Whether ``regex`` matches all of ``value``, in time linear in ``len(value)``."""
    return regex.fullmatch(value.encode("utf-8", "surrogatepass")) is not None
