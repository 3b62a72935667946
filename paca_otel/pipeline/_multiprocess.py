"""Multiprocess mode: any worker's ``/metrics``, alerting and snapshot see the whole service.

Under ``uvicorn --workers N`` or gunicorn, each worker has its own MeterProvider and its own
one collection (:mod:`paca_otel.pipeline._collection`), so a scrape, an alert rule or
``get_current_metrics()`` would see whichever worker answered. With ``multiprocess_dir`` set,
:class:`MultiprocessMetrics` makes them see the service:

* **Publish.** Each worker writes its cumulative collection and its RED window
  (:mod:`paca_otel.pipeline._mpfile`, :mod:`paca_otel.pipeline._mpred`) to a file of its own
  in the directory, every :data:`PUBLISH_EVERY` seconds from a small daemon thread (never on
  the request path; spaced out so it takes at most :data:`PUBLISH_BUDGET` of a core), and
  again whenever it serves a merged view.
* **Merge.** A merged view (:mod:`paca_otel.pipeline._mpmerge`) is the worker's fresh local
  collection plus every other worker's latest file, as one
  :class:`~opentelemetry.sdk.metrics.export.MetricsData` of the SDK's own data classes, so the
  Prometheus exposition, the series store and the snapshot read it unchanged:

  - counters and histograms are summed per metric and attribute set (histograms only when
    their bucket bounds match; others are left out and counted);
  - host-wide metrics (``system.*``, ``container.*``: the system gauges of
    :mod:`paca_otel.signals._system`) are taken once, from the freshest live worker;
  - per-process metrics (``process.*``, ``cpython.*``) and all other gauges are kept per live
    worker with a ``pid`` label (prometheus_client's ``all`` mode);
  - up-down counters (in-flight requests) are summed over live workers.
* **Workers come and go.** A dead worker's file stays, so its counters and histograms keep
  counting in the sums and the service's counters never go down when a worker restarts
  (the ``live``/``all`` modes' promise); its gauges, up-down counters and RED window are
  dropped. A worker is live while its file is not marked closed (a clean shutdown marks it),
  its pid runs with the same process start time (so a reused pid is not mistaken for it) and
  its file is younger than ``stale_after``. Files of dead workers are folded into one
  ``archive.pamp`` once :data:`COMPACT_AT` of them pile up (under an ``flock``, so one worker
  compacts at a time), so a service that restarts workers often keeps a bounded directory.
* **Monotonic across scrapes.** Scrapes land on random workers. Each merged view first
  publishes the local data it shows, and files only move forward, so any later view, from any
  worker, contains every worker's contribution at least as new as any earlier one did.

Not merged, on purpose: OTLP export stays per worker (each exports its own data under its own
``service.instance.id``; the collector and the backend aggregate, the OTel way). The metric
history records the merged view: one elected worker writes it to ``history.sqlite3`` in the
directory and the others read it (:mod:`paca_otel.analysis._history_shared`). The merged view's
resource drops ``service.instance.id``:
it describes the service, not one worker. Files of another host in the directory are ignored
(a pid cannot be checked across hosts): use one directory per host.

Why not prometheus_client's multiprocess mode: it merges *its own* metric objects, whose
values every ``inc()`` writes into mmap'd ``*.db`` files on the request path, and it yields
Prometheus families, after the OTel-to-Prometheus translation. paca-otel's data is the OTel
SDK's collection, which the alerting store and the snapshot need as OTel data (OTel names,
attributes, histogram buckets), so merging families would mean translating back. Its liveness
also rests on ``mark_process_dead`` hooks in the server config (no pid-reuse check), and it has
no host-wide mode (a host's network counter would be summed N times). The rules above follow
its modes; the code is ours (four modules, half of them docstrings and checks).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import psutil
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.resources import Resource

from paca_otel._internal import drops, handle_internal_errors, warn_once
from paca_otel.pipeline._mpfile import (
    MAX_FILE_BYTES,
    SUMMED,
    AttrKey,
    FileFormatError,
    Flattener,
    Header,
    Schema,
    Source,
    Template,
    cached_template,
    decode,
    encode,
    schema_json,
    write_atomic,
)
from paca_otel.pipeline._mpmerge import Part, PidCache, merge, to_metrics_data, to_schema
from paca_otel.pipeline._mpred import (
    Section,
    decode_section,
    encode_section,
    merge_sections,
    section_of,
)

if TYPE_CHECKING:
    from paca_otel.pipeline._pipeline import Pipeline
    from paca_otel.pipeline._spans import REDStats

logger = logging.getLogger("paca_otel.pipeline")

PUBLISH_EVERY: Final = 1.0
"""Seconds between a worker's publications: how far behind a peer's numbers can be."""
PUBLISH_BUDGET: Final = 0.05
"""Share of one core publications may take: a slow one (a huge collection) spaces them out."""
COMPACT_EVERY: Final = 30.0
"""Seconds between checks for dead workers' files to fold into the archive."""
COMPACT_AT: Final = 8
"""Dead workers' files that trigger a compaction."""
LIVENESS_TTL: Final = 1.0
"""Seconds a pid check is reused."""
ARCHIVE: Final = "archive.pamp"
_PREFIX: Final = "w-"
_SUFFIX: Final = ".pamp"
_TMP_MAX_AGE: Final = 300.0
_CACHE_MAX: Final = 8192
_PER_WORKER_RESOURCE_KEYS: Final = frozenset({"service.instance.id", "process.pid"})


@dataclass(frozen=True, slots=True)
class _Identity:
    pid: int
    proc_start: float
    id: str
    name: str


@dataclass(slots=True)
class _Cached:
    stat: tuple[int, int, int]
    source: Source | None
    section: Section | bool | None = False  # False: not decoded yet; None: invalid


class MultiprocessMetrics:
    """Publishes this worker's collection and serves the merged, service-wide views.

    Args:
        pipeline: The worker's pipeline (its collection and RED span processor).
        directory: The directory every worker of the service shares (created if missing).
        interval: Seconds between publications.
        stale_after: Seconds after which a worker whose file did not change counts as dead
            for gauges (its counters still count); 30 intervals and at least 60 s by default.
        compact_at: Dead workers' files that trigger a compaction into the archive.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        directory: Path | str,
        *,
        interval: float = PUBLISH_EVERY,
        stale_after: float | None = None,
        compact_at: int = COMPACT_AT,
    ) -> None:
        self.directory = Path(directory)
        self._pipeline = pipeline
        self._collection = pipeline.reader
        self._processor = pipeline.span_processor
        self.interval = float(interval)
        self.stale_after = max(60.0, 30 * interval) if stale_after is None else stale_after
        self.compact_at = max(1, compact_at)
        self._host = socket.gethostname()
        self._lock = threading.Lock()  # collect + publish + merge: files only move forward
        self._identity: _Identity | None = None
        self._files: dict[str, _Cached] = {}
        self._templates: dict[bytes, Template] = {}
        self._alive: dict[tuple[int, float], tuple[float, bool]] = {}
        self._flattener = Flattener()
        self._pid_series: PidCache = {}
        self._attributes: dict[AttrKey, dict[str, Any]] = {}
        self._schema: Schema | None = None
        self._template: Template | None = None
        self._schema_bytes = b""
        self._red = b""
        self._resource: tuple[Resource, Resource] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.publications = 0
        self.last_publish_seconds = 0.0
        self.last_merge_seconds = 0.0

    # -------------------------------------------------------------------------- lifecycle

    def start(self) -> bool:
        """Create the directory, publish once, start the thread and serve the merged views.

        Returns:
            False when the directory cannot be used: then one warning says that this worker
            shows its own numbers only, and nothing else happens (the application starts,
            as it does when the Prometheus port is busy).
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not os.access(self.directory, os.W_OK | os.X_OK):
                raise PermissionError("not writable")  # one message for all
        except OSError as exc:
            drops.add("multiprocess_dir_unusable")
            logger.warning(
                "paca-otel: multiprocess_dir %s cannot be used (%s): /metrics, alerting and "
                "snapshots of this worker (pid %d) show this worker only",
                self.directory,
                exc,
                os.getpid(),
            )
            return False
        self.publish_now()
        self._pipeline.reader.set_view(self.service_metrics)
        self._pipeline.set_red_view(self.red_figures)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="paca-otel-multiprocess", daemon=True
        )
        self._thread.start()
        logger.info(
            "paca-otel: multiprocess metrics in %s (pid %d): /metrics, alerting and snapshots "
            "show every worker of this host",
            self.directory,
            os.getpid(),
        )
        return True

    def close(self) -> None:
        """Stop, and publish a last time marked closed (its counters keep counting)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return  # never started (or closed already)
        thread.join(timeout=2.0)
        self._pipeline.reader.set_view(None)
        self._pipeline.set_red_view(None)
        with handle_internal_errors("multiprocess.close", logger):
            self.publish_now(closed=True)

    def _run(self) -> None:
        next_compaction = time.monotonic() + COMPACT_EVERY
        cost = 0.0
        while not self._stop.wait(max(self.interval, cost / PUBLISH_BUDGET)):
            started = time.perf_counter()
            with handle_internal_errors("multiprocess.publish", logger):
                self.publish_now()
            cost = time.perf_counter() - started
            if time.monotonic() >= next_compaction:
                next_compaction = time.monotonic() + COMPACT_EVERY
                with handle_internal_errors("multiprocess.compact", logger):
                    self.compact()

    # ------------------------------------------------------------------------- publishing

    def publish_now(self, *, closed: bool = False) -> None:
        """Write this worker's current collection and RED window to its file."""
        windows, span_s = self._processor.drain_windows()
        red = encode_section(section_of(windows, span_s))
        with self._lock:
            self._red = red
            data = self._collection.collect_now(max_age=0 if closed else self.interval / 2)
            self._publish(data or MetricsData(resource_metrics=[]), closed=closed)

    def _me(self) -> _Identity:
        pid = os.getpid()
        me = self._identity
        if me is None or me.pid != pid:  # first use, or a fork: a file of our own
            token = uuid.uuid4().hex[:12]
            me = self._identity = _Identity(
                pid, psutil.Process(pid).create_time(), f"{pid}-{token}",
                f"{_PREFIX}{pid}-{token}{_SUFFIX}",
            )  # fmt: skip
        return me

    def _publish(self, data: MetricsData, *, closed: bool = False) -> Source:
        """Write ``data`` (under the lock); return it as the local source of a merge."""
        started = time.perf_counter()
        me = self._me()
        schema, values, start_ns, skipped = self._flattener.flatten(data)
        if schema != self._schema or self._template is None:
            self._schema, self._schema_bytes = schema, schema_json(schema)
            self._template = cached_template(self._schema_bytes, self._templates, schema)
            if skipped:
                drops.add("multiprocess_unsupported_points", skipped)
                warn_once(
                    logger,
                    "multiprocess.unsupported",
                    "paca-otel: %d data points (exponential histograms, or histogram points "
                    "with bounds unlike their metric's) are not shared between workers",
                    skipped,
                )
        header = Header(me.id, me.pid, me.proc_start, self._host, time.time(), closed, start_ns)
        source = Source(header, self._template, values, self._red)
        try:
            write_atomic(
                self.directory, me.name, encode(header, self._schema_bytes, self._red, values)
            )
        except (OSError, FileFormatError) as exc:
            drops.add("multiprocess_publish_failed")
            warn_once(
                logger,
                "multiprocess.publish",
                "paca-otel: cannot publish this worker's metrics to %s (%s); other workers "
                "see its last published numbers (further failures are only counted)",
                self.directory,
                exc,
            )
        self.publications += 1
        self.last_publish_seconds = time.perf_counter() - started
        return source

    # --------------------------------------------------------------------------- reading

    def _load(self, name: str) -> Source | None:
        """One file, decoded once per version (by inode, mtime and size); None if unusable."""
        path = self.directory / name
        try:
            st = path.stat()
        except FileNotFoundError:
            self._files.pop(name, None)
            return None
        stat = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._files.get(name)
        if cached is not None and cached.stat == stat:
            return cached.source
        source: Source | None = None
        try:
            if st.st_size > MAX_FILE_BYTES:
                raise FileFormatError(f"{st.st_size} bytes")  # one handler for all
            source = decode(path.read_bytes(), self._templates)
        except FileNotFoundError:
            self._files.pop(name, None)
            return None
        except (OSError, FileFormatError) as exc:
            self._skip(name, "multiprocess_corrupt_file", str(exc))
        else:
            if source.header.host != self._host:
                self._skip(name, "multiprocess_foreign_host", f"written on {source.header.host}")
                source = None
        self._files[name] = _Cached(stat, source)
        return source

    def _skip(self, name: str, reason: str, why: str) -> None:
        drops.add(reason)
        warn_once(
            logger,
            f"multiprocess.{reason}",
            "paca-otel: skipping %s in %s: %s (one directory per host; further skipped files "
            "are only counted in paca_otel.dropped{reason=%s})",
            name,
            self.directory,
            why,
            reason,
        )

    def _listing(self) -> list[tuple[str, Source]]:
        """Every other worker's usable file of this host, by name."""
        me = self._me()
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(self.directory)
                if entry.name.startswith(_PREFIX) and entry.name.endswith(_SUFFIX)
            )
        except OSError as exc:
            self._skip(str(self.directory), "multiprocess_dir_unreadable", str(exc))
            return []
        for gone in set(self._files) - {*names, ARCHIVE}:
            del self._files[gone]
        found = [(n, source) for n in names if n != me.name if (source := self._load(n))]
        if len(self._templates) > 4 * len(names) + 16:  # schemas no file uses any more
            used = {id(c.source.template) for c in self._files.values() if c.source is not None}
            used.add(id(self._template))
            self._templates = {d: t for d, t in self._templates.items() if id(t) in used}
        return found

    def _scan(self) -> list[tuple[str, Source]]:
        """:meth:`_listing` minus what the archive absorbed, then the archive.

        The archive is read *after* the worker files: a compaction renames the new archive
        into place before it deletes the files it absorbed, so a file gone from the listing is
        in the archive read next, and a file read and also absorbed is skipped here.
        """
        found = self._listing()
        archive = self._load(ARCHIVE)
        if archive is None:
            return found
        absorbed = set(archive.header.absorbed)
        kept = [(n, s) for n, s in found if s.header.id not in absorbed]
        return [*kept, (ARCHIVE, archive)]

    def _peers(self) -> list[tuple[str, Part]]:
        """Other workers' sources: live ones freshest first, then dead ones, the archive last."""
        now = time.time()
        parts = [(n, Part(s, n != ARCHIVE and self._live(s.header, now))) for n, s in self._scan()]
        parts.sort(key=lambda np: (not np[1].live, np[0] == ARCHIVE, -np[1].source.header.written))
        return parts

    def _dead(self, header: Header) -> bool:
        """Gone for good: closed, an earlier instance in this process, or its pid is gone."""
        me = self._me()
        if header.closed or header.pid == me.pid:
            return True
        return not self._pid_alive(header.pid, header.proc_start)

    def _live(self, header: Header, now: float) -> bool:
        return now - header.written <= self.stale_after and not self._dead(header)

    def _pid_alive(self, pid: int, proc_start: float) -> bool:
        key = (pid, proc_start)
        checked = self._alive.get(key)
        mono = time.monotonic()
        if checked is not None and mono - checked[0] < LIVENESS_TTL:
            return checked[1]
        try:
            process = psutil.Process(pid)
            alive = (
                abs(process.create_time() - proc_start) < 1.0
                and process.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:  # no such process, a zombie, or someone else's
            alive = False
        if len(self._alive) > 4096:
            self._alive.clear()
        self._alive[key] = (mono, alive)
        return alive

    # ----------------------------------------------------------------------- merged views

    def service_metrics(self, max_age: float = 0.0, now: float | None = None) -> MetricsData | None:
        """The service-wide collection (the view :meth:`Collection.collect_service` serves).

        Collects locally, publishes that, and merges it with every other worker's file. If the
        merge fails, the local data is returned (logged once and counted).
        """
        with self._lock:
            data = self._collection.collect_now(max_age=max_age, now=now)
            if data is None:  # nothing recorded here (yet): the others' data still counts
                data = MetricsData(resource_metrics=[])
            with handle_internal_errors("multiprocess.merge", logger):
                local = self._publish(data)
                started = time.perf_counter()
                if len(self._pid_series) > _CACHE_MAX:
                    self._pid_series.clear()
                parts = [Part(local, True), *(part for _, part in self._peers())]
                merged = merge(parts, pid_cache=self._pid_series)
                for reason, count in merged.dropped.items():
                    drops.add(reason, count)
                if len(self._attributes) > 2 * sum(len(a.points) for a in merged.metrics.values()):
                    self._attributes.clear()  # series came and went
                resource = self._service_resource(data)
                result = to_metrics_data(merged, resource, time.time_ns(), self._attributes)
                self.last_merge_seconds = time.perf_counter() - started
                return result
            return data

    def _service_resource(self, data: MetricsData) -> Resource:
        """The local resource without what identifies one worker (cached per resource)."""
        if not data.resource_metrics:  # nothing recorded here: the last resource seen, if any
            return Resource.get_empty() if self._resource is None else self._resource[1]
        resource = data.resource_metrics[0].resource
        if self._resource is None or self._resource[0] is not resource:
            attributes: Mapping[str, object] = resource.attributes
            kept = {k: v for k, v in attributes.items() if k not in _PER_WORKER_RESOURCE_KEYS}
            self._resource = (resource, Resource(kept, resource.schema_url))  # type: ignore[arg-type]  # values come from a Resource
        return self._resource[1]

    def red_figures(self, now: float | None = None) -> list[REDStats]:
        """The service's RED figures: this worker's window plus live workers' latest ones."""
        windows, span_s = self._processor.drain_windows(now)
        local = section_of(windows, span_s)
        with self._lock:
            self._red = encode_section(local)
            peers = self._peer_sections()
        return merge_sections([local, *peers])

    def _peer_sections(self) -> Iterable[Section]:
        window = self._processor.window
        now = time.time()
        for name, part in self._peers():
            cached = self._files.get(name)
            if not part.live or now - part.source.header.written > window or cached is None:
                continue
            if cached.section is False:
                try:
                    cached.section = decode_section(part.source.red)
                except FileFormatError as exc:
                    cached.section = None
                    self._skip(name, "multiprocess_corrupt_file", str(exc))
            if cached.section:
                yield cached.section  # type: ignore[misc]  # narrowed: a decoded section

    # ------------------------------------------------------------------------- compaction

    def compact(self) -> int:
        """Fold dead workers' files into the archive once :attr:`compact_at` of them exist.

        Returns:
            How many files were folded in (0 when another worker holds the lock, or on a
            platform without ``flock``).
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover  # Windows: files are never compacted
            return 0
        fd = os.open(self.directory / ".compact.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0
            with self._lock:
                return self._compact()
        finally:
            os.close(fd)  # releases the lock

    def _compact(self) -> int:
        self._remove_stale_temporaries()
        archive = self._load(ARCHIVE)
        absorbed = set(archive.header.absorbed) if archive is not None else set()
        files = self._listing()
        leftovers = [n for n, s in files if s.header.id in absorbed]  # absorbed, not deleted
        settled = time.time() - 3 * self.interval
        dead = [
            (n, s)
            for n, s in files
            if s.header.id not in absorbed
            and self._dead(s.header)
            and (s.header.closed or s.header.written < settled)  # not a passing psutil error
        ]
        if len(dead) < self.compact_at:
            return 0
        parts = [Part(s, False) for _, s in dead]
        if archive is not None:
            parts.append(Part(archive, False))
        merged = merge(parts, categories=frozenset({SUMMED}))
        schema, values = to_schema(merged)
        existing = {s.header.id for _, s in files}
        ids = sorted((absorbed & existing) | {s.header.id for _, s in dead})
        header = Header(
            "archive", 0, 0.0, self._host, time.time(), True, merged.start_ns, tuple(ids)
        )
        write_atomic(self.directory, ARCHIVE, encode(header, schema_json(schema), b"", values))
        for name in [*leftovers, *(n for n, _ in dead)]:
            (self.directory / name).unlink(missing_ok=True)
        logger.info("paca-otel: folded %d dead workers' metric files into %s", len(dead), ARCHIVE)
        return len(dead)

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files a worker killed mid-write left behind."""
        cutoff = time.time() - _TMP_MAX_AGE
        for path in self.directory.glob(".tmp-*" + _SUFFIX):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                continue
