"""Tests for the Rule model, rule files, annotation templates and ``rules check``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from paca_otel._rules_cli import check
from paca_otel.delivery.channels import CHANNEL_KINDS
from paca_otel.errors import ParseError, RuleError
from paca_otel.pipeline._aliases import ALIASES
from paca_otel.rules._expr import BinOp, Number, Selector, selectors
from paca_otel.rules._models import Severity
from paca_otel.rules._rule import (
    Rule,
    load_rules,
    load_rules_text,
    parse_duration,
    render_annotations,
    render_template,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rules.yaml"


def test_rule_defaults_and_parsed_expr() -> None:
    """A minimal rule gets the documented defaults and a parsed condition."""
    rule = Rule(name="HighCPU", condition="cpu_usage > 90")
    assert rule.expr == BinOp(">", Selector("cpu_usage"), Number(90))
    assert rule.clear_expr is None
    assert (rule.for_, rule.keep_firing_for, rule.cooldown) == (0.0, 0.0, 300.0)
    assert rule.severity is Severity.WARNING
    assert rule.no_data == "ok"  # Prometheus: an alert whose series are gone resolves
    assert rule.channels == []


def test_rule_accepts_durations_and_alias_for() -> None:
    """``for`` (alias) and ``for_`` both work; durations accept strings and numbers."""
    rule = Rule(
        name="r",
        condition="x > 1",
        **{"for": "5m"},
        keep_firing_for="1h30m",
        cooldown=45,
        clear="x < 0.5",
    )
    assert rule.for_ == 300.0
    assert rule.keep_firing_for == 5400.0
    assert rule.cooldown == 45.0
    assert rule.clear_expr == BinOp("<", Selector("x"), Number(0.5))
    assert Rule(name="r", condition="x", for_="250ms").for_ == 0.25


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5m", 300),
        ("30s", 30),
        (12, 12),
        (1.5, 1.5),
        ("90", 90),
        ("1d", 86400),
        ("2w", 1_209_600),
        ("1y", 31_536_000),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    """Durations read Prometheus' units (ms s m h d w y) and plain numbers of seconds."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["5 minutes", "-1", -3, "1.5m", True, None, float("nan")])
def test_parse_duration_rejects(value: object) -> None:
    """Bad durations raise RuleError naming the value and the allowed forms."""
    with pytest.raises(RuleError, match="not a duration"):
        parse_duration(value)


def test_bad_condition_is_a_parse_error_naming_field_and_column() -> None:
    """A bad condition raises ParseError with the rule, the field and the column."""
    with pytest.raises(ParseError) as info:
        Rule(name="HighCPU", condition="cpu_usage > ")
    err = info.value
    assert str(err).startswith("rule 'HighCPU': condition: expected a number")
    assert "column 13" in str(err)
    assert (err.text, err.position) == ("cpu_usage > ", 12)


def test_bad_clear_names_the_clear_field() -> None:
    """A bad hysteresis condition names ``clear``."""
    with pytest.raises(ParseError, match="rule 'r': clear: "):
        Rule(name="r", condition="x > 1", clear="x <")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"for": "soon"}, "for: "),
        ({"cooldown": -1}, "cooldown: "),
        ({"severity": "apocalyptic"}, "severity: "),
        ({"no_data": "maybe"}, "no_data: "),
        ({"labels": {"bad key": "x"}}, "labels: label name 'bad key' is invalid"),
        ({"annotations": {"summary": "{{ $nope }}"}}, "summary: unsupported template"),
        ({"channels": [""]}, "channels: "),
        ({"colour": "red"}, "colour: unknown field"),
        ({"name": " padded "}, "name: "),
    ],
)
def test_validation_errors_name_the_field(kwargs: dict[str, object], fragment: str) -> None:
    """Every invalid field raises RuleError (not pydantic's error) naming the field."""
    data: dict[str, object] = {"name": "r", "condition": "x > 1", **kwargs}
    with pytest.raises(RuleError) as info:
        Rule(**data)
    assert fragment in str(info.value)


def test_severity_is_case_insensitive_with_aliases() -> None:
    """``CRITICAL``, ``warn`` and ``page`` map onto the Severity enum."""
    assert Rule(name="r", condition="x", severity="CRITICAL").severity is Severity.CRITICAL
    assert Rule(name="r", condition="x", severity="warn").severity is Severity.WARNING
    assert Rule(name="r", condition="x", severity="page").severity is Severity.CRITICAL


def test_yaml_scalars_become_label_strings() -> None:
    """YAML ints and booleans in labels become Prometheus-style strings."""
    rule = Rule(name="r", condition="x", labels={"tier": 1, "paging": True})
    assert rule.labels == {"tier": "1", "paging": "true"}


def test_render_annotations() -> None:
    """Annotations fill ``$value``, ``$labels.x`` and the humanize/printf forms."""
    rule = Rule(
        name="r",
        condition="x > 1",
        annotations={
            "summary": "{{ $labels.route }} at {{ $value }}",
            "pct": "{{ $value | humanizePercentage }}",
            "big": "{{$value|humanize}}",
            "fmt": '{{ printf "%.2f" $value }}',
            "dotted": "{{ $labels.http.route }}/{{ $labels.missing }}",
            "plain": "no templates",
        },
    )
    got = render_annotations(rule, {"route": "/api", "http.route": "/h"}, 0.1234)
    assert got == {
        "summary": "/api at 0.1234",
        "pct": "12.34%",
        "big": "123.4m",
        "fmt": "0.12",
        "dotted": "/h/",
        "plain": "no templates",
    }


@pytest.mark.parametrize(
    ("template", "value", "text"),
    [
        ("{{ $value | humanize }}", 1234567.0, "1.235M"),
        ("{{ $value | humanize }}", 0.0, "0"),
        ("{{ $value | humanizeDuration }}", 3725.0, "1h 2m 5s"),
        ("{{ $value | humanizeDuration }}", 0.25, "250ms"),
        ("{{ $value }}", 90.0, "90"),
        ('{{ printf "%d" $value }}', 3.7, "3"),
    ],
)
def test_render_template_forms(template: str, value: float, text: str) -> None:
    """The value filters format like Prometheus' template functions."""
    assert render_template(template, {}, value) == text


# ---------------------------------------------------------------------------------- rule files


def test_load_example_rules_file() -> None:
    """The shipped example loads, with both key styles and group metadata."""
    rules = load_rules(EXAMPLE)
    by_name = {r.name: r for r in rules}
    assert len(rules) == 7
    assert by_name["HighCPU"].group == "host"
    assert by_name["HighCPU"].interval == 30.0
    assert by_name["DiskAlmostFull"].severity is Severity.CRITICAL  # from labels.severity
    assert by_name["HighErrorRate"].cooldown == 900.0
    assert by_name["HighErrorRate"].channels == ["email", "slack"]
    assert by_name["SystemGaugesMissing"].no_data == "ok"
    assert by_name["LatencyOverBudget"].no_data == "alerting"


def test_example_rules_use_only_metrics_and_channels_that_exist() -> None:
    """The example names only aliases, metrics the instrumentation emits and built-in channels."""
    from paca_otel.testing import capture

    with capture(system_metrics=True) as captured:
        emitted = captured.metric_names()
    rules = load_rules(EXAMPLE)
    used = {
        sel.name
        for rule in rules
        for expr in (rule.expr, rule.clear_expr)
        if expr is not None
        for sel in selectors(expr)
    }
    assert used - set(ALIASES) - emitted == set()
    assert {c for rule in rules for c in rule.channels} <= set(CHANNEL_KINDS)


def test_load_prometheus_style_keys() -> None:
    """``alert``/``expr`` load like ``name``/``condition``."""
    rules = load_rules_text(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 1m\n"
    )
    assert [(r.name, r.condition, r.for_, r.group) for r in rules] == [("A", "up == 0", 60.0, "g")]


def test_empty_file_has_no_rules() -> None:
    """An empty document is an empty rule list."""
    assert load_rules_text("") == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("groups: [", "not valid YAML"),
        ("rules: []", "expected a mapping with a 'groups' list"),
        ("groups:\n- rules: []", "group #1 must be a mapping with a 'name'"),
        ("groups:\n- name: g\n  limit: 3\n  rules: []", "group 'g': unknown keys ['limit']"),
        (
            "groups:\n- name: g\n  interval: often\n  rules: []",
            "interval 'often' is not a duration",
        ),
        ("groups:\n- name: g\n  rules: {}", "'rules' must be a list"),
        ("groups:\n- name: g\n  rules: [3]", "a rule must be a mapping"),
        ("groups:\n- name: g\n  rules:\n  - record: r\n    expr: x", "recording rules"),
        ("groups:\n- name: g\n  rules:\n  - alert: A\n    name: B\n    expr: x", "not both"),
        ("groups:\n- name: g\n  rules:\n  - alert: A", "missing 'condition' (or 'expr')"),
        ("groups:\n- name: g\n  rules:\n  - expr: x", "missing 'name' (or 'alert')"),
        ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x\n    when: now", "['when']"),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x\n    for: soon",
            "group 'g': rule #1 'A': for: ",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - {alert: A, expr: x}\n- name: h\n  rules:\n"
            "  - {alert: A, expr: y}",
            "duplicate rule name 'A' (first in group 'g')",
        ),
    ],
)
def test_rule_file_errors(text: str, fragment: str) -> None:
    """Structural problems in a file raise RuleError naming source, group and rule."""
    with pytest.raises(RuleError) as info:
        load_rules_text(text, source="f.yaml")
    assert fragment in str(info.value)
    assert str(info.value).startswith("f.yaml: ")


def test_rule_file_parse_error_keeps_position() -> None:
    """A bad condition in a file is a ParseError naming file, group, rule, field and column."""
    text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: cpu > > 1\n"
    with pytest.raises(ParseError) as info:
        load_rules_text(text, source="f.yaml")
    assert str(info.value).startswith("f.yaml: group 'g': rule #1 'A': condition: expected")
    assert info.value.position == 6
    assert info.value.text == "cpu > > 1"


def test_load_rules_missing_file(tmp_path: Path) -> None:
    """A missing file is a RuleError naming the path."""
    with pytest.raises(RuleError, match="cannot read rule file"):
        load_rules(tmp_path / "nope.yaml")


# ------------------------------------------------------------------------------- rules check


def test_check_ok_on_example() -> None:
    """``rules check`` accepts the example, exits 0 and summarises it."""
    out, err = io.StringIO(), io.StringIO()
    assert check(EXAMPLE, out=out, err=err) == 0
    assert "OK, 7 rules in 2 groups" in out.getvalue()
    assert "no channels" in out.getvalue()
    assert err.getvalue() == ""


def _rule_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_check_refuses_unknown_channel(tmp_path: Path) -> None:
    """A misspelt channel is an error naming it and the built-in channels; exit 1."""
    path = _rule_file(
        tmp_path, "groups:\n- name: g\n  rules:\n  - {alert: A, expr: x > 1, channels: [emial]}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert check(path, out=out, err=err) == 1
    assert "unknown channel 'emial'" in err.getvalue()
    assert "alertmanager, email, log, slack, webhook" in err.getvalue()
    assert out.getvalue() == ""


def test_check_accepts_declared_custom_channel(tmp_path: Path) -> None:
    """A channel the application registers in code passes when declared."""
    path = _rule_file(
        tmp_path, "groups:\n- name: g\n  rules:\n  - {alert: A, expr: x > 1, channels: [pager]}\n"
    )
    assert check(path, out=io.StringIO(), err=io.StringIO(), custom_channels=["pager"]) == 0


def test_check_lists_unconfigured_builtin_channels(tmp_path: Path) -> None:
    """A built-in channel without its settings is listed with the settings to set; exit 0."""
    path = _rule_file(
        tmp_path,
        "groups:\n- name: g\n  rules:\n"
        "  - {alert: A, expr: x > 1, channels: [email, log]}\n"
        "  - {alert: B, expr: x > 2, channels: [email, slack]}\n",
    )
    out = io.StringIO()
    assert check(path, out=out, err=io.StringIO(), configured={"log", "slack"}) == 0
    text = out.getvalue()
    assert "unconfigured channel 'email' (used by A, B): set smtp_host" in text
    assert "'slack'" not in text
    assert "'log'" not in text


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "groups: []\n", "groups:\n- name: g\n"])
def test_check_refuses_a_file_without_rules(tmp_path: Path, text: str) -> None:
    """An empty rule file (or one with no rules) is an error, not "OK, 0 rules"."""
    err = io.StringIO()
    assert check(_rule_file(tmp_path, text), out=io.StringIO(), err=err) == 1
    assert "no rules found" in err.getvalue()


def test_check_summary_is_singular_for_one_rule(tmp_path: Path) -> None:
    """One rule in one group reads "1 rule in 1 group"."""
    path = _rule_file(tmp_path, "groups:\n- name: g\n  rules:\n  - {alert: A, expr: x > 1}\n")
    out = io.StringIO()
    assert check(path, out=out, err=io.StringIO()) == 0
    assert "OK, 1 rule in 1 group\n" in out.getvalue()


def test_check_reports_parse_error_with_caret(tmp_path: Path) -> None:
    """An invalid condition exits 1 and points at the bad column."""
    path = tmp_path / "bad.yaml"
    path.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: cpu > > 1\n")
    out, err = io.StringIO(), io.StringIO()
    assert check(path, out=out, err=err) == 1
    lines = err.getvalue().splitlines()
    assert "column 7" in lines[0]
    assert lines[1:] == ["  cpu > > 1", "        ^"]


def test_check_reports_invalid_field(tmp_path: Path) -> None:
    """An invalid field exits 1 with the field named."""
    path = tmp_path / "bad.yaml"
    path.write_text("groups:\n- name: g\n  rules:\n  - {alert: A, expr: x, cooldown: -5}\n")
    err = io.StringIO()
    assert check(path, out=io.StringIO(), err=err) == 1
    assert "cooldown" in err.getvalue()


def test_check_missing_file_is_usage_error(tmp_path: Path) -> None:
    """A missing file exits 2."""
    err = io.StringIO()
    assert check(tmp_path / "nope.yaml", out=io.StringIO(), err=err) == 2
    assert "does not exist" in err.getvalue()
