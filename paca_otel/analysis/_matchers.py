"""Label matchers as one predicate over a label set, with the rule language's semantics.

``=``, ``!=``, ``=~`` and ``!~`` mean what they mean in rules and in PromQL: regexes are RE2,
fully anchored, ``.`` matches a newline, and a label the series does not have matches as the
empty string (``{env=""}`` selects series without ``env``; ``{env!=""}`` those with one). The
semantics are the series store's :class:`~paca_otel.pipeline._store.Matcher`, used here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from paca_otel.analysis.source import LabelMatcher
from paca_otel.errors import PacaOtelError, RuleError
from paca_otel.pipeline._store import MATCH_OPS, Matcher

__all__ = ["MATCH_OPS", "MatcherError", "label_predicate"]

Predicate = Callable[[Mapping[str, str]], bool]


class MatcherError(PacaOtelError, ValueError):
    """A matcher is not a :class:`LabelMatcher`, has an unknown op, or a regex RE2 refuses."""


def _one(matcher: LabelMatcher) -> Predicate:
    # The store's matcher is the one definition of the semantics (rules and silences use it).
    try:
        compiled = Matcher(matcher.name, matcher.op, matcher.value)
    except RuleError as exc:
        msg = (
            f"matcher {matcher.name}{matcher.op}{matcher.value!r}: "
            f"not a valid RE2 pattern: {exc.__cause__ or exc}"
        )
        raise MatcherError(msg) from None
    return lambda labels: compiled.matches(tuple(labels.items()))


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
