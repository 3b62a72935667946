"""AlertManager: the seed's facade for rules, silences and alert state.

Every AlertManager of the process talks to the one shared runtime (:mod:`paca_otel.runtime`),
so ``AlertManager().add_rule(...)`` and ``MonitoringManager().setup_alert(...)`` fill the same
rule engine in whatever order they are created. ``add_rule`` is awaitable, as the seed writes it,
with ``add_rule_sync`` beside it for synchronous code; the other calls stay plain methods
(``MonitoringManager`` has awaitable forms of the reads). Evaluation and delivery run on the
runtime's own threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paca_otel.alerting.channels import NotificationChannel
from paca_otel.alerting.engine import ActiveAlert
from paca_otel.alerting.models import AlertEvent
from paca_otel.alerting.rules import Rule, load_rules
from paca_otel.runtime import AlertingRuntime, get_runtime

DEFAULT_SILENCE_SECONDS = 3600.0
"""How long a silence lasts when neither ``duration`` nor ``until`` is given: one hour."""


class AlertManager:
    """Add rules and read alerts (the seed API).

    ``add_rule`` is a coroutine, as the seed awaits it; ``add_rule_sync`` is the same call for
    synchronous code, the way ``MetricsCollector.record_metric`` and ``record`` sit side by
    side. Both return the validated :class:`Rule`.

    Example::

        alerts = AlertManager()
        await alerts.add_rule(name="high_memory_usage", condition="memory_usage > 90",
                              action="send_email", cooldown=300)
        alerts.add_rule_sync("high_cpu", "cpu_usage > 90", "log", 300)  # from sync code
    """

    @property
    def runtime(self) -> AlertingRuntime:
        return get_runtime()

    async def add_rule(
        self,
        name: str,
        condition: str,
        action: str | Sequence[str] | None = None,
        cooldown: float | str | None = None,
        *,
        for_: float | str | None = None,
        keep_firing_for: float | str | None = None,
        severity: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        clear: str | None = None,
        no_data: str | None = None,
    ) -> Rule:
        """Add (or replace) a rule; ``action`` names the channel(s) to notify.

        The awaitable form of :meth:`add_rule_sync` (same arguments, same result). The work
        runs in a worker thread: with a ``state_path`` the engine may touch its SQLite file,
        which must not happen on the event loop.

        Raises:
            RuleError: see :meth:`add_rule_sync`.
        """
        return await asyncio.to_thread(
            self.add_rule_sync,
            name,
            condition,
            action,
            cooldown,
            for_=for_,
            keep_firing_for=keep_firing_for,
            severity=severity,
            labels=labels,
            annotations=annotations,
            clear=clear,
            no_data=no_data,
        )

    def add_rule_sync(
        self,
        name: str,
        condition: str,
        action: str | Sequence[str] | None = None,
        cooldown: float | str | None = None,
        *,
        for_: float | str | None = None,
        keep_firing_for: float | str | None = None,
        severity: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        clear: str | None = None,
        no_data: str | None = None,
    ) -> Rule:
        """Add (or replace) a rule from synchronous code; ``action`` names the channel(s).

        An argument left at ``None`` is not passed on, so :class:`Rule`'s own default applies
        (cooldown 300 s, ``for`` 0, severity warning, ``no_data`` ok, the engine's default
        channel ``log``): every default is defined once, in :class:`Rule`. A built-in channel
        that is not configured yet (``send_email`` without ``smtp_host``) is accepted: its
        notifications are logged until it is, with a warning naming the settings to set.

        Raises:
            RuleError: the condition does not parse (``ParseError``, with the column), a field
                is invalid, or the channel is unknown (the message lists the known ones).
        """
        given: dict[str, Any] = {
            "channels": [action] if isinstance(action, str) else action,
            "cooldown": cooldown,
            "for": for_,
            "keep_firing_for": keep_firing_for,
            "severity": severity,
            "labels": labels,
            "annotations": annotations,
            "clear": clear,
            "no_data": no_data,
        }
        return self.add_rule_data(
            {"name": name, "condition": condition}
            | {key: value for key, value in given.items() if value is not None}
        )

    def add_rule_data(self, data: Mapping[str, Any]) -> Rule:
        """Add (or replace) a rule given as a mapping of :class:`Rule`'s fields.

        What the web API's body and other generic callers use: a field not in ``data`` takes
        ``Rule``'s default, and ``channels`` may hold the seed's action names
        (``send_email``), resolved as in :meth:`add_rule_sync`.

        Raises:
            RuleError: see :meth:`add_rule_sync`.
        """
        runtime = self.runtime
        fields = dict(data)
        for key in ("labels", "annotations"):
            if isinstance(fields.get(key), Mapping):
                fields[key] = dict(fields[key])
        channels = fields.get("channels")
        if channels is not None:
            names = [channels] if isinstance(channels, str) else list(channels)
            fields["channels"] = [runtime.channel_for(str(a)) for a in names]
        rule = Rule(**fields)
        runtime.engine.add_rule(rule)
        return rule

    def add_rules_from_file(self, path: str | Path) -> list[Rule]:
        """Load every rule of a YAML rule file (see ``paca-otel rules check``).

        Channel names are resolved as in :meth:`add_rule_sync` (``send_email`` is ``email``;
        an unconfigured built-in channel logs), all before the first rule is added.
        """
        runtime = self.runtime
        rules = [
            rule.model_copy(update={"channels": [runtime.channel_for(c) for c in rule.channels]})
            for rule in load_rules(path)
        ]
        for rule in rules:
            runtime.engine.add_rule(rule)
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
        duration: float | None = None,
        until: float | None = None,
        comment: str = "",
    ) -> str:
        """Mute notifications of matching alerts (``alertname`` is the rule name); returns an id.

        Until ``until`` (a Unix time), else for ``duration`` seconds, else for
        :data:`DEFAULT_SILENCE_SECONDS`.
        """
        if until is None and duration is None:
            duration = DEFAULT_SILENCE_SECONDS
        return self.runtime.engine.silence(
            matchers, duration=None if until is not None else duration, until=until,
            comment=comment,
        )  # fmt: skip

    def expire_silence(self, silence_id: str) -> None:
        self.runtime.engine.expire_silence(silence_id)

    async def evaluate(self) -> list[AlertEvent]:
        """Run one evaluation cycle now (normally the runtime's thread does this)."""
        return await asyncio.to_thread(self.runtime.evaluate_now)

    def __repr__(self) -> str:
        return f"AlertManager(rules={len(self.runtime.engine.rules)})"


def rule_payload(rule: Rule) -> dict[str, Any]:
    """A rule as the API returns it."""
    return rule.model_dump(mode="json", by_alias=True)
