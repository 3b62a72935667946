"""The alerting half of a composition root: :class:`AlertingRuntime`, built on first use.

An :class:`AlertingRuntime` owns the rule engine and delivery of one root
(:class:`paca_otel._runtime.Runtime`): the outbox, the dispatcher and its channels, the storage
connection they share and the scheduled reports. Its collaborators are handed to it (the root's
series store, a clock, the settings); it hands them on: the engine gets the outbox as its
notification sink, the dispatcher's ``wake`` and the storage connection.

Apart from the root's module because it is one concept of its own (what alerting is built
from and how it starts, stops and hands over across ``fork()``), and the root stays the small
owner of the parts; the root imports this module, never the other way round.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from paca_otel._handover import Handover, import_what_threads_need
from paca_otel._internal import warn_once
from paca_otel.alerting._engine import RuleEngine
from paca_otel.config import PacaOtelSettings
from paca_otel.delivery._dispatcher import Dispatcher
from paca_otel.delivery._outbox import Outbox
from paca_otel.delivery.channels import NotificationChannel, UnconfiguredChannel
from paca_otel.delivery.channels._configured import (
    ACTION_ALIASES,
    CHANNEL_SETTINGS,
    channels_from_settings,
)
from paca_otel.errors import RuleError, StorageError
from paca_otel.pipeline._store import SeriesStore
from paca_otel.rules._models import AlertEvent
from paca_otel.rules._rule import Rule, load_rules
from paca_otel.storage import Codec, Database, count_error, open_database

if TYPE_CHECKING:
    from paca_otel.analysis._report_schedule import ReportScheduler
    from paca_otel.analysis.history import HistoryStore
    from paca_otel.pipeline._collection import Collection
    from paca_otel.pipeline._pipeline import Pipeline

__all__ = [
    "MULTIPROCESS_STATE_FILE",
    "AlertingRuntime",
    "Telemetry",
    "alert_state_path",
    "rules_file_origin",
]

logger = logging.getLogger("paca_otel.alerts")


class Telemetry(Protocol):
    """What a root and its alerting use of a :class:`paca_otel._setup.Telemetry` handle.

    A protocol, not an import: ``setup`` builds handles on a root, so the root must not import
    ``setup`` back (no cycle between the two halves of the composition layer).
    """

    @property
    def settings(self) -> PacaOtelSettings: ...
    @property
    def pipeline(self) -> Pipeline: ...
    @property
    def collection(self) -> Collection: ...
    @property
    def history(self) -> HistoryStore | None: ...
    @property
    def is_shutdown(self) -> bool: ...
    def add_shutdown_hook(self, hook: Callable[[], object]) -> None: ...
    def add_fork_hook(self, name: str, hook: Callable[[Any], object]) -> None: ...


#: The alert state file inside ``multiprocess_dir`` when ``state_path`` is not set.
MULTIPROCESS_STATE_FILE = "alerting.sqlite3"


def alert_state_path(settings: PacaOtelSettings) -> Path | None:
    """Where alert state, rules, silences and the outbox live (``None``: in memory).

    ``state_path`` if set, else :data:`MULTIPROCESS_STATE_FILE` in ``multiprocess_dir``: the
    workers of one service then share it and elect one leader to evaluate the rules.
    """
    if settings.state_path is not None:
        return settings.state_path
    if settings.multiprocess_dir is not None:
        return settings.multiprocess_dir / MULTIPROCESS_STATE_FILE
    return None


def rules_file_origin(path: str | os.PathLike[str]) -> str:
    """The origin stored with the rules of the rules file at ``path``: ``file:<absolute path>``.

    Absolute so that workers started from other directories agree; symbolic links are not
    resolved, since a Kubernetes ConfigMap's file links into a directory renamed at each
    update, and the file must keep owning its rules across updates.
    """
    return "file:" + os.path.abspath(os.fspath(path))


class AlertingRuntime:
    """Owns the rule engine and delivery of one root (:class:`~paca_otel._runtime.Runtime`).

    Args:
        settings: What the storage, channels and evaluation interval are built from.
        store: The root's series store, which the engine reads.
        clock: Time source of the engine, outbox and dispatcher.
        fallback: When the state file is unusable (garbage, corrupt, read-only), warn once and
            keep alert state in memory instead of raising :class:`StorageError` (a running
            app's lifespan); set-up calls leave it ``False`` and get the error naming the path.
    """

    def __init__(
        self,
        settings: PacaOtelSettings,
        store: SeriesStore,
        *,
        clock: Callable[[], float] | None = None,
        fallback: bool = False,
    ):
        self.settings = settings
        self.store = store
        self.clock = clock or time.time
        self.channels = channels_from_settings(settings)
        codec = Codec.from_settings(settings)
        try:
            database = open_database(alert_state_path(settings))
            self.outbox, self.dispatcher, self.engine = self._build(database, codec)
        except StorageError as exc:
            if not fallback:
                raise
            count_error("open", exc)
            self.outbox, self.dispatcher, self.engine = self._build(open_database(None), codec)
        self.telemetry: Telemetry | None = None
        self._started = False
        self.attached_once = False
        self.reports: ReportScheduler | None = None
        self._rules_file_loaded = False

    def load_rules_file(self, path: str | os.PathLike[str]) -> list[Rule]:
        """Add every rule of a YAML rule file, channel names resolved as ``add_rule`` does.

        All rules are checked before the first is added, so a bad file changes nothing. The
        file owns its rules: those stored from an earlier load of it (:func:`rules_file_origin`)
        that it no longer has are removed, from every worker sharing the state file. Rules
        from code or the API are never removed here, nor a file rule the API edited since.

        Raises:
            RuleError: the file is missing, not YAML, or a rule is invalid (the message names
                the file and the rule).
        """
        rules = [
            rule.model_copy(update={"channels": [self.channel_for(c) for c in rule.channels]})
            for rule in load_rules(Path(path))
        ]
        origin = rules_file_origin(path)
        for rule in rules:
            self.engine.add_rule(rule, origin=origin)
        gone = self.engine.remove_rules_from(origin, (rule.name for rule in rules))
        if gone:
            logger.info(
                "paca-otel: removed %d rule(s) no longer in %s: %s",
                len(gone),
                os.fspath(path),
                ", ".join(gone),
            )
        return rules

    def _build(self, database: Database, codec: Codec) -> tuple[Outbox, Dispatcher, RuleEngine]:
        """Outbox, dispatcher and engine on one storage connection (each takes its reference)."""
        settings = self.settings
        try:
            from paca_otel.privacy import build_scrubber

            scrubber = build_scrubber(settings)
            outbox = Outbox(
                database=database,
                codec=codec,
                clock=self.clock,
                scrub=scrubber.scrub_payload if scrubber is not None else None,
            )
            try:
                dispatcher = Dispatcher(outbox, self.channels, clock=self.clock)
                engine = RuleEngine(
                    self.store,
                    outbox=outbox,
                    channels=self.channels,
                    database=database,
                    codec=codec,
                    clock=self.clock,
                    evaluation_interval=settings.evaluation_interval,
                    wake=dispatcher.wake,
                )
            except BaseException:
                outbox.close()
                raise
        finally:
            database.close()
        return outbox, dispatcher, engine

    def channel_for(self, action: str) -> str:
        """Resolve a seed action / channel name to a channel of this runtime.

        A built-in channel whose settings are missing (``send_email`` without ``smtp_host``)
        is accepted: a warning, once per channel, names the settings to set, and an
        :class:`UnconfiguredChannel` logs its notifications until :meth:`attach` finds the
        settings and puts the real channel in its place. Nothing is lost, nothing raises.

        Raises:
            RuleError: the name is neither a built-in channel nor one added with
                ``add_channel`` (a typo such as ``emial``); the message lists the known ones.
        """
        name = ACTION_ALIASES.get(action, action)
        if name in self.channels:
            return name
        hint = CHANNEL_SETTINGS.get(name)
        if hint is None:
            known = sorted({*self.channels, *CHANNEL_SETTINGS})
            msg = (
                f"channel {name!r} (from {action!r}) is unknown: use one of {', '.join(known)}, "
                f"or add it with AlertManager.add_channel({name!r}, channel)"
            )
            raise RuleError(msg)
        warn_once(
            logger,
            f"unconfigured_channel.{name}",
            "channel %r is not configured (%s): its notifications go to the log until it is",
            name,
            hint,
        )
        self.add_channel(name, UnconfiguredChannel(name, hint))
        return name

    def unconfigured_channels(self) -> list[str]:
        """Built-in channels rules route to whose notifications are only logged for now."""
        return sorted(n for n, c in self.channels.items() if isinstance(c, UnconfiguredChannel))

    def add_channel(self, name: str, channel: NotificationChannel) -> None:
        """Register a user channel (the NotificationChannel protocol) under ``name``."""
        self.channels[name] = channel  # the engine holds this same dict
        self.dispatcher.add_channel(name, channel)

    def attach(self, telemetry: Telemetry) -> None:
        """Evaluate against ``telemetry``'s pipeline and start the loops (idempotent).

        When that telemetry shuts down, the loops stop with it (rules and alert state stay,
        and a later ``attach`` resumes them).
        """
        if self.telemetry is telemetry and self._started:
            return
        self.telemetry = telemetry
        self.attached_once = True
        for name, channel in channels_from_settings(telemetry.settings).items():
            if name not in self.channels or isinstance(self.channels[name], UnconfiguredChannel):
                self.add_channel(name, channel)
        self.engine.bind_collector(telemetry.pipeline.collect)
        if telemetry.settings.rules_file is not None and not self._rules_file_loaded:
            self.load_rules_file(telemetry.settings.rules_file)
            self._rules_file_loaded = True
        telemetry.add_shutdown_hook(lambda: self.detach(telemetry))
        if not self._started:
            self._started = True
            import_what_threads_need()
            self.dispatcher.start()
            self.engine.start()
        self._start_reports(telemetry)

    def _start_reports(self, telemetry: Telemetry) -> None:
        """The scheduled report (``report_every``) over the telemetry's history, if both exist."""
        settings = telemetry.settings
        if settings.report_every is None or self.reports is not None:
            return
        history = telemetry.history
        if history is None:
            logger.warning(
                "paca-otel: report_every is set but history_enabled is not; no report is sent"
            )
            return
        from paca_otel.analysis._report_schedule import ReportScheduler
        from paca_otel.analysis.report import generate_report
        from paca_otel.privacy import build_scrubber

        every = settings.report_every
        scrubber = build_scrubber(settings)
        scrub = scrubber.scrub_text if scrubber is not None else None
        engine = self.engine

        def build(now: float) -> Any:
            return generate_report(
                history, every, now=now, alerts=engine.history(10_000), scrub=scrub
            )

        channels = [self.channel_for(name) for name in settings.report_channels]
        self.reports = ReportScheduler(
            build,
            self.outbox,
            channels,
            every=every,
            service=settings.service_name,
            on_sent=self.dispatcher.wake,
        )
        self.reports.start()

    def handover(self) -> Handover:
        """A snapshot of the user channels, rules and silences a successor takes over."""
        engine = self.engine
        return Handover(
            dict(self.channels),
            list(engine.rules.values()),
            engine.silences.all(),
            dict(engine.origins),
        )

    def take_over(self, old: AlertingRuntime | Handover) -> None:
        """Adopt the rules, user channels and silences ``old`` collected before it ever ran.

        ``old`` is a runtime, or the snapshot of one a forked child inherited.
        """
        given = old if isinstance(old, Handover) else old.handover()
        for name, channel in given.channels.items():
            if name not in self.channels or isinstance(self.channels[name], UnconfiguredChannel):
                self.add_channel(name, channel)
        for rule in given.rules:
            self.engine.add_rule(rule, origin=given.origins.get(rule.name))
        silences = self.engine.silences
        for record in given.silences:
            # Same ids: an id AlertManager.silence() returned before start must keep working.
            silences.adopt(record)

    def detach(self, telemetry: Telemetry) -> None:
        """Stop evaluating and sending for ``telemetry`` (it is shutting down)."""
        if self.telemetry is not telemetry:
            return
        self.telemetry = None
        if self.reports is not None:
            self.reports.stop()
            self.reports = None
        self.engine.stop()
        self.engine.bind_collector(None)
        self.dispatcher.stop()
        self._started = False

    @property
    def leader(self) -> bool:
        """Whether this worker evaluates the rules for the service (``/health`` shows it)."""
        return self.engine.leading

    def evaluate_now(self, now: float | None = None) -> list[AlertEvent]:
        """One tick right now (a follower only re-reads shared state), and wake the sender."""
        events = self.engine.scheduler.tick(now)
        self.dispatcher.wake()
        return events

    def close(self) -> None:
        self.engine.stop()
        self.dispatcher.stop()
        self.engine.close()
        self.outbox.close()
