"""What the rule engine owes storage: notifications to enqueue; alert rows, flap entries and
history to write.

The engine decides under its lock and writes after releasing it (readers on the event loop wait
on that lock, so it never covers I/O). Writing may fail: the file is busy for longer than the
busy budget, read-only, or corrupt. Then nothing is lost and nothing raises into the
evaluation loop:

- a notification that could not be enqueued stays here and is enqueued first in the next cycle
  (the same object, so the same idempotency key: the outbox sends it once);
- alert rows, flap entries and history events stay here (newest row or entry per alert,
  bounded history) and are written by the next cycle that reaches the file;
- each failure is counted (``paca_otel.storage.errors``, :attr:`WriteBack.errors`) and warned
  about once.

Once a cycle meets a storage error it stops touching the file for that cycle: a busy file
costs one busy budget per cycle, not one per notification.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from paca_otel._internal import drops, warn_once
from paca_otel.alerting._state import HISTORY_LIMIT, StateStore
from paca_otel.delivery._notify import NotificationSink
from paca_otel.errors import ChannelError, StorageError
from paca_otel.rules._models import AlertEvent, Notification
from paca_otel.storage import count_error

__all__ = ["WriteBack"]

_logger = logging.getLogger("paca_otel.alerting")

#: Notifications kept for a retry while storage fails; beyond it the oldest are dropped
#: (counted) and their alerts are owed again, so they are re-notified once storage is back.
MAX_RETRY = 1_000


class WriteBack:
    """Buffers and writes the engine's storage work; called on the engine's thread only.

    Args:
        state: Alert rows and history.
        sink: The outbox notifications go to.
    """

    def __init__(self, state: StateStore, sink: NotificationSink) -> None:
        self.state = state
        self.sink = sink
        self._lock = threading.Lock()  # guards the buffers: the engine thread vs close()
        self._rows: dict[str, Mapping[str, Any] | None] = {}
        self._flaps: dict[str, Mapping[str, Any] | None] = {}
        self._history: deque[AlertEvent] = deque(maxlen=HISTORY_LIMIT)
        self._retry: deque[Notification] = deque()
        #: Storage operations that failed (each is retried).
        self.errors = 0
        #: Notifications the outbox refused as duplicates (same idempotency key).
        self.duplicates = 0

    # -- owed (cheap, in memory; the engine calls these under its lock) ---------------------

    def owe(
        self,
        rows: Mapping[str, Mapping[str, Any] | None],
        events: list[AlertEvent],
        flaps: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> None:
        """Alert rows and flap entries (``None``: delete) and history events for the next flush."""
        with self._lock:
            self._rows.update(rows)
            self._history.extend(events)
            if flaps:
                self._flaps.update(flaps)

    def owed_fingerprints(self) -> set[str]:
        """Alerts in a notification that is waiting for a retry."""
        with self._lock:
            return {e.fingerprint for n in self._retry for e in n.events}

    @property
    def retry_pending(self) -> int:
        """Notifications waiting for a retry."""
        return len(self._retry)

    # -- I/O (outside the engine's lock) ----------------------------------------------------

    def reset(self) -> None:
        """Forget everything owed (this process stopped leading: the new leader decides anew)."""
        with self._lock:
            self._rows.clear()
            self._flaps.clear()
            self._history.clear()
            self._retry.clear()

    def enqueue(
        self, notifications: list[Notification], *, store: bool = True
    ) -> tuple[int, set[str], bool]:
        """Enqueue the retries, then ``notifications`` (with ``store=False``: keep them all).

        Returns:
            How many were new in the outbox, the fingerprints of alerts whose notification
            was dropped (retry buffer full: the engine owes them again), and whether storage
            worked (``False``: skip the rest of this cycle's writes).
        """
        with self._lock:
            queue = [*self._retry, *notifications]
            self._retry.clear()
        sent = 0
        ok = store
        failed: list[Notification] = []
        for notification in queue:
            if not ok:
                failed.append(notification)
                continue
            try:
                inserted = self.sink.enqueue(notification)
            except (StorageError, ChannelError) as exc:  # ChannelError: the outbox is closed
                self._error("outbox_enqueue", StorageError(str(exc)))
                ok = False
                failed.append(notification)
                continue
            if inserted:
                sent += 1
            else:
                self.duplicates += 1
        dropped: set[str] = set()
        with self._lock:
            self._retry.extend(failed)
            while len(self._retry) > MAX_RETRY:
                lost = self._retry.popleft()
                dropped.update(e.fingerprint for e in lost.events)
                drops.add("alert_notification_retry_full")
                warn_once(
                    _logger,
                    "retry_full",
                    "storage unavailable: %d notifications wait; dropping the oldest (their "
                    "alerts are notified again once storage is back)",
                    MAX_RETRY,
                )
        return sent, dropped, ok

    def flush(self) -> bool:
        """Write owed rows, flap entries and history; keep them for the next flush on failure."""
        with self._lock:
            rows, self._rows = self._rows, {}
            flaps, self._flaps = self._flaps, {}
            events = list(self._history)
            self._history.clear()
        rows_written = False
        try:
            self.state.write_alerts(rows)
            rows_written = True
            self.state.write_flaps(flaps)
        except StorageError as exc:
            self._error("flap_state_write" if rows_written else "alert_state_write", exc)
            with self._lock:
                if not rows_written:
                    _keep(self._rows, rows)
                _keep(self._flaps, flaps)
                self._history.extendleft(reversed(events))
            return False
        try:
            self.state.append_history(events)
        except StorageError as exc:
            self._error("history_write", exc)
            with self._lock:
                self._history.extendleft(reversed(events))
            return False
        return True

    def _error(self, operation: str, exc: StorageError) -> None:
        self.errors += 1
        count_error(operation, exc)


def _keep(
    buffer: dict[str, Mapping[str, Any] | None], owed: Mapping[str, Mapping[str, Any] | None]
) -> None:
    """Put back what a failed write owed; a newer row or entry owed meanwhile wins."""
    for fp, row in owed.items():
        buffer.setdefault(fp, row)
