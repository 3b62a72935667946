"""The composition root: :class:`Runtime` builds and owns everything one monitored process runs.

A :class:`Runtime` owns the series store, the telemetry ``configure()`` builds on it (providers,
the one metric collection, the pipeline, Prometheus, OTLP export, history) and, on first use,
the :class:`AlertingRuntime`: rule engine, delivery (outbox, dispatcher, channels), storage and
scheduled reports. Collaborators are handed down from here, never reached for: the engine gets
the store, the outbox as its notification sink, the dispatcher's ``wake``, a clock and the
storage connection; the web facade gets the root itself through its FastAPI dependency.

Why a root apart from :class:`~paca_otel._setup.Telemetry`: the seed lets an ``AlertManager``
add rules before anything is configured, so the rules need an owner that exists before the
providers do and outlives a re-configuration (``configure()`` with new settings replaces the
telemetry of the same root, keeping its series, rules and alert state).

:func:`default_runtime` is the process's one default instance and the only global of the
wiring; ``configure()`` binds its telemetry to it, ``MonitoringManager``, ``AlertManager`` and
the API use it unless given another. ``configure(set_global=False)`` builds an independent
root (its own store, engine and delivery) that leaves the default one alone.

Across ``fork()`` (gunicorn ``--preload``) a root hands its alerting over: ``setup``'s at-fork
hooks call :meth:`Runtime.before_fork` and the ``after_fork_*`` methods, and the child's root
builds a fresh store and alerting runtime of its own (see :mod:`paca_otel._handover`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from paca_otel._handover import Handover, import_what_threads_need
from paca_otel._internal import warn_once
from paca_otel.alerting._engine import RuleEngine
from paca_otel.config import PacaOtelSettings, load_settings
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
    from paca_otel.analysis._report_model import Report
    from paca_otel.analysis._report_schedule import ReportScheduler
    from paca_otel.analysis.history import HistoryStore
    from paca_otel.pipeline._collection import Collection
    from paca_otel.pipeline._pipeline import Pipeline

logger = logging.getLogger("paca_otel.alerts")

_lock = threading.Lock()
_default: Runtime | None = None


def _renew_lock_in_child() -> None:
    global _lock  # noqa: PLW0603  # a lock another thread held at fork stays held in the child
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_renew_lock_in_child)


class Telemetry(Protocol):
    """What the root uses of a :class:`paca_otel._setup.Telemetry` handle bound to it.

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


class AlertingRuntime:
    """Owns the rule engine and delivery of one :class:`Runtime`; see the module docstring.

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


#: Settings the alerting runtime itself is built from (the channels are added on attach).
_RUNTIME_FIELDS = ("state_path", "multiprocess_dir", "evaluation_interval", "storage_key")

#: Seconds the environment's settings are reused while no telemetry is bound.
_ENV_SETTINGS_TTL = 5.0
#: Seconds :meth:`Runtime.recent_report` reuses a report it built.
_REPORT_TTL = 60.0


class Runtime:
    """The composition root: the store, telemetry, alerting and reports of one process.

    Args:
        settings: What to build from; ``None``: the bound telemetry's settings, else the
            environment's (the default root, made before anything is configured).
        clock: Time source of the alerting runtime (a fake one in tests).
        persistent: Keep the alerting runtime when the telemetry shuts down (the default
            root: a later ``configure()`` resumes it); an independent root closes with its
            telemetry.
    """

    def __init__(
        self,
        settings: PacaOtelSettings | None = None,
        *,
        clock: Callable[[], float] | None = None,
        persistent: bool = False,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._persistent = persistent
        self._lock = threading.RLock()
        self.store = SeriesStore()
        if settings is not None:
            self.bound_store(settings)
        self._telemetry: Telemetry | None = None
        self._alerting: AlertingRuntime | None = None
        self._env: tuple[float, PacaOtelSettings] | None = None
        self._report: tuple[Telemetry, float, Report] | None = None
        self._handover: Handover | None = None  # what a forked child's alerting takes over

    # ---------------------------------------------------------------- telemetry

    @property
    def telemetry(self) -> Telemetry | None:
        """The live telemetry bound to this root, if ``configure()`` built one."""
        found = self._telemetry
        return None if found is None or found.is_shutdown else found

    @property
    def settings(self) -> PacaOtelSettings:
        """The live telemetry's settings, else this root's, else the environment's (cached 5 s).

        Raises:
            ConfigError: nothing is configured and the environment holds an invalid setting.
        """
        telemetry = self.telemetry
        if telemetry is not None:
            return telemetry.settings
        if self._settings is not None:
            return self._settings
        now = time.monotonic()
        if self._env is None or now - self._env[0] > _ENV_SETTINGS_TTL:
            self._env = (now, load_settings())
        return self._env[1]

    def bound_store(self, settings: PacaOtelSettings) -> SeriesStore:
        """The root's series store with the bounds of ``settings`` (what ``configure`` builds on).

        The store outlives re-configuration: a new telemetry gets the same series.
        """
        self.store.max_series = settings.max_series
        self.store.max_points = settings.max_points
        self.store.max_window = float(settings.max_window)
        return self.store

    def bind(self, telemetry: Telemetry) -> None:
        """Make ``telemetry`` this root's live telemetry (``configure`` calls this)."""
        with self._lock:
            self._telemetry = telemetry

    def unbind(self, telemetry: Telemetry) -> None:
        """``telemetry`` is shutting down: forget it (an independent root closes with it)."""
        with self._lock:
            if self._telemetry is not telemetry:
                return
            self._telemetry = None
        if not self._persistent:
            self.close()

    # ---------------------------------------------------------------- alerting

    def alerting(self, *, fallback: bool = False) -> AlertingRuntime:
        """The rule engine and delivery, built on first use from :attr:`settings`.

        Raises:
            StorageError: the state file is unusable (unless ``fallback``: then state is in
                memory).
        """
        with self._lock:
            if self._alerting is None:
                alerting = AlertingRuntime(
                    self.settings, self.store, clock=self._clock, fallback=fallback
                )
                if self._handover is not None:  # a forked child: the parent's rules and all
                    alerting.take_over(self._handover)
                    self._handover = None
                self._alerting = alerting
            return self._alerting

    def attach(self, telemetry: Telemetry) -> AlertingRuntime:
        """Evaluate against ``telemetry``'s pipeline and start delivery (``start_monitoring``).

        Rules added before anything was configured were taken by a runtime built from the
        environment alone; if ``telemetry``'s settings give it another state file or interval,
        it is rebuilt from them before it first runs, keeping the rules, channels and silences
        added so far (otherwise ``MonitoringManager(state_path=...)`` would silently keep
        alert state in memory).
        """
        with self._lock:
            runtime = self.alerting(fallback=True)  # a running app keeps serving on a bad file
            differs = any(
                getattr(runtime.settings, name) != getattr(telemetry.settings, name)
                for name in _RUNTIME_FIELDS
            )
            if differs and not runtime.attached_once:
                fresh = AlertingRuntime(
                    telemetry.settings, self.store, clock=runtime.clock, fallback=True
                )
                fresh.take_over(runtime)
                runtime.close()
                self._alerting = runtime = fresh
        runtime.attach(telemetry)
        # In a forked child the handle is rebuilt; evaluate and send from there too.
        telemetry.add_fork_hook("alerting", self.attach)
        return runtime

    def recent_report(self, period: float, *, title: str = "Last hour") -> Report | None:
        """The report of the last ``period`` seconds, rebuilt at most once a minute.

        ``None`` without metric history (``history_enabled``): there is nothing to analyse.
        """
        telemetry = self.telemetry
        if telemetry is None or telemetry.history is None:
            return None
        now = time.monotonic()
        with self._lock:
            cached = self._report
            if cached is not None and cached[0] is telemetry and now - cached[1] < _REPORT_TTL:
                return cached[2]
            from paca_otel.analysis.report import generate_report
            from paca_otel.privacy import build_scrubber

            scrubber = build_scrubber(telemetry.settings)
            report = generate_report(
                telemetry.history, period, now=time.time(),
                alerts=self.alerting().engine.history(10_000),
                scrub=scrubber.scrub_text if scrubber else None, title=title,
            )  # fmt: skip
            self._report = (telemetry, now, report)
            return report

    # ---------------------------------------------------------------- fork (see _handover)

    def before_fork(self) -> None:
        """In the parent, just before ``fork()``: snapshot what the child's alerting takes over.

        The lock stays held across the fork, so no other thread is half-way through building
        the alerting runtime; :meth:`after_fork_in_parent` releases it (``setup`` calls both).
        """
        self._lock.acquire()
        alerting = self._alerting
        try:
            self._handover = alerting.handover() if alerting is not None else None
        except Exception:  # a fork must never fail because of monitoring
            logger.exception("paca-otel: cannot snapshot the alerting runtime before fork()")
            self._handover = None

    def after_fork_in_parent(self) -> None:
        """In the parent, once forked: drop the snapshot, release the lock."""
        self._handover = None
        self._lock.release()

    def after_fork_in_child(self) -> None:
        """In a forked child: leave the parent's series and alerting runtime behind.

        The store gets a fresh one (the parent's series would count twice); the inherited
        alerting runtime is dropped, not closed (its connection and threads are the parent's),
        and the next :meth:`alerting` builds one taking over the snapshot.
        """
        self._lock = threading.RLock()
        inherited = self.store
        self.store = SeriesStore()
        self.store.max_series = inherited.max_series
        self.store.max_points = inherited.max_points
        self.store.max_window = inherited.max_window
        self._alerting = None
        self._report = None

    def close(self) -> None:
        """Stop and forget the alerting runtime (its rules and alerts, unless stored)."""
        with self._lock:
            alerting, self._alerting = self._alerting, None
            self._report = None
        if alerting is not None:
            alerting.close()


def default_runtime() -> Runtime:
    """The process's default root, made on first use: the one global of the wiring."""
    global _default  # noqa: PLW0603  # the one default instance, like OTel's global providers
    with _lock:
        if _default is None:
            _default = Runtime(persistent=True)
        return _default


def reset() -> None:
    """Stop and forget the default root: its rules, alerts and series (tests, re-init)."""
    global _default  # see default_runtime
    with _lock:
        root, _default = _default, None
    if root is not None:
        root.close()
