"""The evaluation loop: when the rule engine evaluates, and whether this worker is the one to.

The engine (``_engine.py``) is a state machine that evaluates when told to; this module tells
it. One daemon thread per engine ticks every ``evaluation_interval`` seconds, at a fixed rate.

With alert state in a file, several workers of one service may share it, and only the holder
of the leader lease (``_lease.py``) evaluates. Each tick then:

1. polls the lease (renew, or take it over if it expired): a worker that just became leader
   reloads the alert records first, so ``for`` timers and notification times carry over; one
   that lost the lease reloads too and stops evaluating;
2. re-reads what other workers changed (rules, silences; alert records on a follower);
3. evaluates, if leading, with the lease as a fence: a cycle finishing after the lease could
   have passed on is dropped instead of written.

Between ticks the thread polls the lease every quarter interval, so a follower takes over an
expired lease, and evaluates, within ``1.75`` intervals of the leader's death (the arithmetic
is in ``_lease.py``). With in-memory state there is no lease and no polling: every tick
evaluates, as in a single process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from paca_otel._internal import handle_internal_errors
from paca_otel.errors import StorageError
from paca_otel.storage import count_error

if TYPE_CHECKING:
    from paca_otel.alerting._lease import Lease
    from paca_otel.rules._models import AlertEvent

__all__ = ["Evaluator", "Scheduler"]

logger = logging.getLogger("paca_otel.alerting")


class Evaluator(Protocol):
    """What the scheduler drives: the rule engine's side of a tick."""

    @property
    def evaluation_interval(self) -> float:
        """Seconds between ticks."""

    def evaluate_once(
        self, now: float | None = None, *, fence: Callable[[], bool] | None = None
    ) -> list[AlertEvent]:
        """One evaluation cycle; ``fence()`` is asked before anything is written."""

    def refresh(self, *, alerts: bool = True) -> None:
        """Re-read what other workers changed (rules, silences; alert records if asked)."""

    def reload_alerts(self) -> None:
        """Replace alert records by the stored ones, dropping what is owed in memory."""

    def write_owed(self) -> None:
        """Write what earlier cycles owe storage now."""


class Scheduler:
    """Runs an engine's evaluations, under a leader lease when the state is shared.

    Args:
        engine: The engine to drive.
        lease: The leader lease in the shared state file; ``None`` (in-memory state): this
            process always leads.
        poll: Seconds between lease polls between ticks (default: the lease's timing for the
            engine's interval, a quarter of it).
    """

    def __init__(
        self, engine: Evaluator, lease: Lease | None = None, *, poll: float | None = None
    ) -> None:
        from paca_otel.alerting._lease import POLL_INTERVALS

        self.engine = engine
        self.lease = lease
        self.poll = POLL_INTERVALS * engine.evaluation_interval if poll is None else float(poll)
        self._leading = lease is None
        self._term = 0
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Wall time this process last became leader (``None``: never, or no lease).
        self.leading_since: float | None = None

    @property
    def leading(self) -> bool:
        """Whether this process evaluates rules and enqueues notifications for the service."""
        return self._leading

    @property
    def running(self) -> bool:
        """Whether the evaluation thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ one tick
    def tick(self, now: float | None = None) -> list[AlertEvent]:
        """One evaluation tick (see the module docstring); the events if this worker evaluated.

        Storage errors are counted (``paca_otel.storage.errors``), never raised: a worker that
        cannot reach the file evaluates nothing and retries at the next tick.
        """
        with self._tick_lock:
            if self.lease is None:
                return self.engine.evaluate_once(now)
            self._poll_lease()
            try:
                self.engine.refresh(alerts=not self._leading)
            except StorageError as exc:
                count_error("shared_state_read", exc)
            if not self._leading:
                return []
            return self.engine.evaluate_once(now, fence=self.lease.held)

    def heartbeat(self) -> bool:
        """Poll the lease between ticks; ``True`` if this process just became leader."""
        with self._tick_lock:
            return self._poll_lease()

    def _poll_lease(self) -> bool:
        """Renew or take the lease; reload alert state on a change of role; ``True`` if gained."""
        lease = self.lease
        assert lease is not None  # only called with a lease
        try:
            held = lease.acquire()
        except StorageError as exc:
            count_error("lease", exc)
            held = lease.held()  # a renewal that failed: still the holder until the TTL runs out
        gained = held and (not self._leading or lease.term != self._term)
        lost = self._leading and not held
        self._term = lease.term
        if gained:
            try:
                self.engine.reload_alerts()  # the `for` timers and notification times on file
            except StorageError as exc:  # never evaluate from a stale state: hand over
                count_error("leader_restore", exc)
                self._release()
                return False
            self._leading = True
            self.leading_since = time.time()
            logger.info(
                "paca-otel: this worker now evaluates the alert rules (lease term %d)", self._term
            )
        elif lost:
            self._leading = False
            logger.warning("paca-otel: this worker lost the alerting lease and stops evaluating")
            try:
                self.engine.reload_alerts()  # drop what it decided but may not have written
            except StorageError as exc:
                count_error("shared_state_read", exc)
        return gained

    def _release(self) -> None:
        self._leading = False
        if self.lease is None:
            return
        try:
            self.lease.release()
        except StorageError as exc:  # it then expires by itself
            count_error("lease", exc)

    # ------------------------------------------------------------------ the thread
    def start(self) -> None:
        """Tick every ``evaluation_interval`` seconds on a daemon thread; idempotent."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="paca-otel-rules", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = self.engine.evaluation_interval
        due = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() >= due:
                with handle_internal_errors("rule_engine_cycle", logger):
                    self.tick()
                due = max(due + interval, time.monotonic())  # fixed rate; no burst after a stall
            elif self.lease is not None:
                with handle_internal_errors("rule_engine_lease", logger):
                    if self.heartbeat():  # just took over: evaluate now, not at the next tick
                        self.tick()
                        due = time.monotonic() + interval
            wait = due - time.monotonic()
            if self.lease is not None:
                wait = min(wait, self.poll)
            self._stop.wait(max(0.0, wait))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and hand the lease over (the next poll elsewhere takes it)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        if self.lease is not None and self._leading:
            with self._tick_lock:
                self.engine.write_owed()  # before the next leader reads the file
                self._release()

    def __repr__(self) -> str:
        return f"Scheduler(leading={self._leading}, lease={self.lease!r})"
