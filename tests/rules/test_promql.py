"""Tests for the Prometheus export: translation, skipped rules, and promtool as the judge."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
import yaml

from paca_otel._rules_cli import export
from paca_otel.cli import main as cli_main
from paca_otel.pipeline._aliases import ALIASES, write_system
from paca_otel.pipeline._store import SeriesStore, labels_of
from paca_otel.rules._evaluate import evaluate
from paca_otel.rules._expr import parse
from paca_otel.rules._promql import (
    Unsupported,
    export_prometheus,
    label_name,
    metric_name,
    to_prometheus_rules,
    to_promql,
)
from paca_otel.rules._rule import Rule, load_rules, render_annotations
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
    """name_map supplies exporter suffixes, and replaces an alias' built-in translation."""
    promql = to_promql(
        parse("cpu_usage > 90 and http.server.duration > 1"),
        {"http.server.duration": "http_server_duration_milliseconds", "cpu_usage": "node_cpu"},
    )
    assert promql == "(node_cpu > 90) and (http_server_duration_milliseconds > 1)"
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
    """Unsupported rules are skipped with a reason; lossy fields warn."""
    rules = [
        Rule(name="Scalar", condition="1 > 0"),
        Rule(name="Alias", condition="cpu_usage > 90", clear="cpu_usage < 80", no_data="keep"),
    ]
    result = export_prometheus(rules)
    assert [name for name, _ in result.skipped] == ["Scalar"]
    assert [r["alert"] for r in result.document["groups"][0]["rules"]] == ["Alias"]
    text = "\n".join(result.warnings)
    assert "'clear' (hysteresis)" in text
    assert "no_data='keep'" in text
    assert "alias" not in text  # cpu_usage is exported as PromQL, nothing to warn about
    rendered = result.to_yaml()
    assert "# skipped Scalar: " in rendered
    assert yaml.safe_load(rendered) == result.document


def test_default_no_data_exports_without_warning() -> None:
    """no_data='ok' (the default) is what Prometheus does: no warning; 'alerting' warns."""
    plain = export_prometheus([Rule(name="A", condition="x > 1")])
    assert plain.warnings == []
    alerting = export_prometheus([Rule(name="A", condition="x > 1", no_data="alerting")])
    assert any("no_data='alerting' is not exported" in w for w in alerting.warnings)


@pytest.mark.parametrize(
    ("condition", "fragments"),
    [
        (
            "cpu_usage > 90",
            [
                "clamp(100 * (1 - avg without (cpu_mode, cpu_logical_number)"
                ' (system_cpu_utilization{cpu_mode="idle"})), 0, 100) > 90'
            ],
        ),
        (
            "memory_usage > 90",
            ['system_memory_utilization{system_memory_state="used"}'],
        ),
        (
            "disk_usage > 95",
            ['system_filesystem_usage_bytes{system_filesystem_mountpoint="/"'],
        ),
        (
            "avg(cpu_usage[5m]) > 90",
            ["avg_over_time(clamp(", ", 0, 100)[5m:]) > 90"],
        ),
        (
            'error_rate{route="/a"} > 0.05',
            [
                'http_server_request_duration_seconds_count{http_response_status_code=~"5..",'
                ' http_route="/a"}[1m]',
                '"route", "$1", "http_route", "(.*)"',
            ],
        ),
        (
            "latency_p95 > 0.5",
            ["histogram_quantile(0.95, sum by (le, route, method)", "sum by (le)"],
        ),
        ("request_rate < 1", ["rate(http_server_request_duration_seconds_count[1m])"]),
        ("error_count > 1", ["increase(http_server_request_duration_seconds_count{"]),
    ],
)
def test_aliases_export_as_promql_over_exposed_metrics(
    condition: str, fragments: list[str]
) -> None:
    """Built-in aliases become PromQL over the names paca-otel serves on /metrics."""
    promql = to_promql(parse(condition))
    for fragment in fragments:
        assert fragment in promql, promql
    assert "_usage >" not in promql
    assert "error_rate" not in promql


def test_every_alias_has_a_translation() -> None:
    """No alias is exported under its own name (Prometheus has no such series) or warns."""
    for alias in ALIASES:
        result = export_prometheus([Rule(name="A", condition=f"{alias} > 0")])
        assert result.warnings == [], alias
        expr = result.document["groups"][0]["rules"][0]["expr"]
        assert not expr.startswith(alias), expr


@pytest.mark.peer("promtool")
def test_promtool_accepts_every_alias_export(tmp_path: Path) -> None:
    """``promtool check rules`` accepts each alias, plain, with matchers and over a window."""
    promtool = require_binary("promtool")
    rules = [
        Rule(name=f"R{i}", condition=condition)
        for i, condition in enumerate(
            text
            for alias in ALIASES
            for text in (
                f"{alias} > 1",
                f'{alias}{{route=~"/api/.*", method!="GET"}} > 1',
                f"avg({alias}[5m]) > 1",
                f"absent({alias})",
            )
        )
    ]
    path = tmp_path / "rules.yml"
    path.write_text(export_prometheus(rules).to_yaml())
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout


def test_red_alias_total_series_only_when_matchers_accept_it() -> None:
    """The all-routes series is part of a RED alias unless route/method matchers exclude it."""
    assert "or (sum(rate(" in to_promql(parse('request_rate{route!="/health"} > 1'))
    assert "or (sum(rate(" not in to_promql(parse('request_rate{route=~"/api/.*"} > 1'))


def test_red_alias_total_ignores_route_and_method_matchers() -> None:
    """The all-routes sum counts every route, as in process: route/method matchers only admit it.

    ``error_count{route="", method=""}`` (what SLO burn-rate rules select) used to filter the
    source series by ``http_route=""`` too, so the total summed nothing in Prometheus.
    """
    promql = to_promql(parse('request_rate{route!="/health"} > 1'))
    assert "or (sum(rate(http_server_request_duration_seconds_count[1m])))" in promql
    total = to_promql(parse('error_count{route="", method="", job="api"} > 1'))
    assert 'sum(increase(http_server_request_duration_seconds_count{job="api"}[1m]))' in total


def test_cli_export_name_map_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``rules export --name-map FILE`` maps names; a bad map file exits 2 naming it."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("groups:\n- name: g\n  rules:\n  - {alert: A, expr: orders > 1}\n")
    mapping = tmp_path / "names.yaml"
    mapping.write_text("orders: orders_total\n")
    assert cli_main(["rules", "export", str(rules), "--name-map", str(mapping)]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["groups"][0]["rules"][0]["expr"] == "orders_total > 1"
    mapping.write_text("- not a mapping\n")
    assert cli_main(["rules", "export", str(rules), "--name-map", str(mapping)]) == 2
    assert "names.yaml" in capsys.readouterr().err
    assert cli_main(["rules", "export", str(rules), "--name-map", str(tmp_path / "no")]) == 2
    mapping.write_text("orders: 'bad name'\n")
    assert cli_main(["rules", "export", str(rules), "--name-map", str(mapping)]) == 2
    assert "not a valid Prometheus metric name" in capsys.readouterr().err


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
    # the sources of the system aliases, under their OTel names
    'system.cpu.utilization{cpu.mode="idle"}': [
        0.9,
        0.8,
        0.7,
        0.6,
        0.5,
        0.4,
        0.3,
        0.2,
        0.25,
        0.3,
        0.35,
    ],
    'system.cpu.utilization{cpu.mode="user"}': [
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
        0.6,
        0.7,
        0.8,
        0.75,
        0.7,
        0.65,
    ],
    'system.memory.utilization{system.memory.state="used"}': [0.5] * 10 + [0.625],
    'system.memory.utilization{system.memory.state="free"}': [0.5] * 10 + [0.375],
    'system.filesystem.usage{system.filesystem.mountpoint="/", system.filesystem.state="used"}': (
        [6e9] * 11
    ),
    'system.filesystem.usage{system.filesystem.mountpoint="/", system.filesystem.state="free"}': (
        [2e9] * 11
    ),
    'system.filesystem.usage{system.filesystem.mountpoint="/", system.filesystem.state="reserved"}': (  # noqa: E501 -- one series per line reads better
        [1e9] * 11
    ),
}
# The exposition names that differ from the sanitised OTel name (unit suffix), as on /metrics.
_EXPOSED = {"system.filesystem.usage": "system_filesystem_usage_bytes"}
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
    "CpuAlias": "cpu_usage > 50",
    "MemoryAlias": "memory_usage > 50",
    "DiskAlias": "avg(disk_usage[5m]) > 50",
}
_EVAL_AT = 630.0  # 10m30s: off the 1m sample grid, so closed/open window edges agree


def _paca_alerts() -> dict[str, list[dict[str, object]]]:
    store = SeriesStore()
    for i in range(11):
        for text, values in _SERIES.items():
            sel = parse(text)
            name = getattr(sel, "name", "")
            labels = labels_of({m.name: m.value for m in getattr(sel, "matchers", ())})
            store.append(name, labels, float(values[i]), i * 60.0)
        write_system(store, i * 60.0)  # the aliases, as the pipeline computes them
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
    """``promtool test rules`` sees the exported rules fire as paca-otel's evaluator does.

    The rules include the system aliases, exported as PromQL over their source metrics, so
    the alias translation is checked against Prometheus' own evaluation.
    """
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
        prom_text = to_promql(parse(text), _EXPOSED)
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


@pytest.mark.peer("promtool")
def test_prometheus_evaluates_red_alias_exports(tmp_path: Path) -> None:
    """Exported error_rate and latency_p95 compute per route/method and in total in Prometheus.

    The input is the FastAPI instrumentation's histogram as /metrics serves it: per route
    4 requests/s, 1/s of them 5xx, half under 100 ms and all under 500 ms.
    """
    promtool = require_binary("promtool")
    annotations = {"v": '{{ printf "%.6f" $value }}'}
    rules = [
        Rule(name="Errors", condition="error_rate > 0.1", annotations=annotations),
        Rule(name="Slow", condition="latency_p95 > 0.3", annotations=annotations),
        Rule(name="SlowA", condition='latency_p95{route="/a"} > 0.3', annotations=annotations),
    ]
    (tmp_path / "rules.yml").write_text(export_prometheus(rules).to_yaml())
    base = "http_server_request_duration_seconds"
    route = 'http_route="/a", http_request_method="GET"'
    ok, failed = 'http_response_status_code="200"', 'http_response_status_code="500"'
    series = [
        {"series": f"{base}_count{{{route}, {ok}}}", "values": "0+45x40"},
        {"series": f"{base}_count{{{route}, {failed}}}", "values": "0+15x40"},
        {"series": f'{base}_bucket{{{route}, le="0.1"}}', "values": "0+30x40"},
        {"series": f'{base}_bucket{{{route}, le="0.5"}}', "values": "0+60x40"},
        {"series": f'{base}_bucket{{{route}, le="+Inf"}}', "values": "0+60x40"},
    ]
    per_route = {"route": "/a", "method": "GET", "severity": "warning"}
    total = {"severity": "warning"}

    def alerts(value: str, *label_sets: dict[str, str]) -> list[dict[str, object]]:
        return [{"exp_labels": ls, "exp_annotations": {"v": value}} for ls in label_sets]

    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "Errors",
                        "exp_alerts": alerts("0.250000", per_route, total),
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "Slow",
                        "exp_alerts": alerts("0.460000", per_route, total),
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "SlowA",
                        "exp_alerts": alerts("0.460000", per_route),
                    },
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
