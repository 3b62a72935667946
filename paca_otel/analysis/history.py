"""The embedded metric history: compressed chunks of every series in the shared SQLite file.

One more consumer of the pipeline's single collection
(:meth:`HistoryStore.record_metrics_data`) or of direct :meth:`HistoryStore.append` calls, and a
:class:`~paca_otel.analysis.source.SeriesSource` for the analyzers
(:meth:`HistoryStore.query_range`).

Data path and budgets (measured by ``benchmarks/bench_history.py``):

- **Append** puts a sample in its series' in-memory buffer (one lock, no I/O, no encoding).
  A buffer is sealed at ``chunk_samples`` samples or ``chunk_span`` seconds; sealed chunks
  wait in a bounded queue (``max_pending`` samples; beyond it chunks are dropped and counted
  in ``paca_otel.dropped{reason="history_write_backlog"}``) for the store's own writer
  thread, which encodes them, encrypts sensitive series and writes them in one transaction
  (:mod:`paca_otel.analysis._history_writer`). Out-of-order and duplicate samples are dropped
  and counted. Budget: >= 200k samples/s.
- **Query** reads a series' chunks from the file, the queue and the buffer, so the newest
  sample is visible at once, decodes them and rolls them up per step
  (:mod:`paca_otel.analysis._rollup`). Budget: 60k points of one series in <= 50 ms.
- **Maintenance** (:meth:`HistoryStore.run_maintenance`, or a background thread from
  :meth:`HistoryStore.start`) seals idle buffers, rolls each tier up into the next
  (:mod:`paca_otel.analysis._tiers`) and deletes what is older than each tier's retention.

Timestamps are stored in milliseconds (sub-millisecond parts are rounded); values as the
exact float64 given. One process writes a file's history (the one running the collection);
others may read it. With ``shared=True`` (``multiprocess_dir``: the workers of a service share
one file) the workers elect the one that records the service-wide view, and the others read
what it publishes, up to a minute late (:mod:`paca_otel.analysis._history_shared`).

Sensitive series (``append(..., sensitive=True)``, or names matching ``sensitive``) have their
chunks encrypted with the storage layer's :class:`~paca_otel.storage.Codec`
(``storage_key``); labels of every series go through the codec and series are looked up by
the codec's keyed index, so with a key set no label value is in the file in clear either.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paca_otel._internal import drops, handle_internal_errors
from paca_otel._labelregex import RegexSyntaxError, compile_label_regex, regex_fullmatch
from paca_otel.analysis._chunks import TS_LIMIT
from paca_otel.analysis._history_reader import fetch
from paca_otel.analysis._history_shared import SharedFile
from paca_otel.analysis._history_table import ChunkTable, series_key
from paca_otel.analysis._history_writer import (
    NEVER,
    ChunkWriter,
    MaintenanceThread,
    Series,
    downsample,
)
from paca_otel.analysis._matchers import label_predicate
from paca_otel.analysis._recording import CollectionRecorder
from paca_otel.analysis._rollup import RangePoints, rollup
from paca_otel.analysis._tiers import (
    DEFAULT_TIERS,
    DEFAULT_TIERS_TEXT,
    Tier,
    choose_tier,
    parse_tiers,
)
from paca_otel.analysis.source import LabelMatcher, RangeSeries
from paca_otel.errors import ConfigError, PacaOtelError
from paca_otel.storage import Codec, Database, open_database

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricsData

__all__ = ["HistoryError", "HistoryStore", "MaintenanceReport", "default_history_path"]

_logger = logging.getLogger("paca_otel.analysis.history")

#: Most steps one query may return.
MAX_QUERY_POINTS = 1_000_000


class HistoryError(PacaOtelError, ValueError):
    """A history call got input it cannot use; the message names the argument and the rule."""


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What one :meth:`HistoryStore.run_maintenance` did."""

    sealed_chunks: int
    downsampled_points: int
    deleted_chunks: int
    forgotten_series: int


def default_history_path(multiprocess_dir: str | os.PathLike[str] | None = None) -> Path:
    """``$XDG_DATA_HOME/paca-otel/history.sqlite3`` (``~/.local/share`` without the variable).

    With ``multiprocess_dir``, ``history.sqlite3`` in it: the workers of the service share it.
    """
    if multiprocess_dir is not None:
        return Path(multiprocess_dir) / "history.sqlite3"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "paca-otel" / "history.sqlite3"


class HistoryStore:
    """Compressed metric history in a SQLite file, with tiers, retention and range queries.

    Args:
        path: The SQLite file (shared with other components through
            :func:`~paca_otel.storage.open_database`); ``None`` keeps it in memory.
        codec: Encrypts sensitive series and labels (``Codec.from_settings``); none: no key.
        tiers: Resolutions and retentions, raw first (see ``tiers.parse_tiers``).
        sensitive: RE2 pattern: series whose name it matches in full are sensitive.
        chunk_samples: Samples per sealed chunk (more compress better, decode as one).
        chunk_span: Seconds one chunk may span; an idle series is sealed after it.
        max_series: Series kept; new ones beyond it are dropped and counted.
        max_pending: Sealed samples waiting for the writer; beyond it chunks are dropped.
        clock: Seconds since the epoch (a fake one in tests).
        shared: Several processes use ``path`` (multiprocess mode): the one holding the lock
            file beside it records (:meth:`record_service`); the others refuse appends and
            read what it writes (see :mod:`paca_otel.analysis._history_shared`).

    Raises:
        ConfigError: a bad argument or ``sensitive`` pattern, or ``sensitive`` without an
            encrypting codec; :class:`~paca_otel.errors.StorageError`: the file is unusable.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        codec: Codec | None = None,
        tiers: Sequence[Tier] = DEFAULT_TIERS,
        sensitive: str | None = None,
        chunk_samples: int = 240,
        chunk_span: float = 3600.0,
        max_series: int = 100_000,
        max_pending: int = 2_000_000,
        clock: Callable[[], float] = time.time,
        shared: bool = False,
    ) -> None:
        if isinstance(chunk_samples, bool) or not (
            isinstance(chunk_samples, int) and 2 <= chunk_samples <= 65_536
        ):
            msg = f"chunk_samples={chunk_samples!r} must be an integer 2..65536"
            raise ConfigError(msg)
        if not (isinstance(chunk_span, int | float) and 1.0 <= chunk_span <= 86_400.0):
            msg = f"chunk_span={chunk_span!r} must be 1..86400 seconds"
            raise ConfigError(msg)
        if not tiers or not tiers[0].raw:
            msg = "tiers must start with the raw tier (see paca_otel.analysis._tiers.parse_tiers)"
            raise ConfigError(msg)
        self._codec = codec or Codec()
        self._sensitive = None
        if sensitive:
            try:
                self._sensitive = compile_label_regex(sensitive)
            except RegexSyntaxError as exc:
                msg = f"history_sensitive={sensitive!r} is not a valid RE2 pattern: {exc}"
                raise ConfigError(msg) from None
            self._require_key("history_sensitive is set")
        self.tiers = tuple(tiers)
        self.chunk_samples = chunk_samples
        self._span_ms = round(chunk_span * 1000)
        self.max_series = max_series
        self.max_pending = max_pending
        self._clock = clock
        self._lock = threading.Lock()
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
        self._by_name: dict[str, list[Series]] = {}
        self._recorder = CollectionRecorder()
        #: What the last :meth:`run_maintenance` did (None: it has not run).
        self.last_maintenance: MaintenanceReport | None = None
        #: Samples dropped, by reason (also counted in ``paca_otel.dropped``).
        self.dropped: Counter[str] = Counter()
        self._maintainer = MaintenanceThread(self.run_maintenance)
        self._shared: SharedFile | None = None
        self._db: Database = open_database(path)
        try:
            if shared and not self._db.shared:
                msg = "a shared history needs a file, not an in-memory database"
                raise ConfigError(msg)
            self._table = ChunkTable(self._db, self._codec, shared=shared)
            self._writer = ChunkWriter(self._table, self._lock)
            if shared:  # a reader does not need where series end
                self._shared = SharedFile(self._db)
                self._shared.refresh(self._reload_catalog, force=True)
            else:
                self._reload()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> HistoryStore:
        """The store of ``history_path`` (unset: :func:`default_history_path`, in
        ``multiprocess_dir`` if set), ``history_tiers``, ``history_sensitive`` and
        ``storage_key``; shared (one recorder) with ``multiprocess_dir`` and a file."""
        directory = getattr(settings, "multiprocess_dir", None)
        path = getattr(settings, "history_path", None) or default_history_path(directory)
        if os.fspath(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs.setdefault("shared", directory is not None)
        text = getattr(settings, "history_tiers", None) or DEFAULT_TIERS_TEXT
        return cls(
            path,
            codec=Codec.from_settings(settings),
            tiers=parse_tiers(text),
            sensitive=getattr(settings, "history_sensitive", None),
            **kwargs,
        )

    @property
    def shared(self) -> bool:
        """Whether several processes share the file (one records, see :meth:`record_service`)."""
        return self._shared is not None

    @property
    def recording(self) -> bool:
        """Whether this process writes the file: always, unless shared and another records."""
        return self._shared is None or self._shared.lock.held

    # -- catalog ----------------------------------------------------------------------------

    def _require_key(self, why: str) -> None:
        if not self._codec.encrypted:
            msg = (
                f"{why} but storage_key (PACA_OTEL_STORAGE_KEY) is not set: sensitive series "
                "are only ever stored encrypted"
            )
            raise ConfigError(msg)

    def _reload(self, *, ends: bool = True) -> None:
        """Read the catalog from the file (at start; in shared mode, when it changed)."""
        with self._lock:
            known = {series.key: series.labels for series in self._series.values()}
        rows, last, progress = self._table.load(ends=ends, known=known)
        fresh: list[Series] = []
        for key, name, labels, sensitive in rows:
            series = Series(key, name, dict(labels), sensitive)
            series.last_ms = series.sealed_ms = last.get(key, NEVER)
            series.progress = progress.get(key, {})
            fresh.append(series)
        with self._lock:
            self._series, self._by_name = {}, {}
            for series in fresh:
                self._index(series)

    def _index(self, series: Series) -> None:
        self._series[(series.name, tuple(sorted(series.labels.items())))] = series
        self._by_name.setdefault(series.name, []).append(series)

    def _reload_catalog(self) -> None:
        self._reload(ends=False)

    def _new_series(
        self, key: tuple[str, tuple[tuple[str, str], ...]], sensitive: bool
    ) -> Series | None:
        name, items = key
        if not isinstance(name, str) or not name:
            msg = f"history series name must be a non-empty string, got {name!r}"
            raise HistoryError(msg)
        for label, value in items:
            if not isinstance(label, str) or not isinstance(value, str):
                msg = (
                    f"history labels must map strings to strings; {name!r} has "
                    f"{label!r}: {type(value).__name__}"
                )
                raise HistoryError(msg)
        if self._sensitive is not None and regex_fullmatch(self._sensitive, name):
            sensitive = True
        if sensitive:
            self._require_key(f"series {name!r} is marked sensitive")
        if len(self._series) >= self.max_series:
            self._drop("history_series_limit")
            return None
        labels = dict(items)
        series = Series(series_key(self._codec, name, labels), name, labels, sensitive)
        self._index(series)
        return series

    def names(self) -> list[str]:
        """The metric names held (written, queued or buffered), sorted."""
        if self._shared is not None:
            self._shared.refresh(self._reload_catalog)
        with self._lock:
            return sorted(self._by_name)

    # -- writes -----------------------------------------------------------------------------

    def _drop(self, reason: str, amount: int = 1) -> None:
        self.dropped[reason] += amount
        drops.add(reason, amount)

    def append(
        self,
        name: str,
        labels: Mapping[str, str],
        timestamp: float,
        value: float,
        *,
        sensitive: bool = False,
    ) -> bool:
        """Record one sample; ``False`` if it was dropped (out of order, series limit).

        Args:
            name: The metric name (``system.cpu.utilization``).
            labels: Label names to string values.
            timestamp: Seconds since the epoch (kept to the millisecond).
            value: The value; every float64 (NaN, inf, -0.0) comes back bit for bit.
            sensitive: Store this series encrypted (needs ``storage_key``); a series once
                sensitive stays so (chunks written before that stay as they were).

        Raises:
            HistoryError: a bad name, label, timestamp or value.
            ConfigError: ``sensitive`` without ``storage_key``.
        """
        if self._shared is not None and not self._shared.lock.held:
            self._drop("history_not_recorder")  # shared, and another process records
            return False
        ms = _millis(timestamp)
        if type(value) is not float:
            value = _float(value)
        key = (name, tuple(sorted(labels.items())) if labels else ())
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._new_series(key, sensitive)
                if series is None:
                    return False
            elif sensitive and not series.sensitive:
                self._require_key(f"series {name!r} is marked sensitive")
                series.sensitive = True
            if ms <= series.last_ms:
                self._drop("history_out_of_order")
                return False
            times = series.times
            if times and (len(times) >= self.chunk_samples or ms - times[0] >= self._span_ms):
                self._seal(series)
                times = series.times
            times.append(ms)
            series.values.append(value)
            series.last_ms = ms
            return True

    def append_many(
        self,
        samples: Iterable[tuple[str, Mapping[str, str], float, float]],
        *,
        sensitive: bool = False,
    ) -> int:
        """Record ``(name, labels, timestamp, value)`` samples; return how many were kept.

        Raises:
            HistoryError: as :meth:`append` (the samples before the bad one are kept).
        """
        append = self.append
        return sum(append(n, lab, t, v, sensitive=sensitive) for n, lab, t, v in samples)

    def record_metrics_data(self, data: MetricsData, timestamp: float | None = None) -> int:
        """Record one collection (gauges, sums, histograms; see :mod:`.recording`).

        For the pipeline's collection callback: never raises; a bad sample is dropped and
        counted (``paca_otel.dropped{reason="history_bad_sample"}``).

        Args:
            data: What the pipeline's reader collected.
            timestamp: The collection's time in seconds (default: each point's own).

        Returns:
            Samples kept.
        """
        kept = 0
        with handle_internal_errors("history_record", _logger):
            for name, labels, at, value in self._recorder.samples(data, timestamp):
                try:
                    kept += self.append(name, labels, at, value)
                except (HistoryError, ConfigError):
                    self._drop("history_bad_sample")
        return kept

    def record_service(
        self, collect: Callable[[], MetricsData | None], timestamp: float | None = None
    ) -> int:
        """A shared store's tick: record ``collect()`` (the service's view) if this process may.

        Each call first tries to become the recorder; a process that does not record returns
        0 without calling ``collect``. The recorder publishes its open buffers every
        :data:`~paca_otel.analysis._history_shared.PUBLISH_EVERY` seconds, so that the others
        read its samples. Without ``shared``: :meth:`record_metrics_data` of ``collect()``.
        """
        shared = self._shared
        if shared is not None:
            shared.elect(self._reload)
            if not shared.lock.held:
                return 0
        data = collect()
        kept = 0 if data is None else self.record_metrics_data(data, timestamp)
        if shared is not None and shared.publish_due():
            with self._lock:  # the writer takes the lock again per batch of series
                catalog = list(self._series.values())
            self._writer.publish(catalog, self.max_pending)
        return kept

    def _seal_open(self) -> None:
        with self._lock:
            for series in self._series.values():
                if series.times:
                    self._seal(series)

    def _seal(self, series: Series) -> None:
        """Move the open buffer to the writer's queue (lock held); drop it if that is full."""
        chunk = series.seal()
        if not self._writer.put(series, chunk, self.max_pending):
            self._drop("history_write_backlog", len(chunk.times))

    def flush(self) -> None:
        """Seal every buffer and write everything queued, on the caller's thread.

        For shutdown and tests: sealing early makes smaller chunks (compressing less).

        Raises:
            StorageError: the file cannot be written (the chunks stay queued).
        """
        self._seal_open()
        self._writer.write()

    # -- reads ------------------------------------------------------------------------------

    def query_range(
        self,
        name: str,
        matchers: Sequence[LabelMatcher] = (),
        *,
        start: float,
        end: float,
        step: float,
    ) -> list[RangeSeries]:
        """Every series of ``name`` matching ``matchers``, rolled up per ``step``.

        Step ``k`` covers ``[start + k*step, start + (k+1)*step)`` and is stamped with its
        start; its value is the mean of the samples inside, beside their min, max, sum and
        count. Steps without samples are left out. Older ranges come from coarser tiers
        (:func:`~paca_otel.analysis._tiers.choose_tier`). The points are a
        :class:`~paca_otel.analysis._rollup.RangePoints` (columns: ``.values``...).

        Raises:
            HistoryError: a bad range or step; MatcherError: a bad matcher.
        """
        if self._shared is not None:
            self._shared.refresh(self._reload_catalog)
        start_ms, end_ms = _millis(start, "start"), _millis(end, "end")
        if isinstance(step, bool) or not (
            isinstance(step, int | float) and math.isfinite(step) and step > 0
        ):
            msg = f"step={step!r} must be a positive number of seconds"
            raise HistoryError(msg)
        step_ms = max(1, round(step * 1000))
        if end_ms < start_ms:
            msg = f"end={end!r} is before start={start!r}"
            raise HistoryError(msg)
        if (end_ms - start_ms) // step_ms >= MAX_QUERY_POINTS:
            msg = (
                f"start={start!r}..end={end!r} at step={step!r} is more than "
                f"{MAX_QUERY_POINTS} steps: use a larger step"
            )
            raise HistoryError(msg)
        match = label_predicate(matchers)
        tier = choose_tier(self.tiers, _millis(self._clock(), "clock"), start_ms, step_ms)
        with self._lock:
            found = [
                (series.labels, series.snapshot())
                for series in self._by_name.get(name, ())
                if match(series.labels)
            ]
        result = []
        for labels, snap in found:
            columns = fetch(
                self._table, self.tiers, snap, tier=tier, start_ms=start_ms, end_ms=end_ms
            )
            if columns[0]:
                points = RangePoints(rollup(columns, step_ms, start_ms))
                result.append(RangeSeries(name, dict(labels), points))
        return result

    # -- maintenance ------------------------------------------------------------------------

    def run_maintenance(self, now: float | None = None) -> MaintenanceReport:
        """Seal idle buffers, roll tiers up, and delete what is past each tier's retention.

        Runs on the caller's thread (the maintenance thread, or a test with a fake clock).
        A tier is rolled up only over buckets whose samples are all sealed, so no point is
        ever written from part of its bucket.

        Args:
            now: Seconds since the epoch (default: the store's clock).
        """
        now_ms = _millis(self._clock() if now is None else now, "now")
        if not self.recording:  # shared, and the recorder maintains the file
            self.last_maintenance = MaintenanceReport(0, 0, 0, 0)
            return self.last_maintenance
        sealed = 0
        with self._lock:
            for series in self._series.values():
                if series.times and now_ms - series.times[0] >= self._span_ms:
                    self._seal(series)
                    sealed += 1
        self._writer.write()
        points = sum(
            downsample(
                self._table,
                self.tiers,
                index,
                self._series,
                self._lock,
                now_ms=now_ms,
                span_ms=self._span_ms,
                chunk_samples=self.chunk_samples,
            )
            for index in range(1, len(self.tiers))
        )
        deleted, forgotten = self._expire(now_ms)
        report = MaintenanceReport(sealed, points, deleted, forgotten)
        self.last_maintenance = report
        return report

    def _expire(self, now_ms: int) -> tuple[int, int]:
        """Delete chunks past retention; forget series left with no data anywhere."""
        deleted, empty = self._table.expire(
            [(tier.resolution_ms, now_ms - tier.retention_ms) for tier in self.tiers]
        )
        gone: list[str] = []
        empty_keys = set(empty)
        with self._lock:  # not inside the transaction: appends take this lock, then the file's
            for catalog_key, series in list(self._series.items()):
                if series.key not in empty_keys or series.times or series.pending:
                    continue
                gone.append(series.key)
                del self._series[catalog_key]
                same_name = self._by_name[series.name]
                same_name.remove(series)
                if not same_name:
                    del self._by_name[series.name]
        if gone:
            self._table.forget(gone)
        return deleted, len(gone)

    def start(self, interval: float = 60.0) -> None:
        """Run :meth:`run_maintenance` every ``interval`` seconds on a daemon thread."""
        if isinstance(interval, bool) or not (
            isinstance(interval, int | float) and 0 < interval <= 86_400
        ):
            msg = f"interval={interval!r} must be more than 0 and at most 86400 seconds"
            raise ConfigError(msg)
        self._maintainer.start(float(interval))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the maintenance thread (waits up to ``timeout`` for a running pass)."""
        self._maintainer.stop(timeout)

    def close(self) -> None:
        """Stop maintenance, write everything buffered, stop the writer, release the file."""
        self.stop()
        try:
            self.flush()
        finally:
            self._writer.close()
            if self._shared is not None:  # after the flush: the next recorder reads it all
                self._shared.lock.release()
            self._db.close()

    def __repr__(self) -> str:
        return f"HistoryStore(path={self._db.path!r}, series={len(self._series)})"


# -- helpers ----------------------------------------------------------------------------------


def _millis(seconds: float, what: str = "timestamp") -> int:
    """Seconds as integer milliseconds, or a HistoryError naming ``what``."""
    try:
        if isinstance(seconds, bool):
            raise TypeError
        ms = round(seconds * 1000)
    except (TypeError, ValueError, OverflowError):
        ms = None
    if ms is None or not -TS_LIMIT <= ms <= TS_LIMIT:
        msg = f"{what}={seconds!r} must be a finite number of seconds since the epoch"
        raise HistoryError(msg)
    return ms


def _float(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    msg = f"history value must be a number, got {type(value).__name__}"
    raise HistoryError(msg)
