"""The process's one alerting runtime: store, rule engine, outbox, dispatcher and channels.

Every ``MonitoringManager`` and ``AlertManager`` of the process shares it, the way OTel's global
providers are shared, so a rule added through either is evaluated and visible through both,
whichever was created first. The series store outlives re-configuration; each ``configure()``
builds a new :class:`~paca_otel.pipeline.pipeline.Pipeline` over it and :func:`attach` points
the engine at that pipeline.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from paca_otel._internal import warn_once
from paca_otel.alerting.channels import (
    AlertmanagerChannel,
    EmailChannel,
    LogChannel,
    NotificationChannel,
    SlackChannel,
    UnconfiguredChannel,
    WebhookChannel,
)
from paca_otel.alerting.dispatcher import Dispatcher
from paca_otel.alerting.engine import RuleEngine
from paca_otel.alerting.models import AlertEvent
from paca_otel.alerting.outbox import Outbox
from paca_otel.alerting.rules import Rule, load_rules
from paca_otel.config import PacaOtelSettings, load_settings
from paca_otel.errors import RuleError, StorageError
from paca_otel.pipeline import shared_store
from paca_otel.storage import Codec, Database, count_error, open_database

if TYPE_CHECKING:
    from paca_otel.alerting.state import SilenceRecord
    from paca_otel.analysis.report_schedule import ReportScheduler
    from paca_otel.setup import Telemetry

#: The seed's action names and the channel each stands for.
ACTION_ALIASES: dict[str, str] = {
    "send_email": "email",
    "email": "email",
    "webhook": "webhook",
    "send_webhook": "webhook",
    "slack": "slack",
    "send_slack": "slack",
    "log": "log",
    "alertmanager": "alertmanager",
}

logger = logging.getLogger("paca_otel.alerts")

_lock = threading.RLock()
_runtime: AlertingRuntime | None = None
_runtime_pid = os.getpid()  # the process _runtime was built in
_handover: Handover | None = None  # what a forked child's runtime takes over


def _before_fork() -> None:
    """In the parent, just before ``fork()``: snapshot what a child's runtime takes over.

    Taken here, where the threads that hold the engine's locks are alive to release them; in
    the child those locks may stay held forever. ``_lock`` is held across the fork so no
    other thread is half-way through building a runtime.
    """
    global _handover  # noqa: PLW0603  # see get_runtime
    _lock.acquire()
    runtime = _runtime
    try:
        _handover = runtime.handover() if runtime is not None else None
    except Exception:  # a fork must never fail because of monitoring
        logger.exception("paca-otel: cannot snapshot the alerting runtime before fork()")
        _handover = None


def _after_fork_in_parent() -> None:
    global _handover  # noqa: PLW0603  # see get_runtime
    _handover = None
    _lock.release()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_lock.release
)


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


def channels_from_settings(settings: PacaOtelSettings) -> dict[str, NotificationChannel]:
    """The channels the settings configure; ``log`` is always there."""
    channels: dict[str, NotificationChannel] = {"log": LogChannel(name="log")}
    if settings.webhook_url:
        channels["webhook"] = WebhookChannel(
            settings.webhook_url.get_secret_value(), name="webhook"
        )
    if settings.slack_webhook_url:
        channels["slack"] = SlackChannel(
            settings.slack_webhook_url.get_secret_value(), name="slack"
        )
    if settings.alertmanager_url:
        channels["alertmanager"] = AlertmanagerChannel(
            settings.alertmanager_url.get_secret_value(), name="alertmanager"
        )
    if settings.smtp_host:
        channels["email"] = EmailChannel(
            settings.smtp_host,
            settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            sender=settings.smtp_from,
            recipients=list(settings.smtp_to) or [settings.smtp_from],
            starttls=settings.smtp_starttls,
            name="email",
        )
    return channels


CHANNEL_SETTINGS: dict[str, str] = {
    "email": "set smtp_host (PACA_OTEL_SMTP_HOST) and smtp_to (PACA_OTEL_SMTP_TO)",
    "webhook": "set webhook_url (PACA_OTEL_WEBHOOK_URL)",
    "slack": "set slack_webhook_url (PACA_OTEL_SLACK_WEBHOOK_URL)",
    "alertmanager": "set alertmanager_url (PACA_OTEL_ALERTMANAGER_URL)",
}
"""The built-in channels that need settings, and what to set for each (``log`` needs none)."""


class Handover(NamedTuple):
    """What a successor runtime adopts from its predecessor (see ``take_over``)."""

    channels: dict[str, NotificationChannel]
    rules: list[Rule]
    silences: list[SilenceRecord]


class AlertingRuntime:
    """Owns the engine and delivery of this process; see the module docstring.

    Args:
        fallback: When the state file is unusable (garbage, corrupt, read-only), warn once and
            keep alert state in memory instead of raising :class:`StorageError` (a running
            app's lifespan); set-up calls leave it ``False`` and get the error naming the path.
    """

    def __init__(
        self,
        settings: PacaOtelSettings,
        *,
        clock: Callable[[], float] | None = None,
        fallback: bool = False,
    ):
        import time

        self.settings = settings
        self.clock = clock or time.time
        self.channels = channels_from_settings(settings)
        codec = Codec.from_settings(settings)
        try:
            database = open_database(alert_state_path(settings))
            self.outbox, self.engine = self._build(database, codec)
        except StorageError as exc:
            if not fallback:
                raise
            count_error("open", exc)
            self.outbox, self.engine = self._build(open_database(None), codec)
        self.dispatcher = Dispatcher(self.outbox, self.channels, clock=self.clock)
        self.telemetry: Telemetry | None = None
        self._started = False
        self.attached_once = False
        self.reports: ReportScheduler | None = None
        self._rules_file_loaded = False

    def load_rules_file(self, path: str | os.PathLike[str]) -> list[Rule]:
        """Add every rule of a YAML rule file, channel names resolved as ``add_rule`` does.

        All rules are checked before the first is added, so a bad file changes nothing.

        Raises:
            RuleError: the file is missing, not YAML, or a rule is invalid (the message names
                the file and the rule).
        """
        rules = [
            rule.model_copy(update={"channels": [self.channel_for(c) for c in rule.channels]})
            for rule in load_rules(Path(path))
        ]
        for rule in rules:
            self.engine.add_rule(rule)
        return rules

    def _build(self, database: Database, codec: Codec) -> tuple[Outbox, RuleEngine]:
        """The outbox and engine on one storage connection (each takes its own reference)."""
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
                engine = RuleEngine(
                    shared_store(
                        max_series=settings.max_series,
                        max_points=settings.max_points,
                        max_window=settings.max_window,
                    ),
                    outbox=outbox,
                    channels=self.channels,
                    database=database,
                    codec=codec,
                    clock=self.clock,
                    evaluation_interval=settings.evaluation_interval,
                )
            except BaseException:
                outbox.close()
                raise
        finally:
            database.close()
        return outbox, engine

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
            _import_what_threads_need()
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
        from paca_otel.analysis.report import generate_report
        from paca_otel.analysis.report_schedule import ReportScheduler
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
        return Handover(dict(self.channels), list(engine.rules.values()), engine.silences.all())

    def take_over(self, old: AlertingRuntime | Handover) -> None:
        """Adopt the rules, user channels and silences ``old`` collected before it ever ran.

        ``old`` is a runtime, or the snapshot of one a forked child inherited.
        """
        given = old if isinstance(old, Handover) else old.handover()
        for name, channel in given.channels.items():
            if name not in self.channels or isinstance(self.channels[name], UnconfiguredChannel):
                self.add_channel(name, channel)
        for rule in given.rules:
            self.engine.add_rule(rule)
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


def _import_what_threads_need() -> None:
    """Import here, on the caller's thread, what a first delivery would import lazily.

    A module some thread is half-way through importing when a pre-fork server forks stays
    locked forever in the child (CPython keeps one import lock per module): measured under
    ``gunicorn --preload``, a worker hung importing ``h11`` behind the master's first webhook.
    """
    import httpx

    httpx.Client().close()  # httpcore, h11, certifi: imported by the transport's constructor
    "localhost".encode("idna")  # the codec a first request to a host name loads


def get_runtime(*, fallback: bool = False) -> AlertingRuntime:
    """The process's runtime, created on first use from the live settings or the environment.

    Raises:
        StorageError: the state file is unusable (unless ``fallback``: then state is in memory).
    """
    global _runtime, _runtime_pid  # noqa: PLW0603  # one runtime per process is the point
    with _lock:
        inherited = None
        if _runtime is not None and _runtime_pid != os.getpid():
            # Built before a fork (gunicorn --preload): its database connection and threads
            # belong to the parent. A fresh one takes over its rules, channels and silences.
            inherited, _runtime = _handover, None
        if _runtime is None:
            from paca_otel.setup import get_telemetry

            telemetry = get_telemetry()
            settings = telemetry.settings if telemetry is not None else load_settings()
            _runtime = AlertingRuntime(settings, fallback=fallback)
            _runtime_pid = os.getpid()
            if inherited is not None:
                _runtime.take_over(inherited)
        return _runtime


#: Settings the runtime itself is built from (the channels are added on attach).
_RUNTIME_FIELDS = ("state_path", "multiprocess_dir", "evaluation_interval", "storage_key")


def attach(telemetry: Telemetry) -> AlertingRuntime:
    """Point the runtime at ``telemetry`` and start evaluating (``start_monitoring``).

    A runtime an ``AlertManager`` created before any ``configure()`` was built from the
    environment alone; if the live settings give it another state file or evaluation interval,
    it is rebuilt from them before it first runs, keeping the rules, channels and silences
    added so far (otherwise ``MonitoringManager(state_path=...)`` would silently keep alert
    state in memory).
    """
    global _runtime  # noqa: PLW0603  # one runtime per process, see get_runtime
    with _lock:
        runtime = get_runtime(fallback=True)  # a running app keeps serving on a bad state file
        differs = any(
            getattr(runtime.settings, name) != getattr(telemetry.settings, name)
            for name in _RUNTIME_FIELDS
        )
        if differs and not runtime.attached_once:
            fresh = AlertingRuntime(telemetry.settings, clock=runtime.clock, fallback=True)
            fresh.take_over(runtime)
            runtime.close()
            _runtime = runtime = fresh
    runtime.attach(telemetry)
    # In a forked child the handle is rebuilt; evaluate and send from there too.
    telemetry.add_fork_hook("alerting", attach)
    return runtime


def reset() -> None:
    """Stop and forget the runtime and the shared store (tests, re-initialisation)."""
    global _runtime  # see get_runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.close()
    from paca_otel import pipeline

    pipeline.reset_shared_store()
