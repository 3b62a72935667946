"""The promtool-style `rules test` runner: expanding notation, alert and expression checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from paca_otel.alerting._rule_tests import expand_values, parse_series, run_rule_tests
from paca_otel.errors import RuleError

ROOT = Path(__file__).resolve().parents[2]

RULES = """
groups:
  - name: host
    rules:
      - alert: HighMemory
        expr: memory_usage > 90
        for: 2m
        severity: critical
        annotations:
          summary: "{{ $labels.host }} at {{ $value }}%"
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1 2 3", [1.0, 2.0, 3.0], id="plain"),
        pytest.param("1+2x3", [1.0, 3.0, 5.0, 7.0], id="up"),
        pytest.param("10-1x2", [10.0, 9.0, 8.0], id="down"),
        pytest.param("5x2", [5.0, 5.0, 5.0], id="repeat"),
        pytest.param("-2+4x1", [-2.0, 2.0], id="negative-start"),
        pytest.param("1 _ _x2 stale", [1.0, None, None, None, "stale"], id="gaps-and-stale"),
        pytest.param("1e2 .5", [100.0, 0.5], id="exponent-and-dot"),
        pytest.param("", [], id="empty"),
    ],
)
def test_expand_values(text: str, expected: list[object]) -> None:
    """promtool's expanding notation expands exactly as promtool does."""
    assert expand_values(text) == expected


def test_expand_values_rejects_garbage() -> None:
    """An unknown token names itself and the accepted forms."""
    with pytest.raises(RuleError, match=r"'1\+x' is not a number"):
        expand_values("1 1+x")


def test_parse_series() -> None:
    """A series is a selector with '=' matchers only; labels come back sorted."""
    assert parse_series('m{b="2", a="1"}') == ("m", (("a", "1"), ("b", "2")))
    assert parse_series("system.cpu.utilization") == ("system.cpu.utilization", ())
    with pytest.raises(RuleError, match="'=' only"):
        parse_series('m{a=~"x"}')


def write(tmp_path: Path, tests: str) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    path = tmp_path / "rules_test.yaml"
    path.write_text("rule_files: [rules.yaml]\nevaluation_interval: 1m\n" + tests)
    return path


PASSING = """
tests:
  - interval: 1m
    input_series:
      - series: 'memory_usage{host="a"}'
        values: '80 95 95 95+0x10'
      - series: 'memory_usage{host="b"}'
        values: '50x13'
    alert_rule_test:
      - eval_time: 2m
        alertname: HighMemory
        exp_alerts: []
      - eval_time: 5m
        alertname: HighMemory
        exp_alerts:
          - exp_labels: {host: a, severity: critical}
            exp_annotations: {summary: "a at 95%"}
    promql_expr_test:
      - expr: memory_usage > 60
        eval_time: 1m
        exp_samples:
          - labels: 'memory_usage{host="a"}'
            value: 95
"""


def test_passing_file(tmp_path: Path) -> None:
    """Alerts pending before ``for`` and firing after it pass; so does an expression check."""
    assert run_rule_tests(write(tmp_path, PASSING)) == (3, 0, [])


def test_failure_reports_expected_and_got(tmp_path: Path) -> None:
    """A wrong expectation fails with both sides in the message."""
    bad = PASSING.replace('summary: "a at 95%"', 'summary: "a at 96%"')
    passed, failed, messages = run_rule_tests(write(tmp_path, bad))
    assert (passed, failed) == (2, 1)
    assert 'expected: labels={host="a", severity="critical"}' in messages[0]
    assert (
        'got:      labels={host="a", severity="critical"} annotations={summary="a at 95%"}'
        in (messages[0])
    )


def test_stale_and_missing_samples(tmp_path: Path) -> None:
    """A ``stale`` series vanishes at once; ``_`` gaps keep the last value for 5 minutes."""
    tests = """
tests:
  - interval: 1m
    input_series:
      - series: 'memory_usage{host="a"}'
        values: '95x3 stale 95x3'
      - series: 'memory_usage{host="b"}'
        values: '95x3 _x3 95'
    alert_rule_test:
      - eval_time: 3m
        alertname: HighMemory
        exp_alerts:
          - exp_labels: {host: a}
            exp_annotations: {summary: "a at 95%"}
          - exp_labels: {host: b}
            exp_annotations: {summary: "b at 95%"}
      - eval_time: 6m
        alertname: HighMemory
        exp_alerts:
          - exp_labels: {host: b}
            exp_annotations: {summary: "b at 95%"}
"""
    assert run_rule_tests(write(tmp_path, tests)) == (2, 0, [])


def test_unknown_alertname_fails(tmp_path: Path) -> None:
    """Asking about a rule that is not in the rule files is a failure, not a crash."""
    tests = """
tests:
  - input_series: []
    alert_rule_test:
      - eval_time: 1m
        alertname: Nope
        exp_alerts: []
"""
    passed, failed, messages = run_rule_tests(write(tmp_path, tests))
    assert (passed, failed) == (0, 1)
    assert "no rule named 'Nope'" in messages[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("tests: 3\n", "'tests' list", id="no-tests-list"),
        pytest.param("tests: [\n", "not valid YAML", id="bad-yaml"),
        pytest.param("rule_files: [missing.yaml]\ntests: []\n", "cannot read", id="no-rules"),
        pytest.param("evaluation_interval: soon\ntests: []\n", "evaluation_interval", id="bad-ei"),
    ],
)
def test_malformed_files_raise(tmp_path: Path, content: str, message: str) -> None:
    """A malformed test file raises RuleError naming the problem."""
    path = tmp_path / "t.yaml"
    path.write_text(content)
    with pytest.raises(RuleError, match=message):
        run_rule_tests(path)


def test_shipped_example_passes() -> None:
    """examples/rules_test.yaml passes against examples/rules.yaml."""
    passed, failed, messages = run_rule_tests(ROOT / "examples" / "rules_test.yaml")
    assert messages == []
    assert failed == 0
    assert passed >= 8
