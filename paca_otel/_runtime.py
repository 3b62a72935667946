"""The composition root: :class:`Runtime` builds and owns everything one monitored process runs.

A :class:`Runtime` owns the series store, the telemetry ``configure()`` builds on it (providers,
the one metric collection, the pipeline, Prometheus, OTLP export, history) and, on first use,
the :class:`~paca_otel._alerting_runtime.AlertingRuntime`: rule engine, delivery (outbox,
dispatcher, channels), storage and scheduled reports. Collaborators are handed down from here,
never reached for: the engine gets the store, the outbox as its notification sink, the
dispatcher's ``wake``, a clock and the storage connection; the web facade gets the root itself
through its FastAPI dependency.

What a higher layer builds per root (the API's access control: tokens, failed-auth limiter,
sessions, audit log) is kept in :meth:`Runtime.component`: built once, closed with the root.
The root holds it without importing that layer, so dependencies keep pointing one way.

Why a root apart from :class:`~paca_otel._setup.Telemetry`: the seed lets an ``AlertManager``
add rules before anything is configured, so the rules need an owner that exists before the
providers do and outlives a re-configuration (``configure()`` with new settings replaces the
telemetry of the same root, keeping its series, rules and alert state).

:func:`default_runtime` is the process's one default instance and the only global of the
wiring; ``configure()`` binds its telemetry to it, ``MonitoringManager``, ``AlertManager`` and
the API use it unless given another. ``configure(set_global=False)`` builds an independent
root (its own store, engine, delivery and components) that leaves the default one alone.

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
from typing import TYPE_CHECKING, TypeVar

from paca_otel._alerting_runtime import AlertingRuntime, Telemetry
from paca_otel._handover import Handover
from paca_otel.config import PacaOtelSettings, load_settings
from paca_otel.pipeline._store import SeriesStore

if TYPE_CHECKING:
    from paca_otel.analysis._report_model import Report

logger = logging.getLogger("paca_otel.alerts")

C = TypeVar("C")

_lock = threading.Lock()
_default: Runtime | None = None


def _renew_lock_in_child() -> None:
    global _lock  # noqa: PLW0603  # a lock another thread held at fork stays held in the child
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_renew_lock_in_child)


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
        self._components: dict[type[object], object] = {}

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

    # ---------------------------------------------------------------- components

    def component(self, kind: type[C], build: Callable[[], C] | None = None) -> C:
        """This root's one ``kind``, built by ``build`` (default: ``kind()``) on first use.

        For collaborators a higher layer owns per root (the API's access control), which the
        root must not import. Keyed by the class, so the answer is typed without a cast.
        Built once under the root's lock; :meth:`close` closes it (its ``close()``, if any)
        and forgets it. A forked child keeps it (the audit log's storage reopens itself there);
        one with an ``after_fork_in_child()`` method is told, to renew a lock of its own.
        """
        found = self._components.get(kind)  # no lock once built: routes ask on the event loop
        if found is None:
            with self._lock:
                found = self._components.get(kind)
                if found is None:
                    found = self._components[kind] = (build or kind)()
        if not isinstance(found, kind):  # a build that returned another type
            msg = f"component {kind.__name__} was built as {type(found).__name__}"
            raise TypeError(msg)
        return found

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
        for component in list(self._components.values()):
            renew = getattr(component, "after_fork_in_child", None)
            if callable(renew):
                renew()

    def close(self) -> None:
        """Stop and forget the alerting runtime (rules and alerts, unless stored) and components.

        Each component with a ``close()`` is closed; a later :meth:`component` builds anew.
        """
        with self._lock:
            alerting, self._alerting = self._alerting, None
            self._report = None
            components, self._components = list(self._components.values()), {}
        if alerting is not None:
            alerting.close()
        for component in components:
            close = getattr(component, "close", None)
            if callable(close):
                close()


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
