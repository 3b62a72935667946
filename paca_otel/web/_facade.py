"""The facade the monitoring API's routes call onto the core: :class:`Monitor`.

Routes never import the setup, the runtime, the engine or the series store: they ask the
:class:`Monitor` that :func:`paca_otel.web._deps.get_monitor` hands them, and the Monitor asks
only the composition root (:class:`paca_otel._runtime.Runtime`) it was given, never a module
global. Every method here is synchronous and may do a collection or take a lock, so routes
call them in a worker thread, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from paca_otel.errors import PacaOtelError

if TYPE_CHECKING:
    from paca_otel._alerting_runtime import AlertingRuntime, Telemetry
    from paca_otel._runtime import Runtime
    from paca_otel._snapshot import MetricsSnapshot
    from paca_otel.alerting._state import ActiveAlert, SilenceRecord
    from paca_otel.config import PacaOtelSettings
    from paca_otel.pipeline._spans import REDStats
    from paca_otel.pipeline._store import Series
    from paca_otel.rules._models import AlertEvent
    from paca_otel.rules._rule import Rule

C = TypeVar("C")


class NotConfiguredError(PacaOtelError):
    """The process has no live telemetry: ``configure()`` was not called (or was shut down)."""


@dataclass(frozen=True, slots=True)
class LiveSample:
    """One tick of the live feed: the aliases now and each route's RED figures."""

    timestamp: float
    aliases: dict[str, float | None]
    routes: list[REDStats]


class Monitor:
    """The small facade the API routes use; each call reads the root's live state.

    Args:
        root: The composition root to read; its telemetry is looked up on each call, so the
            router works when mounted before ``configure()``.
    """

    def __init__(self, root: Runtime) -> None:
        self._root = root

    # ---------------------------------------------------------------- process state

    def telemetry(self) -> Telemetry:
        """The live telemetry handle.

        Raises:
            NotConfiguredError: ``configure()`` has not run.
        """
        found = self._root.telemetry
        if found is None:
            msg = "paca-otel is not configured: call configure() or start a MonitoringManager"
            raise NotConfiguredError(msg)
        return found

    def settings(self) -> PacaOtelSettings:
        """The live settings, or the environment's when nothing is configured yet."""
        return self._root.settings

    def component(self, kind: type[C]) -> C:
        """The root's one ``kind`` (built as ``kind()`` on first use): the API's per-root parts,
        such as its access control (``AccessSlot``) and live feed (``LiveFeed``)."""
        return self._root.component(kind)

    # ---------------------------------------------------------------- metrics

    def snapshot(self) -> MetricsSnapshot:
        """One collection of every metric, with the aliases (runs the metric callbacks)."""
        from paca_otel._manager import current_metrics

        return current_metrics(self.telemetry())

    def live(self) -> LiveSample:
        """The aliases and per-route RED figures now, for the dashboard's live feed."""
        telemetry = self.telemetry()
        snapshot = self.snapshot()
        figures = telemetry.pipeline.red_figures()  # every worker's, in multiprocess mode
        routes = [f for f in figures if f.route is not None]
        return LiveSample(snapshot.timestamp, snapshot.aliases(), routes)

    def series(
        self, name: str, matchers: Sequence[tuple[str, str, str]], *, start: float, end: float
    ) -> list[Series]:
        """The stored points of ``name`` matching ``matchers`` with ``start < ts <= end``.

        Raises:
            RuleError: a matcher's operator or regex is invalid.
        """
        from paca_otel.pipeline._store import Matcher

        built = [Matcher(n, op, v) for n, op, v in matchers]
        return self._root.store.select(name, built, start=start, end=end)

    def series_names(self) -> list[str]:
        """Every metric name the series store holds."""
        return self._root.store.names()

    # ---------------------------------------------------------------- alerting

    def _alerts(self) -> Any:
        from paca_otel._manager import AlertManager

        return AlertManager(self._root)

    def _alerting(self) -> AlertingRuntime:
        return self._root.alerting()

    def active_alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts."""
        alerts: list[ActiveAlert] = self._alerts().get_active_alerts()
        return alerts

    def alert_history(self, limit: int) -> list[AlertEvent]:
        """The newest ``limit`` firing/resolved transitions, newest first."""
        events: list[AlertEvent] = self._alerts().get_alert_history(limit)
        return events

    def rules(self) -> list[Rule]:
        """Every rule, sorted by name."""
        found: list[Rule] = self._alerts().rules
        return sorted(found, key=lambda rule: rule.name)

    def rule(self, name: str) -> Rule | None:
        """The rule called ``name``, if any."""
        return next((rule for rule in self._alerts().rules if rule.name == name), None)

    def put_rule(self, data: Mapping[str, Any]) -> Rule:
        """Add or replace a rule from :class:`Rule`'s fields (``channels`` may hold actions).

        Raises:
            RuleError: the parser's or a field's message.
        """
        rule: Rule = self._alerts().add_rule_data(data)
        return rule

    def remove_rule(self, name: str) -> None:
        """Remove a rule and forget its alerts."""
        self._alerts().remove_rule(name)

    def silences(self) -> list[SilenceRecord]:
        """Every known silence, expired ones included, oldest first."""
        found: list[SilenceRecord] = self._alerting().engine.silences.all()
        return found

    def silence(
        self,
        matchers: Sequence[tuple[str, str, str]],
        *,
        duration: float,
        comment: str,
        created_by: str = "",
    ) -> str:
        """Create a silence for ``duration`` seconds; return its id.

        Raises:
            RuleError: bad matchers or duration.
        """
        from paca_otel.pipeline._store import Matcher

        built = [Matcher(n, op, v) for n, op, v in matchers]
        silence_id: str = self._alerts().silence(
            built, duration=duration, comment=comment, created_by=created_by
        )
        return silence_id

    def expire_silence(self, silence_id: str) -> None:
        """End a silence now.

        Raises:
            RuleError: no silence has that id.
        """
        self._alerts().expire_silence(silence_id)

    # ---------------------------------------------------------------- reports

    def reports(self) -> list[Mapping[str, Any]]:
        """Analysis reports, newest first: the last hour's, rebuilt at most once a minute.

        Empty without metric history (``history_enabled``): there is nothing to analyse.
        """
        self.telemetry()  # NotConfiguredError before anything else
        report = self._root.recent_report(REPORT_PERIOD, title="Last hour")
        return [] if report is None else [report.to_dict()]

    # ---------------------------------------------------------------- health

    def health(self) -> dict[str, Any]:
        """Readiness of each part: exporters, channels, series store, storage."""
        from paca_otel._alerting_runtime import alert_state_path

        try:
            telemetry = self.telemetry()
        except NotConfiguredError:
            return {"configured": False}
        settings = telemetry.settings
        store = self._root.store
        runtime = self._alerting()
        return {
            "configured": True,
            "exporters": {
                signal: list(settings.exporters(signal)) for signal in ("traces", "metrics", "logs")
            },
            "channels": sorted(runtime.channels),
            "unconfigured_channels": runtime.unconfigured_channels(),
            "store": {
                "series": len(store),
                "max_series": store.max_series,
                "overflow_series": store.overflow_series,
            },
            "storage": {
                "path": "memory" if alert_state_path(settings) is None else "file",
                "errors": runtime.engine.storage_errors,
                "alerting_leader": runtime.leader,
            },
        }


REPORT_PERIOD = 3600.0
"""Seconds the dashboard's report covers."""
