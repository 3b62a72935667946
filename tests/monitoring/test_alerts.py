"""The seed's alerting commands end to end: add_rule / setup_alert -> real SMTP, log, API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from paca_otel import AlertManager, MonitoringManager, PacaOtelError, RuleError, configure
from paca_otel.signals._system_source import StaticSource
from paca_otel.signals._system_stats import MemoryStats
from tests._wait import async_wait_until
from tests.peers import free_port


class _Inbox:
    """An aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(
        self, server: Any, session: Any, envelope: Any
    ) -> str:  # aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, _Inbox]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1."""
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def _memory(source: StaticSource, percent: int) -> None:
    source.mem = MemoryStats(total=1000, states={"used": percent * 10, "free": 1000 - percent * 10})
    time.sleep(0.25)  # past SystemMetrics' snapshot TTL (0.2 s), so the next collection reads it


async def test_seed_add_rule_sends_email_firing_and_resolved_with_cooldown(
    smtp: tuple[int, _Inbox],
) -> None:
    """memory_usage > 90 -> one FIRING mail (cooldown holds repeats), then one RESOLVED mail."""
    port, inbox = smtp
    source = StaticSource()
    _memory(source, 50)
    configure(
        system_source=source, metrics_exporter="none", smtp_host="127.0.0.1", smtp_port=port,
        smtp_to="ops@example.com", evaluation_interval=3600,
    )  # fmt: skip
    monitor = MonitoringManager()
    await monitor.start()
    await monitor.start_monitoring()

    alerts = AlertManager()
    await alerts.add_rule(
        name="high_memory_usage",
        condition="memory_usage > 90",
        action="send_email",
        cooldown=300,
    )
    _memory(source, 95)
    await alerts.evaluate()
    await async_wait_until(lambda: len(inbox.messages) == 1, "the first mail")
    assert "FIRING" in inbox.messages[0]["Subject"]
    assert "high_memory_usage" in inbox.messages[0]["Subject"]
    assert [a.rule for a in await monitor.get_active_alerts()] == ["high_memory_usage"]

    for _ in range(3):  # still firing, inside the 300 s cooldown: no repeat
        await alerts.evaluate()
    assert len(alerts.runtime.outbox.entries(channel="email")) == 1  # nothing more to send

    _memory(source, 40)
    await alerts.evaluate()
    await async_wait_until(lambda: len(inbox.messages) == 2, "the RESOLVED mail")
    assert len(inbox.messages) == 2  # delivery keeps order: a repeat would have come first
    assert "RESOLVED" in inbox.messages[1]["Subject"]
    assert (
        inbox.messages[0]["X-Paca-Idempotency-Key"] != inbox.messages[1]["X-Paca-Idempotency-Key"]
    )
    states = [e.state.value for e in alerts.get_alert_history()]
    assert states == ["resolved", "firing"]  # newest first
    await monitor.stop()


async def test_setup_alert_and_add_rule_share_one_engine() -> None:
    """Rules added through MonitoringManager and AlertManager, in any order, are one set."""
    early = AlertManager()
    early.add_rule_sync("queue_backlog", "queue_depth > 100", "log", 60)
    configure(metrics_exporter="none", system_metrics=False)
    monitor = MonitoringManager()
    await monitor.start()
    await monitor.setup_alert("cpu_usage", 80, "log")
    late = AlertManager()
    assert {r.name for r in late.rules} == {"queue_backlog", "cpu_usage_above_80"}
    assert {r.name for r in early.rules} == {"queue_backlog", "cpu_usage_above_80"}
    assert late.rules[1].condition == "cpu_usage > 80"
    await monitor.stop()


async def test_setup_alert_fires_on_a_custom_metric() -> None:
    """A custom metric recorded through MetricsCollector can be alerted on by name."""
    from paca_otel import MetricsCollector

    configure(metrics_exporter="none", system_metrics=False, evaluation_interval=3600)
    monitor = MonitoringManager()
    await monitor.start_monitoring()
    await monitor.setup_alert("queue_depth", 10, "log")
    await MetricsCollector().record_metric("queue_depth", 42, {"queue": "mail"})
    await AlertManager().evaluate()
    active = await monitor.get_active_alerts()
    assert [(a.rule, a.labels.get("queue"), a.value) for a in active] == [
        ("queue_depth_above_10", "mail", 42.0)
    ]
    await monitor.stop()


def test_bad_rules_fail_with_a_precise_message() -> None:
    """Parse errors name the column; an unknown channel lists the known ones."""
    alerts = AlertManager()
    with pytest.raises(RuleError, match="column"):
        alerts.add_rule_sync("x", "memory_usage >", "log", 300)
    with pytest.raises(RuleError, match=r"emial.*email.*log"):
        alerts.add_rule_sync("x", "memory_usage > 90", "emial", 300)
    with pytest.raises(RuleError, match="threshold"):
        asyncio.run(MonitoringManager().setup_alert("cpu_usage", float("nan"), "log"))


async def test_the_seed_runs_exactly_as_written(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed's block, pasted as is without SMTP settings, runs: every awaited call awaits."""
    from paca_otel import MetricsCollector, Rule

    monitoring = MonitoringManager(metrics_exporter="none")
    await monitoring.start()
    await monitoring.start_monitoring()
    metrics = await monitoring.get_current_metrics()
    print(metrics)
    rule = await monitoring.setup_alert(
        metric="cpu_usage", threshold=80.0, notification_channel="email"
    )
    collector = MetricsCollector()
    await collector.record_metric(
        name="response_time", value=0.5, labels={"endpoint": "/api/users"}
    )
    alert_manager = AlertManager()
    added = await alert_manager.add_rule(
        name="high_memory_usage", condition="memory_usage > 90", action="send_email", cooldown=300
    )
    await monitoring.stop()
    assert isinstance(added, Rule)
    assert added.channels == ["email"]
    assert rule.channels == ["email"]
    assert len(capsys.readouterr().out.splitlines()) < 30  # a summary, not 88 reprs
    warnings = [r.getMessage() for r in caplog.records if "not configured" in r.getMessage()]
    assert len(warnings) == 1  # once, though two rules route to email
    assert "smtp_host" in warnings[0]
    assert "PACA_OTEL_SMTP_HOST" in warnings[0]
    assert "smtp_to" in warnings[0]


async def test_unconfigured_email_notifications_are_logged_and_kept_in_history(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without smtp_host an email rule still fires: logged with a note, and in the history."""
    import logging

    source = StaticSource()
    _memory(source, 95)
    configure(system_source=source, metrics_exporter="none", evaluation_interval=3600)
    monitor = MonitoringManager()
    await monitor.start_monitoring()
    alerts = AlertManager()
    await alerts.add_rule("high_memory_usage", "memory_usage > 90", "send_email", 300)
    caplog.set_level(logging.INFO, logger="paca_otel.alerts")
    await alerts.evaluate()

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if "logged instead" in r.getMessage()]

    await async_wait_until(logged, "the logged notification")
    assert "[FIRING:1] high_memory_usage" in logged()[0]
    assert "channel 'email' is not configured" in logged()[0]
    assert [(e.rule, e.state.value) for e in alerts.get_alert_history()] == [
        ("high_memory_usage", "firing")
    ]
    assert alerts.runtime.unconfigured_channels() == ["email"]
    await monitor.stop()


async def test_email_configured_later_replaces_the_log_stand_in(smtp: tuple[int, _Inbox]) -> None:
    """A rule added before smtp_host is set mails once the configuration brings it."""
    port, inbox = smtp
    alerts = AlertManager()
    await alerts.add_rule("high_memory_usage", "memory_usage > 90", "send_email", 300)
    assert alerts.runtime.unconfigured_channels() == ["email"]
    source = StaticSource()
    _memory(source, 95)
    configure(
        system_source=source, metrics_exporter="none", smtp_host="127.0.0.1", smtp_port=port,
        smtp_to="ops@example.com", evaluation_interval=3600,
    )  # fmt: skip
    monitor = MonitoringManager()
    await monitor.start_monitoring()
    assert AlertManager().runtime.unconfigured_channels() == []
    await AlertManager().evaluate()
    await async_wait_until(lambda: len(inbox.messages) == 1, "the first mail")
    assert "high_memory_usage" in inbox.messages[0]["Subject"]
    await monitor.stop()


@pytest.mark.parametrize(
    ("action", "setting"),
    [
        ("webhook", "webhook_url"),
        ("slack", "slack_webhook_url"),
        ("alertmanager", "alertmanager_url"),
    ],
)
def test_other_unconfigured_builtin_channels_are_accepted(
    action: str, setting: str, caplog: pytest.LogCaptureFixture
) -> None:
    """webhook, slack and alertmanager without settings are accepted with a warning naming them."""
    rule = AlertManager().add_rule_sync("r", "cpu_usage > 90", action)
    assert rule.channels == [action]
    assert any(setting in r.getMessage() for r in caplog.records)


def test_add_rule_passes_only_given_arguments_so_rule_defaults_apply() -> None:
    """add_rule without no_data/cooldown/severity/action gets Rule's defaults (no_data ok)."""
    from paca_otel import Rule

    rule = AlertManager().add_rule_sync("r", "cpu_usage > 90")
    default = Rule(name="r", condition="cpu_usage > 90")
    assert rule == default
    assert rule.no_data == "ok"


async def test_setup_alert_passes_only_given_arguments() -> None:
    """setup_alert's rule differs from a bare Rule only in the arguments given."""
    from paca_otel import Rule

    rule = await MonitoringManager().setup_alert("cpu_usage", 80)
    assert rule == Rule(name="cpu_usage_above_80", condition="cpu_usage > 80")
    assert rule.no_data == "ok"


def _quiet(**extra: object) -> dict[str, object]:
    return {"metrics_exporter": "none", "system_metrics": False, **extra}


async def test_alert_manager_first_then_manager_settings_take_effect(tmp_path: Path) -> None:
    """AlertManager before MonitoringManager: the manager's state_path and interval still apply."""
    state = tmp_path / "state.db"
    alerts = AlertManager()
    alerts.add_rule_sync("always", "cpu_usage >= 0", "log", 0)
    silence_id = alerts.silence({"alertname": "other"}, duration=600)
    monitor = MonitoringManager(evaluation_interval=2, state_path=state, **_quiet())
    await monitor.start_monitoring()
    try:
        runtime = alerts.runtime
        assert runtime.engine.evaluation_interval == 2.0
        assert runtime.settings.state_path == state
        assert state.exists()
        assert [r.name for r in alerts.rules] == ["always"]
        alerts.expire_silence(silence_id)  # the id handed out before start still works
    finally:
        await monitor.stop()


async def test_setup_alert_accepts_numpy_like_numbers() -> None:
    """A numpy float threshold makes `metric > 95.5`, not a parse error on `np.float64(95.5)`."""

    class Float64(float):
        def __repr__(self) -> str:
            return f"np.float64({float(self)!r})"

    monitor = MonitoringManager(**_quiet())
    await monitor.start()
    try:
        rule = await monitor.setup_alert("cpu_usage", Float64(95.5))
        assert rule.condition == "cpu_usage > 95.5"
    finally:
        await monitor.stop()


async def test_setup_alert_rejects_a_boolean_threshold() -> None:
    """`True` is not a threshold: a RuleError naming it, not a silent `> 1`."""
    monitor = MonitoringManager(**_quiet())
    await monitor.start()
    try:
        with pytest.raises(RuleError, match="threshold"):
            await monitor.setup_alert("cpu_usage", True)
    finally:
        await monitor.stop()


def test_silence_mutes_matching_alerts() -> None:
    """silence() returns an id and can be expired."""
    alerts = AlertManager()
    silence_id = alerts.silence({"alertname": "high_cpu"}, duration=60)
    assert silence_id
    alerts.expire_silence(silence_id)


def test_rule_file_channels_resolve_like_add_rule(tmp_path: Path) -> None:
    """A rule file naming send_email without SMTP settings loads, routed to email (logged)."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: HighMemory\n"
        "        expr: memory_usage > 90\n        channels: [send_email]\n"
    )
    alerts = AlertManager()
    (rule,) = alerts.add_rules_from_file(path)
    assert rule.channels == ["email"]
    assert alerts.runtime.unconfigured_channels() == ["email"]


async def test_rules_file_setting_loads_rules_at_start(tmp_path: Path) -> None:
    """rules_file (PACA_OTEL_RULES_FILE) loads its rules when monitoring starts."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "groups:\n- name: g\n  rules:\n  - alert: HighCpuFromFile\n    expr: cpu_usage > 99\n"
    )
    monitor = MonitoringManager(rules_file=rules, prometheus_port=0, system_metrics=False)
    await monitor.start_monitoring()
    try:
        assert "HighCpuFromFile" in {rule.name for rule in AlertManager().rules}
    finally:
        await monitor.stop()


async def test_bad_rules_file_is_a_clear_error_at_start(tmp_path: Path) -> None:
    """A rules_file that does not parse fails start_monitoring with the file named."""
    rules = tmp_path / "broken.yaml"
    rules.write_text("groups:\n- name: g\n  rules:\n  - alert: X\n    expr: cpu_usage >\n")
    monitor = MonitoringManager(rules_file=rules, prometheus_port=0, system_metrics=False)
    try:
        with pytest.raises(PacaOtelError, match=r"broken\.yaml"):
            await monitor.start_monitoring()
    finally:
        await monitor.stop()
