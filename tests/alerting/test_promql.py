"""Tests for the Prometheus export: translation, skipped rules, and promtool as the judge."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
import yaml

from paca_otel.alerting.expr import evaluate, parse
from paca_otel.alerting.promql import (
    Unsupported,
    export_prometheus,
    label_name,
    metric_name,
    to_prometheus_rules,
    to_promql,
)
from paca_otel.alerting.rules import Rule, load_rules, render_annotations
from paca_otel.alerting.rules_cli import export
from paca_otel.pipeline.store import SeriesStore, labels_of
from tests.peers import require_binary

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rules.yaml"


@pytest.mark.parametrize(
    ("condition", "promql"),
    [
        ("avg(x[5m]) > 1", "avg_over_time(x[5m]) > 1"),
        ("min(x[1m]) < 1", "min_over_time(x[1m]) < 1"),
        ("max(x[1h30m]) >= 1", "max_over_time(x[1h30m]) >= 1"),
        ("sum(x[10s]) <= 1", "sum_over_time(x[10s]) <= 1"),
        ("count(x[1d]) == 0", "count_over_time(x[1d]) == 0"),
        ("last(x[5m]) != 0", "last_over_time(x[5m]) != 0"),
        ("p50(x[5m]) > 1", "quantile_over_time(0.5, x[5m]) > 1"),
        ("p95(x[5m]) > 1", "quantile_over_time(0.95, x[5m]) > 1"),
        ("p99(x[250ms]) > 1", "quantile_over_time(0.99, x[250ms]) > 1"),
        ("rate(x[5m]) > 1", "rate(x[5m]) > 1"),
        ("increase(x[5m]) > 1", "increase(x[5m]) > 1"),
        ('absent(up{job="a"})', 'absent(up{job="a"})'),
        ("a and not b", "a unless b"),
        ("a > 1 or b < 2", "(a > 1) or (b < 2)"),
        ("(a + b) * 2 > -1", "((a + b) * 2) > -1"),
        ("-a > 1", "-(a) > 1"),
        (
            'system.cpu.utilization{cpu.mode="idle"} < 0.1',
            'system_cpu_utilization{cpu_mode="idle"} < 0.1',
        ),
        ('x{a=~"5.."}', 'x{a=~"5.."}'),
    ],
)
def test_to_promql(condition: str, promql: str) -> None:
    """Each construct maps to its PromQL counterpart, names sanitised like the OTel exporter."""
    assert to_promql(parse(condition)) == promql


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("1 > 0", "bool modifier"),
        ("1 + 2", "scalar"),
        ("x and 1", "vector on both sides"),
        ('x{a=~"(?=b)"} > 1', "RE2"),
    ],
)
def test_outside_the_subset(condition: str, reason: str) -> None:
    """Conditions PromQL cannot express raise Unsupported with a reason."""
    with pytest.raises(Unsupported, match=reason):
        to_promql(parse(condition))


def test_name_sanitising() -> None:
    """Dots and other invalid characters become underscores; a leading digit too."""
    assert metric_name("http.server.duration") == "http_server_duration"
    assert metric_name("a-b/c:d") == "a_b_c:d"
    assert label_name("http.route") == "http_route"
    assert label_name("a:b") == "a_b"
    assert label_name("1x") == "_x"


def test_name_map_overrides() -> None:
    """name_map supplies exporter suffixes (or a real metric for an alias)."""
    promql = to_promql(
        parse("cpu_usage > 90 and http.server.duration > 1"),
        {"http.server.duration": "http_server_duration_milliseconds"},
    )
    assert promql == "(cpu_usage > 90) and (http_server_duration_milliseconds > 1)"
    with pytest.raises(ValueError, match="not a valid Prometheus metric name"):
        export_prometheus([Rule(name="r", condition="x > 1")], name_map={"x": "bad name"})


def test_rule_document_fields() -> None:
    """for, keep_firing_for, labels with severity, annotations and groups are kept."""
    rule = Rule(
        name="HighErrors",
        condition='error_ratio{http.route="/a"} > 0.05',
        **{"for": "5m"},
        keep_firing_for="90s",
        severity="critical",
        labels={"team": "web", "svc.name": "api"},
        annotations={"summary": "{{ $labels.http.route }} at {{ $value | humanizePercentage }}"},
        group="api",
        interval="30s",
    )
    doc = to_prometheus_rules([rule])
    summary = "{{ $labels.http_route }} at {{ $value | humanizePercentage }}"
    assert doc == {
        "groups": [
            {
                "name": "api",
                "interval": "30s",
                "rules": [
                    {
                        "alert": "HighErrors",
                        "expr": 'error_ratio{http_route="/a"} > 0.05',
                        "for": "5m",
                        "keep_firing_for": "1m30s",
                        "labels": {"team": "web", "svc_name": "api", "severity": "critical"},
                        "annotations": {"summary": summary},
                    }
                ],
            }
        ]
    }


def test_skipped_and_warnings() -> None:
    """Unsupported rules are skipped with a reason; lossy fields and aliases warn."""
    rules = [
        Rule(name="Scalar", condition="1 > 0"),
        Rule(name="Alias", condition="cpu_usage > 90", clear="cpu_usage < 80", no_data="ok"),
    ]
    result = export_prometheus(rules)
    assert [name for name, _ in result.skipped] == ["Scalar"]
    assert [r["alert"] for r in result.document["groups"][0]["rules"]] == ["Alias"]
    text = "\n".join(result.warnings)
    assert "'cpu_usage' is a paca-otel alias" in text
    assert "'clear' (hysteresis)" in text
    assert "no_data='ok'" in text
    rendered = result.to_yaml()
    assert "# skipped Scalar: " in rendered
    assert yaml.safe_load(rendered) == result.document


def test_cli_export_and_unknown_format(tmp_path: Path) -> None:
    """``rules export`` writes YAML and exits 0; an unknown format exits 2."""
    out, err = io.StringIO(), io.StringIO()
    assert export(EXAMPLE, out=out, err=err) == 0
    doc = yaml.safe_load(out.getvalue())
    assert sum(len(g["rules"]) for g in doc["groups"]) == 7
    assert "warning: " in err.getvalue()
    assert export(EXAMPLE, fmt="nagios", out=io.StringIO(), err=io.StringIO()) == 2


@pytest.mark.peer("promtool")
def test_promtool_accepts_example_export(tmp_path: Path) -> None:
    """``promtool check rules`` accepts the export of the example rule file."""
    promtool = require_binary("promtool")
    path = tmp_path / "rules.yml"
    path.write_text(export_prometheus(load_rules(EXAMPLE)).to_yaml())
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 7 rules found" in proc.stdout


# Same rules evaluated by paca-otel and by Prometheus (through `promtool test rules`): the
# exported alerts must carry the same labels and, to 6 decimals, the same values.
_SERIES: dict[str, list[float]] = {
    'reqs{route="/a"}': [0, 30, 60, 90, 10, 40, 70, 100, 130, 160, 190],  # resets at t=4m
    'reqs{route="/b"}': [0, 6, 12, 18, 24, 30, 36, 42, 48, 54, 60],
    'errs{route="/a"}': [0, 3, 6, 9, 1, 4, 7, 10, 13, 16, 19],
    'errs{route="/b"}': [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2],
    'http.server.duration{http.route="/a"}': [
        0.1,
        0.4,
        0.2,
        0.9,
        0.3,
        0.5,
        0.25,
        0.8,
        0.6,
        0.7,
        0.35,
    ],
    'cpu{host="h1"}': [10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97],
}
_RULES = {
    "Rate": "rate(reqs[5m]) > 0",
    "Increase": "increase(errs[5m]) >= 0",
    "Ratio": "rate(errs[5m]) / rate(reqs[5m]) > 0",
    "P95": "p95(http.server.duration[5m]) > 0.1",
    "P50": "p50(http.server.duration[5m]) > 0.1",
    "Avg": "avg(cpu[5m]) > 50",
    "MaxMin": "max(cpu[5m]) - min(cpu[5m]) > 0",
    "Count": "count(reqs[5m]) > 0",
    "Latest": 'cpu{host="h1"} * 2 > 100 and not errs{route="/b"} > 100',
    "Absent": 'absent(heartbeat{job="w"})',
}
_EVAL_AT = 630.0  # 10m30s: off the 1m sample grid, so closed/open window edges agree


def _paca_alerts() -> dict[str, list[dict[str, object]]]:
    store = SeriesStore()
    for text, values in _SERIES.items():
        sel = parse(text)
        name = getattr(sel, "name", "")
        labels = labels_of({m.name: m.value for m in getattr(sel, "matchers", ())})
        for i, value in enumerate(values):
            store.append(name, labels, float(value), i * 60.0)
    alerts: dict[str, list[dict[str, object]]] = {}
    for name, condition in _RULES.items():
        rule = Rule(name=name, condition=condition, annotations={"v": '{{ printf "%.6f" $value }}'})
        result = evaluate(rule.expr, store, _EVAL_AT)
        alerts[name] = [
            {
                "exp_labels": {label_name(k): v for k, v in labels} | {"severity": "warning"},
                "exp_annotations": render_annotations(rule, dict(labels), value),
            }
            for labels, value in sorted(result.samples.items())
        ]
    return alerts


@pytest.mark.peer("promtool")
def test_prometheus_evaluates_exports_like_paca(tmp_path: Path) -> None:
    """``promtool test rules`` sees the exported rules fire as paca-otel's evaluator does."""
    promtool = require_binary("promtool")
    rules = [
        Rule(name=n, condition=c, annotations={"v": '{{ printf "%.6f" $value }}'})
        for n, c in _RULES.items()
    ]
    (tmp_path / "rules.yml").write_text(export_prometheus(rules).to_yaml())
    expected = _paca_alerts()
    assert all(expected[name] for name in _RULES)  # every rule fires: a meaningful comparison
    series = []
    for text, values in _SERIES.items():
        prom_text = to_promql(parse(text))
        series.append({"series": prom_text, "values": " ".join(str(v) for v in values)})
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "30s",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "10m30s", "alertname": name, "exp_alerts": alerts}
                    for name, alerts in expected.items()
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    proc = subprocess.run(
        [promtool, "test", "rules", "tests.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
