"""AlertManager: the seed's facade for rules, silences and alert state.

Every AlertManager of the process talks to the one shared runtime (:mod:`paca_otel.runtime`),
so ``AlertManager().add_rule(...)`` and ``MonitoringManager().setup_alert(...)`` fill the same
rule engine in whatever order they are created. Its calls do no I/O, so they are plain methods;
evaluation and delivery run on the runtime's own threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paca_otel.alerting.channels import NotificationChannel
from paca_otel.alerting.engine import ActiveAlert
from paca_otel.alerting.models import AlertEvent
from paca_otel.alerting.rules import Rule, load_rules
from paca_otel.runtime import AlertingRuntime, get_runtime


class AlertManager:
    """Add rules and read alerts (the seed API).

    Example::

        alerts = AlertManager()
        alerts.add_rule(name="high_memory_usage", condition="memory_usage > 90",
                        action="send_email", cooldown=300)
    """

    @property
    def runtime(self) -> AlertingRuntime:
        return get_runtime()

    def add_rule(
        self,
        name: str,
        condition: str,
        action: str | Sequence[str] = "log",
        cooldown: float | str = 300,
        *,
        for_: float | str = 0,
        keep_firing_for: float | str = 0,
        severity: str = "warning",
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        clear: str | None = None,
        no_data: str = "keep",
    ) -> Rule:
        """Add (or replace) a rule; ``action`` names the channel(s) to notify.

        Raises:
            RuleError: the condition does not parse (``ParseError``, with the column), a field
                is invalid, or the channel is not configured (the message says what to set).
        """
        runtime = self.runtime
        actions = [action] if isinstance(action, str) else list(action)
        channels = [runtime.channel_for(a) for a in actions]
        rule = Rule(
            name=name,
            condition=condition,
            cooldown=cooldown,
            channels=channels,
            keep_firing_for=keep_firing_for,
            severity=severity,
            labels=dict(labels or {}),
            annotations=dict(annotations or {}),
            clear=clear,
            no_data=no_data,
            **{"for": for_},
        )
        runtime.engine.add_rule(rule)
        return rule

    def add_rules_from_file(self, path: str | Path) -> list[Rule]:
        """Load every rule of a YAML rule file (see ``paca-otel rules check``)."""
        rules = load_rules(path)
        for rule in rules:
            for channel in rule.channels:
                self.runtime.channel_for(channel)
        for rule in rules:
            self.runtime.engine.add_rule(rule)
        return rules

    def remove_rule(self, name: str) -> None:
        """Remove a rule and forget its alerts."""
        self.runtime.engine.remove_rule(name)

    @property
    def rules(self) -> list[Rule]:
        return list(self.runtime.engine.rules.values())

    def add_channel(self, name: str, channel: NotificationChannel) -> None:
        """Register your own channel (anything with ``name``, ``resend_interval``, ``send``)."""
        self.runtime.add_channel(name, channel)

    def get_active_alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts, one per rule and label set."""
        return self.runtime.engine.active_alerts()

    def get_alert_history(self, limit: int = 100) -> list[AlertEvent]:
        """The most recent firing/resolved transitions, newest first."""
        return self.runtime.engine.history(limit)

    def silence(
        self,
        matchers: Mapping[str, str],
        *,
        duration: float | None = 3600.0,
        until: float | None = None,
        comment: str = "",
    ) -> str:
        """Mute notifications of matching alerts (``alertname`` is the rule name); returns an id."""
        if until is not None:
            duration = None
        return self.runtime.engine.silence(
            matchers, duration=duration, until=until, comment=comment
        )

    def expire_silence(self, silence_id: str) -> None:
        self.runtime.engine.expire_silence(silence_id)

    async def evaluate(self) -> list[AlertEvent]:
        """Run one evaluation cycle now (normally the runtime's thread does this)."""
        import asyncio

        return await asyncio.to_thread(self.runtime.evaluate_now)

    def __repr__(self) -> str:
        return f"AlertManager(rules={len(self.runtime.engine.rules)})"


def rule_payload(rule: Rule) -> dict[str, Any]:
    """A rule as the API returns it."""
    return rule.model_dump(mode="json", by_alias=True)
