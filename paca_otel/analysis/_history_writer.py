"""How a series' samples reach the file: open buffer, sealed chunks, writer thread, roll-ups.

:class:`~paca_otel.analysis.history.HistoryStore` decides what is kept (arguments, series
limits, sensitivity, the backlog bound, retention) and answers queries; this module is the
path to the file that those decisions feed, the counterpart of
:mod:`paca_otel.analysis._history_reader`:

- a :class:`Series` buffers appended samples in arrays (16 bytes a sample);
- a sealed buffer waits in the :class:`ChunkWriter`'s queue for the store's own writer thread,
  so an append never waits for the file's lock; the thread encodes the chunks
  (:mod:`paca_otel.analysis._chunks`) and writes them in one transaction
  (:mod:`paca_otel.analysis._history_table`, which encrypts sensitive series);
- a shared store's recorder also *publishes* open buffers (:meth:`ChunkWriter.publish`): a
  copy of the buffer so far, queued as a chunk with the buffer's start, so other processes
  read it; the next copy and finally the sealed chunk replace that row (same key). The
  buffer stays open and ``sealed_ms`` does not move, so roll-ups wait for the real seal;
- :func:`downsample` writes the chunks that :func:`roll_up` makes of a tier into the next,
  coarser one, only over buckets whose samples are all sealed.

Everything here runs under the store's lock where it touches a series or the queue, and
without it where it encodes or writes.
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence

from paca_otel._internal import handle_internal_errors
from paca_otel.analysis._chunks import encode_chunk
from paca_otel.analysis._history_reader import SampleBlock, SeriesSnapshot, fetch
from paca_otel.analysis._history_table import ChunkRow, ChunkTable, SeriesRow
from paca_otel.analysis._rollup import rollup
from paca_otel.analysis._tiers import Tier
from paca_otel.storage import StorageError, count_error

__all__ = ["NEVER", "PUBLISH_BATCH", "ChunkWriter", "Series", "downsample", "roll_up"]

_logger = logging.getLogger("paca_otel.analysis.history")

NEVER = -(1 << 62)
"""A time before every sample: a series' newest sample or tier progress when it has none."""

PUBLISH_BATCH = 1000
"""Series whose buffers one publication copies per hold of the store's lock."""


class Series:
    """One series: identity, open buffer, sealed buffers not yet written, tier progress."""

    __slots__ = (
        "key", "labels", "last_ms", "name", "pending", "progress", "published", "sealed_ms",
        "sensitive", "times", "values",
    )  # fmt: skip

    def __init__(self, key: str, name: str, labels: dict[str, str], sensitive: bool) -> None:
        self.key = key
        self.name = name
        self.labels = labels
        self.sensitive = sensitive
        self.times = array("q")  # 16 bytes a sample buffered (a list would take ~70)
        self.values = array("d")
        self.last_ms = NEVER  # newest sample appended: older ones are out of order
        self.sealed_ms = NEVER  # newest sample sealed: buckets up to it are complete
        self.pending: list[SampleBlock] = []
        self.progress: dict[int, int] = {}
        self.published = 0  # samples of the open buffer published so far (shared recorder)

    def row(self) -> SeriesRow:
        return (self.key, self.name, self.labels, self.sensitive)

    def seal(self) -> SampleBlock:
        """Close the open buffer and start a new one (the store's lock held)."""
        chunk = SampleBlock(self.times, self.values)
        self.times, self.values = array("q"), array("d")
        self.sealed_ms = chunk.times[-1]
        self.published = 0
        return chunk

    def snapshot(self) -> SeriesSnapshot:
        """What a reader needs of this series (the store's lock held)."""
        return SeriesSnapshot(
            self.key,
            tuple(self.pending),
            SampleBlock(array("q", self.times), array("d", self.values)),
            dict(self.progress),
        )


class ChunkWriter:
    """The queue of chunks to write and the store's writer thread that empties it.

    The queue holds one chunk per series and start: a newer chunk with the same start (the
    next publication of an open buffer, or its seal) replaces the queued one, which the file
    would overwrite anyway; so a slow file never queues many copies of one buffer.

    Args:
        table: Where the chunks go.
        lock: The store's lock, which guards the queue and every series' ``pending``.
    """

    def __init__(self, table: ChunkTable, lock: threading.Lock) -> None:
        self._table = table
        self._lock = lock
        self._queue: dict[tuple[Series, int], SampleBlock] = {}
        #: Samples in the queue and in the batch being written (bounded by ``max_pending``).
        self.queued_samples = 0
        self._wake = threading.Event()  # set when chunks are queued: the writer wakes
        self._thread: threading.Thread | None = None
        self._closing = False
        self._write_lock = threading.Lock()  # one batch at a time (writer thread, maintenance)

    def put(self, series: Series, chunk: SampleBlock, limit: int) -> bool:
        """Queue ``chunk`` of ``series`` and wake the writer (the store's lock held).

        Returns:
            False if that would take the queue past ``limit`` samples: nothing is queued.
        """
        slot = (series, chunk.times[0])
        replaced = self._queue.get(slot)
        count = len(chunk.times)
        freed = 0 if replaced is None else len(replaced.times)
        if self.queued_samples - freed + count > limit:
            return False
        if replaced is not None:
            series.pending.remove(replaced)
        series.pending.append(chunk)
        self._queue[slot] = chunk
        self.queued_samples += count - freed
        # no file lock here: the writer may hold it for a whole transaction
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():  # first seal, or after fork
            self._thread = threading.Thread(
                target=self._write_loop, name="paca-otel-history-writer", daemon=True
            )
            self._thread.start()
        return True

    def publish(self, catalog: Sequence[Series], limit: int) -> None:
        """Queue a copy of every open buffer with samples not published yet.

        For a shared store's recorder, so that other processes read recent samples without
        the buffer being sealed early (small chunks compress worse). The store's lock is
        taken per :data:`PUBLISH_BATCH` series and the other threads get their turn between
        batches, so an append waits for one batch's copying, not for all buffers (10k series
        of 200 samples: longest append 7-32 ms here, 80-110 ms with one hold). A copy that
        does not fit under ``limit`` is skipped, not counted: its samples stay in the
        buffer, to be published or sealed later, so nothing is lost.
        """
        for at in range(0, len(catalog), PUBLISH_BATCH):
            with self._lock:
                for series in catalog[at : at + PUBLISH_BATCH]:
                    if len(series.times) > series.published:
                        times, values = array("q", series.times), array("d", series.values)
                        if self.put(series, SampleBlock(times, values), limit):
                            series.published = len(times)
            time.sleep(0)  # else this thread takes the lock again before a waiting append

    def _write_loop(self) -> None:
        """The store's writer thread: writes queued chunks whenever some are sealed."""
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                with handle_internal_errors("history_write", _logger):
                    self.write()
            except StorageError as exc:  # re-queued; retried at the next seal or flush
                count_error("history_write", exc)

    def write(self) -> None:
        """Encode and write every queued chunk in one transaction (the writer thread)."""
        with self._write_lock:
            with self._lock:
                batch, self._queue = self._queue, {}
                rows = [(series.row(), chunk) for (series, _), chunk in batch.items()]
            if not batch:
                return
            try:
                self._table.write(
                    [
                        (
                            row,
                            0,
                            chunk.times[0],
                            chunk.times[-1],
                            len(chunk.times),
                            encode_chunk(chunk.times, [chunk.values]),
                        )
                        for row, chunk in rows
                    ]
                )
            except StorageError:
                with self._lock:  # stays queued for the next write; readers still see it
                    for slot, chunk in batch.items():
                        if slot in self._queue:  # queued meanwhile with the same start: newer
                            self._done(slot[0], chunk)
                    self._queue = {**batch, **self._queue}
                raise
            with self._lock:
                for (series, _), chunk in batch.items():
                    self._done(series, chunk)

    def _done(self, series: Series, chunk: SampleBlock) -> None:
        """Forget a chunk that is written or superseded (the store's lock held)."""
        series.pending.remove(chunk)
        self.queued_samples -= len(chunk.times)

    def close(self) -> None:
        """Stop the writer thread; what is still queued stays so (flush before)."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10.0)


def roll_up(
    table: ChunkTable,
    tiers: Sequence[Tier],
    index: int,
    todo: Iterable[tuple[SeriesRow, SeriesSnapshot, int, int]],
    *,
    now_ms: int,
    span_ms: int,
    chunk_samples: int,
) -> tuple[list[ChunkRow], list[tuple[SeriesRow, int, int]]]:
    """The chunks rolling tier ``index - 1`` up into tier ``index``, and the new progress.

    Args:
        todo: ``(row, snapshot, sealed_ms, last_ms)`` of each series, taken under the lock.
        now_ms: The maintenance pass's time.
        span_ms: A series idle for this long has its last bucket complete too.
        chunk_samples: Points per written chunk.
    """
    width = tiers[index].resolution_ms
    finer = tiers[index - 1].resolution_ms
    chunks: list[ChunkRow] = []
    progress: list[tuple[SeriesRow, int, int]] = []
    for row, snap, sealed_ms, last_ms in todo:
        if index > 1:
            limit = snap.progress.get(finer)
        elif not snap.buffer.times and now_ms - last_ms >= span_ms:
            limit = now_ms  # idle for a chunk span: its last bucket is complete too
        else:
            limit = sealed_ms + 1  # buckets up to the newest sealed sample are complete
        if limit is None or limit <= NEVER + 1:
            continue
        limit -= limit % width
        first = snap.progress.get(width, NEVER)
        if first >= limit:
            continue
        rolled = rollup(
            fetch(table, tiers, snap, tier=index - 1, start_ms=first, end_ms=limit - 1),
            width,
        )
        stamps = rolled[0]
        for at in range(0, len(stamps), chunk_samples):
            piece = slice(at, at + chunk_samples)
            data = encode_chunk(stamps[piece], [column[piece] for column in rolled[1:]])
            chunks.append((row, width, stamps[at], stamps[piece][-1], len(stamps[piece]), data))
        progress.append((row, width, limit))
    return chunks, progress


def downsample(
    table: ChunkTable,
    tiers: Sequence[Tier],
    index: int,
    catalog: Mapping[tuple[str, tuple[tuple[str, str], ...]], Series],
    lock: threading.Lock,
    *,
    now_ms: int,
    span_ms: int,
    chunk_samples: int,
) -> int:
    """Roll tier ``index - 1`` up into tier ``index`` as far as it is complete; points written.

    Args:
        catalog: The store's series by name and sorted labels, guarded by ``lock``.
    """
    width = tiers[index].resolution_ms
    with lock:
        todo = [
            (series.row(), series.snapshot(), series.sealed_ms, series.last_ms)
            for series in catalog.values()
        ]
    chunks, progress = roll_up(
        table, tiers, index, todo, now_ms=now_ms, span_ms=span_ms, chunk_samples=chunk_samples
    )
    if not progress:
        return 0
    table.write(chunks, progress)
    with lock:
        for (key, name, labels, _), _, limit in progress:
            series = catalog.get((name, tuple(sorted(labels.items()))))
            if series is not None and series.key == key:
                series.progress[width] = limit
                # a late sample in a rolled-up bucket would never reach this tier: it is
                # refused (and counted) as out of order instead of silently lost later
                series.last_ms = max(series.last_ms, limit - 1)
    return sum(chunk[4] for chunk in chunks)


class MaintenanceThread:
    """The daemon thread that runs a store's maintenance every ``interval`` seconds.

    Its errors are counted, never raised: a failing pass (the file busy, a bug) must not end
    the thread, since the next pass may succeed.
    """

    def __init__(self, run: Callable[[], object]) -> None:
        self._run_once = run
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval: float) -> None:
        """Start the thread, unless it runs already."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="paca-otel-history", daemon=True
        )
        self._thread.start()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                with handle_internal_errors("history_maintenance", _logger):
                    self._run_once()
            except StorageError as exc:
                count_error("history_maintenance", exc)

    def stop(self, timeout: float) -> None:
        """Stop the thread (waits up to ``timeout`` for a running pass)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
