"""Silence matchers: regexes are RE2 (linear time), so a silence cannot stall the engine."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from paca_otel.alerting._silences import matcher_holds, normalise_matchers
from paca_otel.errors import RuleError
from paca_otel.pipeline._store import Matcher


@pytest.mark.timeout(20)
def test_catastrophic_silence_regex_matches_in_bounded_time() -> None:
    """``(a+)+b`` against long non-matching label values (hours with backtracking) ends promptly."""
    for length in range(2000, 2100):
        assert not matcher_holds("=~", "(a+)+b", "a" * length + "c")
    assert matcher_holds("=~", "(a+)+b", "aaab")
    assert not matcher_holds("=~", "a", "ab")  # fully anchored, as in Alertmanager


def test_silence_regex_re2_rejects_is_a_rule_error() -> None:
    """Lookaround (which RE2 and Alertmanager lack) is refused, naming the matcher."""
    with pytest.raises(RuleError, match=r"alertname=~'\(\?=x\)': invalid regex"):
        normalise_matchers([SimpleNamespace(name="alertname", op="=~", value="(?=x)")])
    with pytest.raises(RuleError, match="RE2 syntax"):
        Matcher("alertname", "=~", "(?=x)")
