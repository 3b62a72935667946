"""The alerting pipeline: the one collection and the RED span processor, written to the store.

Set-up code attaches :attr:`Pipeline.reader` (the process's single
:class:`~paca_otel.pipeline._collection.Collection`) to the MeterProvider and
:attr:`Pipeline.span_processor` to the TracerProvider; the rule engine then calls
:meth:`Pipeline.collect` once per evaluation interval and queries :attr:`Pipeline.store`.
Collection happens on the caller's thread, so there is no extra thread to start or stop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from paca_otel._internal import handle_internal_errors
from paca_otel.pipeline._aliases import write_red, write_system
from paca_otel.pipeline._collection import Collection, Consumer
from paca_otel.pipeline._reader import StoreWriter
from paca_otel.pipeline._spans import REDSpanProcessor, REDStats
from paca_otel.pipeline._store import SeriesStore

logger = logging.getLogger("paca_otel.pipeline")

PRUNE_EVERY = 60.0
"""Seconds between sweeps for series that stopped reporting (a sweep is O(series))."""

DRAIN_EVERY = 2.0
"""Seconds between background drains of the RED span buffer (see ``start_draining``)."""


class Pipeline:
    """The store plus the two OTel hooks that fill it.

    Args:
        store: Where series go; a default-sized :class:`SeriesStore` when omitted.
        clock: Seconds since the epoch; every point of a collection is stamped with one
            reading of it, so a fake clock makes the whole alerting path deterministic.
        red_window: Seconds covered by the request/error/latency aliases.
        span_processor: A pre-built RED processor (to tune its bounds); one sharing
            ``clock`` is created when omitted.
        collection: The process's one metric reader; a new one when omitted.
    """

    def __init__(
        self,
        *,
        store: SeriesStore | None = None,
        clock: Callable[[], float] = time.time,
        red_window: float = 60.0,
        span_processor: REDSpanProcessor | None = None,
        collection: Collection | None = None,
    ) -> None:
        self.store = store if store is not None else SeriesStore()
        self.clock = clock
        self.reader = collection if collection is not None else Collection(clock=clock)
        self.writer = StoreWriter()
        self.span_processor = (
            span_processor
            if span_processor is not None
            else REDSpanProcessor(window=red_window, clock=clock)
        )
        self.collections = 0
        self.last_collect_seconds = 0.0
        self.last_points = 0
        self._last_prune: float | None = None
        self._lock = threading.Lock()
        self._stop_draining = threading.Event()
        self._drainer: threading.Thread | None = None
        self._tick_consumers: list[tuple[str, Consumer]] = []
        self._red_view: Callable[[float | None], list[REDStats]] | None = None

    def set_red_view(self, view: Callable[[float | None], list[REDStats]] | None) -> None:
        """Serve :meth:`red_figures` through ``view`` (``None``: this process's span processor).

        Multiprocess mode sets it to merge every worker's window, as it sets the collection's
        view (:meth:`Collection.set_view`) for the metrics.
        """
        self._red_view = view

    def red_figures(self, now: float | None = None) -> list[REDStats]:
        """RED figures at ``now``: the span processor's, or the service's in multiprocess mode."""
        view = self._red_view
        if view is None:
            return self.span_processor.drain(now)
        return view(now)

    def on_tick(self, name: str, consumer: Consumer) -> None:
        """Hand ``consumer`` each regular collection (see ``start_draining``'s ``collect_every``).

        Unlike :meth:`Collection.subscribe`, which sees every collection (scrapes and snapshots
        included, at irregular times), a tick consumer gets one collection per interval,
        stamped on the interval's grid: what a time-series store compresses best.
        """
        self._tick_consumers.append((name, consumer))

    def remove_tick(self, name: str) -> None:
        """Stop handing ticks to the consumer registered under ``name``."""
        self._tick_consumers = [(n, c) for n, c in self._tick_consumers if n != name]

    def start_draining(
        self, interval: float = DRAIN_EVERY, *, collect_every: float | None = None
    ) -> None:
        """Fold finished spans into the RED window every ``interval`` s, alerting or not.

        Without it the span buffer would only empty when the rule engine collects, so a
        process without alerting would keep up to ``max_pending`` span records alive (and
        the garbage collector walking them). Draining touches only the RED window, never the
        store, so it does not disturb the series the engine reads.

        With ``collect_every``, the same thread also makes sure the one collection runs at
        least that often (a consumer such as the history store subscribes to it), reusing any
        collection a scrape or evaluation made in the last half interval.
        """
        if self._drainer is not None:
            return
        self._stop_draining.clear()
        self._drainer = threading.Thread(
            target=self._drain_loop,
            args=(interval, collect_every),
            name="paca-otel-red-drain",
            daemon=True,
        )
        self._drainer.start()

    def stop_draining(self) -> None:
        """Stop the background drain (idempotent)."""
        self._stop_draining.set()
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            drainer.join(timeout=2.0)

    def _drain_loop(self, interval: float, collect_every: float | None) -> None:
        wait = min(interval, collect_every) if collect_every else interval
        next_collect = time.monotonic() + (collect_every or 0.0)
        while not self._stop_draining.wait(wait):
            if self.span_processor.pending:
                with handle_internal_errors("pipeline.red_drain", logger):
                    self.span_processor.drain()
            if collect_every and time.monotonic() >= next_collect:
                next_collect = time.monotonic() + collect_every
                data = self.reader.collect_now(max_age=collect_every / 2)
                stamp = round(self.clock() / collect_every) * collect_every
                if data is None:
                    continue
                for name, consumer in self._tick_consumers:
                    with handle_internal_errors(f"pipeline.tick.{name}", logger):
                        consumer(data, stamp)

    def collect(self, now: float | None = None) -> None:
        """Pull the reader and drain the span window into the store, all stamped ``now``.

        Never raises into the caller (the evaluation loop): a failing part is logged once and
        counted, and the other parts still run.
        """
        now = self.clock() if now is None else now
        started = time.perf_counter()
        with self._lock:
            points = self.writer.write(self.reader.collect_service(now=now), self.store, now)
            with handle_internal_errors("pipeline.system_aliases", logger):
                points += write_system(self.store, now)
            with handle_internal_errors("pipeline.red", logger):
                points += write_red(self.store, self.red_figures(now), now)
            if self._last_prune is None or now - self._last_prune >= PRUNE_EVERY:
                self._last_prune = now
                self.store.prune(now)
            self.collections += 1
            self.last_points = points
            self.last_collect_seconds = time.perf_counter() - started
