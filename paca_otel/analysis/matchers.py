"""Label matchers as one predicate over a label set, with the rule language's semantics.

``=``, ``!=``, ``=~`` and ``!~`` mean what they mean in rules and in PromQL: regexes are RE2,
fully anchored, ``.`` matches a newline (:mod:`paca_otel._labelregex`), and a label the
series does not have matches as the empty string (``{env=""}`` selects series without
``env``; ``{env!=""}`` those with one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from paca_otel._labelregex import RegexSyntaxError, compile_label_regex, regex_fullmatch
from paca_otel.analysis.source import LabelMatcher
from paca_otel.errors import PacaOtelError

__all__ = ["MATCH_OPS", "MatcherError", "label_predicate"]

MATCH_OPS = ("=", "!=", "=~", "!~")

Predicate = Callable[[Mapping[str, str]], bool]


class MatcherError(PacaOtelError, ValueError):
    """A matcher is not a :class:`LabelMatcher`, has an unknown op, or a regex RE2 refuses."""


def _one(matcher: LabelMatcher) -> Predicate:
    name, value = matcher.name, matcher.value
    if matcher.op == "=":
        return lambda labels: labels.get(name, "") == value
    if matcher.op == "!=":
        return lambda labels: labels.get(name, "") != value
    try:
        regex = compile_label_regex(value)
    except RegexSyntaxError as exc:
        msg = f"matcher {name}{matcher.op}{value!r}: not a valid RE2 pattern: {exc}"
        raise MatcherError(msg) from None
    if matcher.op == "=~":
        return lambda labels: regex_fullmatch(regex, labels.get(name, ""))
    return lambda labels: not regex_fullmatch(regex, labels.get(name, ""))


def label_predicate(matchers: Sequence[LabelMatcher]) -> Predicate:
    """One predicate true for label sets that satisfy every matcher.

    Raises:
        MatcherError: a matcher is malformed (the message names it and what is allowed).
    """
    tests: list[Predicate] = []
    for matcher in matchers:
        if not isinstance(matcher, LabelMatcher) or matcher.op not in MATCH_OPS:
            msg = (
                f"matcher {matcher!r} must be a LabelMatcher with op one of {', '.join(MATCH_OPS)}"
            )
            raise MatcherError(msg)
        tests.append(_one(matcher))
    if not tests:
        return lambda labels: True
    return lambda labels: all(test(labels) for test in tests)
