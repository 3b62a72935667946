"""One history file for the workers of a service: the elected recorder and the readers.

Under ``uvicorn --workers N`` or gunicorn with ``multiprocess_dir`` set, every worker opens the
same history file (``history.sqlite3`` in that directory). If each recorded its own collection
there, the values of different workers would mix in one series and chunks with the same start
would overwrite each other. So :class:`~paca_otel.analysis.history.HistoryStore` in *shared*
mode lets one worker at a time record:

- **Election.** The recorder holds an exclusive ``flock`` on a lock file beside the history
  (:class:`RecorderLock`). Every other worker tries to take it, without blocking, at each of
  its history ticks; the kernel drops a dead process's lock at once, so a SIGKILLed recorder
  is replaced at the next tick of another worker (within one ``history_interval``). No clock,
  no TTL: a recorder that is merely paused keeps its lock, and nobody records meanwhile.
- **What it records.** The service-wide view (what ``/metrics`` shows: every worker's
  published collection merged), not its own collection; so the history is the service's.
- **What it publishes.** Every :data:`PUBLISH_EVERY` seconds the recorder *publishes* each open
  buffer that got samples since: a copy of it so far is written as a raw chunk starting at
  the buffer's first sample, so the next publication, and finally the sealed chunk, replace
  that row (``INSERT OR REPLACE`` on series, tier and start). The buffer itself stays open
  until ``chunk_samples`` or ``chunk_span`` as in one process, and roll-ups only take sealed
  samples, so a published copy is never rolled up (nor counted twice).
- **What it loses.** A recorder that dies loses what it had not published yet: at most
  :data:`PUBLISH_EVERY` seconds. Its last published copy stays as the end of its data; the next
  recorder reads where the raw chunks end and starts new buffers after it, so its chunks
  start later and never replace that row.
- **Readers.** The other workers only read: their ``query_range`` and ``names`` first check
  the file's change counter (:mod:`paca_otel.storage._changes`, one ``SELECT``) and reload
  the catalog (series, roll-up progress) when the recorder added series or rolled up. Chunks
  are read from the file at every query anyway, so a reader sees a sample once the recorder
  published and wrote it: at most :data:`PUBLISH_EVERY` seconds plus one tick after it was
  collected (plus up to a second for the other workers' numbers to reach the merged view).
  The recorder itself answers from its buffers too, without lag. A reader refuses direct
  ``append`` calls (counted in ``paca_otel.dropped{reason="history_not_recorder"}``).
- **The price.** Raw chunks are as large as in one process (up to ``chunk_samples``), but
  the open one is encoded and rewritten at every publication: over a buffer's life the
  writer encodes about ``chunk_samples / samples_per_publication / 2`` times as many samples
  as it keeps (20x at 240 samples and the default 10 s interval) and rewrites one row per
  active series a minute; the recorder briefly holds a second copy of each published buffer
  (16 bytes a sample) until it is written. Roll-ups of recent data wait for the real seal
  (as in one process); queries cover the gap from the raw tier.

A forked child must not think it holds its parent's lock: ``flock`` locks belong to the open
file, which a fork shares, so the child closes its inherited descriptors (never unlocking: that
would release the parent's lock too) and runs its own election.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Final

from paca_otel._internal import warn_once
from paca_otel.storage import Database, StorageError, count_error
from paca_otel.storage._changes import ChangeWatch

__all__ = ["PUBLISH_EVERY", "RecorderLock", "SharedFile"]

_logger = logging.getLogger("paca_otel.analysis.history")

PUBLISH_EVERY: Final = 60.0
"""Seconds between the shared-mode recorder's publications: how far behind the others read."""

_locks: weakref.WeakSet[RecorderLock] = weakref.WeakSet()


class RecorderLock:
    """An exclusive, non-blocking ``flock`` on ``path``: who records a shared history file.

    Args:
        path: The lock file (created if missing; it holds the recorder's pid, for people).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._guard = threading.Lock()
        _locks.add(self)

    @property
    def held(self) -> bool:
        """Whether this process holds the lock (answered from memory, no system call)."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Hold the lock if nobody does; True if this process holds it now.

        Never blocks and never raises: a lock file that cannot be opened means this process
        does not record (warned once).
        """
        with self._guard:
            if self._fd is not None:
                return True
            try:
                import fcntl
            except ImportError:  # pragma: no cover  # Windows: no flock, nobody records
                warn_once(
                    _logger,
                    "history.recorder.flock",
                    "paca-otel: no flock on this platform; a shared history is not recorded",
                )
                return False
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                warn_once(
                    _logger,
                    "history.recorder.open",
                    "paca-otel: cannot open the history's recorder lock %s (%s); this worker "
                    "does not record the history",
                    self.path,
                    exc,
                )
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # another process records
                os.close(fd)
                return False
            with contextlib.suppress(OSError):  # the holder's pid, for people
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
            return True

    def release(self) -> None:
        """Let another process record (closing the descriptor drops the lock)."""
        with self._guard:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _forget_in_child(self) -> None:
        """In a forked child: close the inherited descriptor without unlocking the parent's."""
        self._guard = threading.Lock()  # a thread of the parent may have held it
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):  # closed already
                os.close(fd)


class SharedFile:
    """A shared store's election, its readers' change check and its recorder's publish timer.

    Args:
        db: The history file (its ``changes`` table prepared by the chunk table).
    """

    def __init__(self, db: Database) -> None:
        self.lock = RecorderLock(Path(f"{db.path}.recorder"))
        self._watch = ChangeWatch(db)
        self._next_publish = 0.0

    def elect(self, reload: Callable[[], None]) -> None:
        """Become the recorder if nobody is; a new recorder first reloads the catalog.

        The catalog must be the file's (where each series ends, roll-up progress, series the
        previous recorder added) before this process appends. If it cannot be read, the lock
        goes again (counted), for this or another process to try at its next tick.
        """
        if self.lock.held or not self.lock.acquire():
            return
        try:
            reload()
        except StorageError as exc:
            self.lock.release()
            count_error("history_takeover", exc)
            return
        _logger.info("paca-otel: this worker (pid %d) records the history", os.getpid())

    def refresh(self, reload: Callable[[], None], *, force: bool = False) -> None:
        """A reader's check (one ``SELECT``): ``reload`` the catalog if the recorder changed it.

        Nothing for the recorder (its catalog is the truth). A file that cannot be read is
        counted; the reader keeps its catalog and checks again at its next query.
        """
        if self.lock.held:
            return
        try:
            versions = self._watch.changed()
            if versions or force:
                reload()
                self._watch.seen(versions)
        except StorageError as exc:
            count_error("history_refresh", exc)

    def publish_due(self) -> bool:
        """Whether the recorder should publish its buffers now (every :data:`PUBLISH_EVERY` s)."""
        now = time.monotonic()
        if now < self._next_publish:
            return False
        self._next_publish = now + PUBLISH_EVERY
        return True


def _after_fork_in_child() -> None:
    for lock in list(_locks):
        lock._forget_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
