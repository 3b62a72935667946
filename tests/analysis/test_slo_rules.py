"""Burn-rate presets: fire and resolve through the real RuleEngine, suppress, export."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from paca_otel.alerting._engine import RuleEngine
from paca_otel.analysis._slo_rules import PRESETS, burn_rate_rules, required_window, rules_yaml
from paca_otel.analysis.slo import SLO
from paca_otel.cli import main
from paca_otel.errors import ConfigError
from paca_otel.pipeline._store import SeriesStore
from paca_otel.rules._models import Notification
from paca_otel.rules._promql import export_prometheus
from paca_otel.rules._rule import Rule, load_rules
from tests.peers import require_binary

STEP = 300.0  # collection and evaluation every 5 minutes: 3 days stay cheap to simulate
HOUR = 3600.0


class Sink:
    """Records every notification the engine enqueues."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []

    def enqueue(self, notification: Notification) -> bool:
        self.notifications.append(notification)
        return True


class Scenario:
    """A fake clock driving the RED aliases (all routes) and the engine, one step at a time."""

    def __init__(self, rules: list[Rule]) -> None:
        self.store = SeriesStore(max_window=4 * 86_400.0, max_points=2_000)
        self.sink = Sink()
        self.t = 0.0
        self.engine = RuleEngine(self.store, outbox=self.sink, clock=lambda: self.t)
        for rule in rules:
            self.engine.add_rule(rule)
        self.timeline: list[tuple[float, frozenset[str]]] = []

    def run(self, hours: float, *, rate: float, error_ratio: float) -> None:
        """Serve ``rate`` requests/s with ``error_ratio`` failing for ``hours``."""
        for _ in range(int(hours * HOUR / STEP)):
            self.t += STEP
            per_window = rate * 60.0  # the RED window's request count
            self.store.append("request_rate", (), rate, self.t)
            self.store.append("request_count", (), per_window, self.t)
            self.store.append("error_count", (), per_window * error_ratio, self.t)
            self.engine.evaluate_once(self.t)
            firing = frozenset(
                a.rule.rsplit("_", 1)[-1]
                for a in self.engine.active_alerts()
                if a.state.value == "firing"
            )
            self.timeline.append((self.t, firing))

    def firing(self) -> frozenset[str]:
        return self.timeline[-1][1]

    def ever(self, preset: str) -> bool:
        return any(preset in firing for _, firing in self.timeline)


def slo() -> SLO:
    return SLO(name="api_availability", objective=0.999)


def test_rules_shape() -> None:
    """Three presets, pages critical and the ticket a warning, reading up to 3 days back."""
    rules = burn_rate_rules(slo())
    assert [r.name for r in rules] == [
        "api_availability_burn_fast",
        "api_availability_burn_slow",
        "api_availability_burn_ticket",
    ]
    assert [r.severity.value for r in rules] == ["critical", "critical", "warning"]
    assert required_window(rules) == 3 * 86_400
    assert "unless" not in rules[0].condition
    assert "unless" in rules[2].condition
    assert rules[0].labels["slo"] == "api_availability"
    assert [p.factor for p in PRESETS] == [14.4, 6.0, 1.0]


def test_presets_fire_resolve_and_suppress_on_fake_clock() -> None:
    """Slow burn opens a ticket; a burst pages and hides the ticket; after it all settle."""
    run = Scenario(burn_rate_rules(slo()))
    run.run(6, rate=10.0, error_ratio=0.0005)  # 0.5x budget: quiet
    assert not any(firing for _, firing in run.timeline)
    run.run(14, rate=10.0, error_ratio=0.003)  # 3x: a ticket, no page
    assert run.firing() == {"ticket"}
    assert not run.ever("fast")
    assert not run.ever("slow")
    run.run(0.5, rate=10.0, error_ratio=0.05)  # 50x burst: page
    assert run.firing() == {"fast"}
    run.run(4, rate=10.0, error_ratio=0.003)  # back to 3x: the page resolves
    assert run.ever("slow") is False or "fast" not in run.firing()
    assert "fast" not in run.firing()
    assert run.firing() == {"ticket"}
    for _, firing in run.timeline:  # never a ticket while a page fires, never two pages
        assert not ("ticket" in firing and firing & {"fast", "slow"})
        assert not {"fast", "slow"} <= firing
    states = [
        (event.rule.rsplit("_", 1)[-1], event.state.value)
        for n in run.sink.notifications
        for event in n.events
    ]
    assert ("fast", "firing") in states
    assert ("fast", "resolved") in states
    assert states.index(("fast", "firing")) < states.index(("fast", "resolved"))


def test_sustained_6x_pages_slow() -> None:
    """Eight times the budget for hours pages through the slow preset (6x over 6 h)."""
    run = Scenario(burn_rate_rules(slo()))
    run.run(1, rate=10.0, error_ratio=0.0)
    run.run(7, rate=10.0, error_ratio=0.008)
    assert run.firing() == {"slow"}


def test_minimum_traffic_guard() -> None:
    """A trickle (36 requests/h, ~216 per 6 h) with half failing pages only below the guard."""
    run = Scenario(burn_rate_rules(slo(), min_requests=300))
    run.run(3, rate=0.01, error_ratio=0.5)
    assert not run.ever("fast")
    assert not run.ever("slow")
    loud = Scenario(burn_rate_rules(slo(), min_requests=10))
    loud.run(3, rate=0.01, error_ratio=0.5)
    assert loud.ever("fast")


def test_route_slo_selects_its_route() -> None:
    """A per-route SLO reads only that route's series."""
    rules = burn_rate_rules(SLO(name="checkout", objective=0.99, route="/checkout", method="POST"))
    assert 'route="/checkout"' in rules[0].condition
    assert 'method="POST"' in rules[0].condition


def test_latency_slo_and_bad_arguments_refused() -> None:
    """Latency SLOs have no burn-rate preset; a negative traffic guard is an error."""
    with pytest.raises(ConfigError, match="availability SLOs only"):
        burn_rate_rules(SLO(name="fast", objective=0.99, kind="latency", threshold=0.3))
    with pytest.raises(ConfigError, match="min_requests"):
        burn_rate_rules(slo(), min_requests=-1)


@pytest.mark.peer("promtool")
def test_promtool_accepts_exported_presets(tmp_path: Path) -> None:
    """``rules export`` writes the presets as Prometheus rules that promtool accepts."""
    promtool = require_binary("promtool")
    rules = burn_rate_rules(slo()) + burn_rate_rules(
        SLO(name="checkout", objective=0.99, route="/checkout", method="POST")
    )
    export = export_prometheus(rules)
    assert export.skipped == []
    path = tmp_path / "slo.yml"
    path.write_text(export.to_yaml())
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 6 rules found" in proc.stdout


@pytest.mark.peer("promtool")
def test_prometheus_fires_the_exported_fast_page_only(tmp_path: Path) -> None:
    """In Prometheus (``promtool test rules``) a 6.7 % error burst pages fast, not slow too.

    The input is the FastAPI instrumentation's histogram count as /metrics serves it:
    10 requests/s, 1 in 15 of them 5xx, for 100 minutes. The ticket preset is left out: its
    3-day subqueries cost promtool ~10 s here, and its ``unless`` is the same construct.
    """
    import yaml

    promtool = require_binary("promtool")
    document = export_prometheus(burn_rate_rules(slo(), presets=PRESETS[:2])).document
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # the value-dependent summary is checked in process
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    base = 'http_server_request_duration_seconds_count{http_route="/a", http_request_method="GET"'
    series = [
        {"series": base + ', http_response_status_code="200"}', "values": "0+140x400"},
        {"series": base + ', http_response_status_code="500"}', "values": "0+10x400"},
    ]
    labels = {"slo": "api_availability", "severity": "critical", "burn_window": "1h/5m"}
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "15s",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "90m", "alertname": "api_availability_burn_fast",
                     "exp_alerts": [{"exp_labels": labels}]},
                    {"eval_time": "90m", "alertname": "api_availability_burn_slow",
                     "exp_alerts": []},
                ],
            }
        ],
    }  # fmt: skip
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    proc = subprocess.run(
        [promtool, "test", "rules", "tests.yml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.peer("promtool")
def test_rule_file_round_trips_and_exports_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The presets written as a rule file load back equal and ``paca-otel rules export`` them."""
    promtool = require_binary("promtool")
    rules = burn_rate_rules(slo(), page_channels=["pager"], labels={"team": "web"})
    path = tmp_path / "slo.yaml"
    path.write_text(rules_yaml(rules), encoding="utf-8")
    assert load_rules(path) == rules
    assert main(["rules", "export", str(path)]) == 0
    exported = tmp_path / "prometheus.yml"
    exported.write_text(capsys.readouterr().out, encoding="utf-8")
    proc = subprocess.run(
        [promtool, "check", "rules", str(exported)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
