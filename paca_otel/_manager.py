"""The seed's facades: MonitoringManager (set-up, gauges, metrics) and AlertManager (rules).

Both delegate to a composition root (:class:`paca_otel._runtime.Runtime`): the default one unless
given another, so every MonitoringManager and AlertManager of the process shares the same
pipeline and rule engine, in whatever order they are created. ``add_rule`` is
awaitable, as the seed writes it, with ``add_rule_sync`` beside it for synchronous code.
``MonitoringManager.start()`` adopts a live ``configure()`` or makes one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paca_otel._alerting_runtime import AlertingRuntime
from paca_otel._alerting_runtime import Telemetry as BoundTelemetry
from paca_otel._runtime import Runtime, default_runtime
from paca_otel._setup import Telemetry, configure, get_telemetry
from paca_otel._snapshot import MetricsSnapshot, snapshot_from
from paca_otel.alerting._engine import ActiveAlert
from paca_otel.config import PacaOtelSettings
from paca_otel.delivery.channels import NotificationChannel
from paca_otel.errors import RuleError
from paca_otel.rules._models import AlertEvent
from paca_otel.rules._rule import Rule

if TYPE_CHECKING:
    from fastapi import FastAPI

    from paca_otel.analysis._report_model import Report
    from paca_otel.analysis.slo import SLO
    from paca_otel.analysis.source import SeriesSource


logger = logging.getLogger("paca_otel")


class MonitoringManager:
    """Start, read and stop monitoring of this process (the seed API).

    Example::

        monitor = MonitoringManager(service_name="shop")
        await monitor.start()
        await monitor.start_monitoring()
        metrics = await monitor.get_current_metrics()
        print(metrics["cpu_usage"], metrics.memory_usage)
        await monitor.stop()
    """

    def __init__(
        self,
        settings: PacaOtelSettings | None = None,
        *,
        app: FastAPI | None = None,
        **overrides: Any,
    ) -> None:
        self._settings = settings
        self._overrides = overrides
        self._app = app
        self._telemetry: Telemetry | None = None
        self._owns_telemetry = False
        self._monitoring = False

    @property
    def telemetry(self) -> Telemetry | None:
        """The configuration this manager runs on, once started."""
        return self._telemetry

    @property
    def is_running(self) -> bool:
        return self._telemetry is not None and not self._telemetry.is_shutdown

    @property
    def root(self) -> Runtime:
        """The composition root this manager delegates to: its telemetry's, else the default."""
        telemetry = self._telemetry
        return telemetry.runtime if telemetry is not None else default_runtime()

    def _alerts(self) -> AlertManager:
        return AlertManager(self.root)

    async def start(self) -> None:
        """Configure telemetry, or adopt the configuration already live in the process.

        Idempotent: a second call does nothing.
        """
        if self.is_running:
            return
        live = get_telemetry()
        if live is not None and self._settings is None and not self._overrides:
            self._telemetry = live
            self._owns_telemetry = False
            if self._app is not None:
                live.instrument_app(self._app)
            return
        self._telemetry = configure(self._settings, app=self._app, **self._overrides)
        self._owns_telemetry = True

    async def start_monitoring(self) -> None:
        """Start the system gauges and the alert evaluation loop (starting telemetry if needed).

        Idempotent.
        """
        await self.start()
        if self._monitoring:
            return
        self._monitoring = True
        telemetry = self._require()
        if telemetry.system is None and not telemetry.settings.sdk_disabled:
            from paca_otel.signals._system import SystemMetrics

            telemetry.system = SystemMetrics(telemetry.meter_provider)
        # Opening the state file may wait on SQLite's busy budget: not on the event loop.
        await asyncio.to_thread(telemetry.runtime.attach, telemetry)

    async def setup_alert(
        self,
        metric: str,
        threshold: float,
        notification_channel: str | None = None,
        *,
        cooldown: float | str | None = None,
        for_: float | str | None = None,
        severity: str | None = None,
        name: str | None = None,
    ) -> Rule:
        """Alert when ``metric > threshold`` (the seed's sugar over ``AlertManager.add_rule``).

        Arguments left at ``None`` take :class:`~paca_otel.rules._rule.Rule`'s defaults
        (the channel: the engine's default, ``log``). A built-in channel that is not configured
        yet is accepted; its notifications are logged until it is (see ``add_rule_sync``).

        Raises:
            RuleError: bad metric name or threshold, or an unknown channel.
        """

        # numbers.Real takes numpy scalars too; float() gives them a repr the parser reads
        # (numpy's own is ``np.float64(95.5)``). A bool is not a threshold.
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, numbers.Real)
            or not math.isfinite(threshold)
        ):
            msg = f"setup_alert: threshold must be a finite number, got {threshold!r}"
            raise RuleError(msg)
        value = int(threshold) if isinstance(threshold, numbers.Integral) else float(threshold)
        return await self._alerts().add_rule(
            name or f"{metric}_above_{value:g}",
            f"{metric} > {value!r}",
            notification_channel,
            cooldown,
            for_=for_,
            severity=severity,
        )

    async def get_active_alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts (shared with every AlertManager)."""

        return self._alerts().get_active_alerts()

    async def get_alert_history(self, limit: int | None = None) -> list[AlertEvent]:
        """Recent firing/resolved transitions, newest first (``AlertManager``'s default limit)."""

        alerts = self._alerts()
        return alerts.get_alert_history() if limit is None else alerts.get_alert_history(limit)

    async def silence(
        self,
        matchers: Mapping[str, str],
        *,
        duration: float | None = None,
        until: float | None = None,
        comment: str | None = None,
    ) -> str:
        """Mute notifications of matching alerts; returns its id (see ``AlertManager.silence``).

        Runs in a worker thread: a silence is persisted in the state file.
        """

        given = {"duration": duration, "until": until, "comment": comment}
        kwargs: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        return await asyncio.to_thread(self._alerts().silence, matchers, **kwargs)

    def add_demo_rules(self) -> None:
        """The demo's rules: they fire on the demo's own traffic and system load."""

        alerts = self._alerts()
        alerts.add_rule_sync("high_error_rate", "error_rate > 0.1", "log", 60, for_="30s",
                             clear="error_rate < 0.05")  # fmt: skip
        alerts.add_rule_sync("high_cpu", "cpu_usage > 90", "log", 300, for_="1m")
        alerts.add_rule_sync("high_memory_usage", "memory_usage > 90", "log", 300, for_="1m")
        alerts.add_rule_sync("slow_requests", "latency_p95 > 0.5", "log", 300, for_="1m")

    async def generate_report(
        self,
        period: float | str = "24h",
        *,
        slos: Sequence[SLO] | None = None,
        source: SeriesSource | None = None,
    ) -> Report:
        """Analyse the last ``period`` (seconds or a duration such as ``"24h"``) into a report.

        Reads the embedded history (``history_enabled=True``) or ``source`` (for example a
        :class:`~paca_otel.analysis.prometheus_source.PrometheusSource`); lists the alerts the
        rule engine fired; every string in the report goes through the scrubber. Render it
        with :func:`paca_otel.analysis.report_render.render` (``md``, ``json`` or ``html``).

        Raises:
            ConfigError: there is no history to read (neither ``history_enabled`` nor
                ``source``), or ``period`` is not a duration.
        """
        import time

        from paca_otel.analysis.report import generate_report
        from paca_otel.errors import ConfigError
        from paca_otel.privacy import build_scrubber
        from paca_otel.rules._rule import parse_duration

        try:
            seconds = parse_duration(period)
        except ValueError as exc:
            msg = f"generate_report: period must be a duration like '24h', got {period!r}"
            raise ConfigError(msg) from exc
        telemetry = self._require()
        history = source if source is not None else telemetry.history
        if history is None:
            msg = (
                "generate_report needs metric history: set history_enabled=True "
                "(PACA_OTEL_HISTORY_ENABLED) or pass source=PrometheusSource(url)"
            )
            raise ConfigError(msg)
        alerts = telemetry.runtime.alerting().engine.history(10_000)
        scrubber = build_scrubber(telemetry.settings)
        return await asyncio.to_thread(
            generate_report,
            history,
            seconds,
            now=time.time(),
            alerts=alerts,
            slos=slos,
            scrub=scrubber.scrub_text if scrubber is not None else None,
        )

    async def get_current_metrics(self) -> MetricsSnapshot:
        """Current values of the system aliases and every metric, from one SDK collection."""
        telemetry = self._require()
        # Collection runs every callback (psutil included); keep it off the event loop.
        return await asyncio.to_thread(current_metrics, telemetry)

    async def stop(self) -> None:
        """Stop monitoring; shut telemetry down if this manager started it. Idempotent."""
        telemetry, self._telemetry = self._telemetry, None
        self._monitoring = False
        if telemetry is None:
            return
        if self._owns_telemetry and not telemetry.is_shutdown:
            await asyncio.to_thread(telemetry.shutdown)

    def _require(self) -> Telemetry:
        if self._telemetry is None or self._telemetry.is_shutdown:
            msg = "MonitoringManager is not started: await monitor.start() first"
            raise RuntimeError(msg)
        return self._telemetry


def current_metrics(telemetry: BoundTelemetry) -> MetricsSnapshot:
    """One collection of the in-process reader, flattened (used by the manager and the API).

    The percent aliases come from that collection, the request aliases from the RED span
    processor's all-routes figure over its window, by the same formulas the rules use. With
    no request in the window, the rates and counts are 0 and the latencies have no value.
    """
    from paca_otel.pipeline._aliases import red_values
    from paca_otel.pipeline._spans import REDStats
    from paca_otel.signals._system_aliases import seed_aliases

    data = telemetry.collection.collect_service()
    aliases: dict[str, float | None] = dict(seed_aliases(data)) if data is not None else {}
    figures = telemetry.pipeline.red_figures()
    no_traffic = REDStats(None, None, 0, 0, 0.0, 0.0, None, None, None)
    overall = next((f for f in figures if f.route is None), no_traffic)
    aliases.update(red_values(overall))
    return snapshot_from(data, aliases)


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

    def __init__(self, root: Runtime | None = None) -> None:
        self._root = root

    @property
    def root(self) -> Runtime:
        """The composition root the rules live in: the one given, else the default."""
        return self._root if self._root is not None else default_runtime()

    @property
    def runtime(self) -> AlertingRuntime:
        """The root's rule engine and delivery (built on first use)."""
        return self.root.alerting()

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
        an unconfigured built-in channel logs), all before the first rule is added. The file
        owns its rules: a rule an earlier load of it added that it no longer has is removed.
        """
        return self.runtime.load_rules_file(path)

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
        created_by: str = "",
    ) -> str:
        """Mute notifications of matching alerts (``alertname`` is the rule name); returns an id.

        Until ``until`` (a Unix time), else for ``duration`` seconds, else for
        :data:`DEFAULT_SILENCE_SECONDS`.
        """
        if until is None and duration is None:
            duration = DEFAULT_SILENCE_SECONDS
        return self.runtime.engine.silence(
            matchers, duration=None if until is not None else duration, until=until,
            comment=comment, created_by=created_by,
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
