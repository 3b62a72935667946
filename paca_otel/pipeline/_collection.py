"""The one collection: a single metric reader whose every collection feeds every consumer.

The OTel SDK aggregates each measurement once *per reader*: with a snapshot reader, an
alerting reader, a Prometheus reader and a periodic OTLP reader on one MeterProvider, every
``counter.add`` is hashed and aggregated four times, and every attribute set is stored four
times. paca-otel therefore attaches exactly one reader, :class:`Collection`, and hands the
:class:`~opentelemetry.sdk.metrics.export.MetricsData` of each collection to its consumers:
the Prometheus exposition, the alerting series store, ``get_current_metrics()``, the OTLP
exporters and the history. All of them see the same numbers from the same instant.

The reader is cumulative for every instrument kind (what Prometheus, the series store and
OTLP's default temporality need). It is a pull reader: collections happen when a consumer asks
(a scrape, an evaluation tick, an export tick), never on the request path. Concurrent asks are
served by one collection: a caller that finds a collection younger than ``max_age`` reuses it.

Why a :class:`~opentelemetry.sdk.metrics.export.MetricReader` subclass: it is the SDK's seam
for getting aggregated data out of a MeterProvider (``_receive_metrics`` is the abstract method
every reader implements, as the SDK's own ``InMemoryMetricReader`` does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics.export import MetricReader, MetricsData

from paca_otel._internal import handle_internal_errors

logger = logging.getLogger("paca_otel.pipeline")

Consumer = Callable[[MetricsData, float], object]
"""Called with each collection's data and its time (seconds since the epoch)."""

View = Callable[[float, "float | None"], "MetricsData | None"]
"""Serves :meth:`Collection.collect_service` given ``max_age`` and ``now`` (multiprocess mode)."""


class Collection(MetricReader):
    """The process's single metric reader; see the module docstring.

    Args:
        clock: Seconds since the epoch; each collection is stamped with one reading of it, so
            a fake clock makes every consumer deterministic in tests.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()  # cumulative for every instrument: the SDK's default
        self._clock = clock
        self._lock = threading.Lock()
        self._received: MetricsData | None = None
        self._latest: MetricsData | None = None
        self._latest_at: float | None = None
        self._latest_mono = -float("inf")
        self._consumers: list[tuple[str, Consumer]] = []
        self._view: View | None = None
        self.collections = 0
        self.last_seconds = 0.0

    # -- consumers -------------------------------------------------------------------------

    def subscribe(self, name: str, consumer: Consumer) -> None:
        """Call ``consumer`` after every collection (in subscription order).

        A consumer that raises is logged once and counted, and the others still run.
        """
        self._consumers.append((name, consumer))

    def unsubscribe(self, name: str) -> None:
        """Stop calling the consumer subscribed under ``name`` (no error if there is none)."""
        self._consumers = [(n, c) for n, c in self._consumers if n != name]

    # -- collecting ------------------------------------------------------------------------

    def collect_now(self, *, max_age: float = 0.0, now: float | None = None) -> MetricsData | None:
        """Collect and feed every consumer, or reuse a collection younger than ``max_age`` s.

        Returns:
            The data of the collection used (``None`` before the reader is attached to a
            MeterProvider or after it shut down).
        """
        with self._lock:
            if max_age > 0 and time.monotonic() - self._latest_mono < max_age:
                return self._latest
            started = time.perf_counter()
            self._received = None
            with handle_internal_errors("collection", logger):
                self.collect()
            data, self._received = self._received, None
            if data is None:
                return None
            stamp = self._clock() if now is None else now
            self._latest, self._latest_at = data, stamp
            self._latest_mono = time.monotonic()
            for name, consumer in self._consumers:
                with handle_internal_errors(f"collection.{name}", logger):
                    consumer(data, stamp)
            self.collections += 1
            self.last_seconds = time.perf_counter() - started
            return data

    def set_view(self, view: View | None) -> None:
        """Serve :meth:`collect_service` through ``view`` (``None``: this process's data).

        :class:`~paca_otel.pipeline._multiprocess.MultiprocessMetrics` sets it, so that the
        consumers that speak for the service see every worker.
        """
        self._view = view

    def collect_service(
        self, *, max_age: float = 0.0, now: float | None = None
    ) -> MetricsData | None:
        """The data of the whole service: :meth:`collect_now` itself, unless a view is set.

        The Prometheus exposition, the alerting store and ``get_current_metrics()`` read this;
        OTLP export and the subscribers read :meth:`collect_now` (each worker exports its own).
        """
        view = self._view
        if view is None:
            return self.collect_now(max_age=max_age, now=now)
        return view(max_age, now)

    @property
    def latest(self) -> tuple[MetricsData, float] | None:
        """The last collection's data and time, without collecting."""
        if self._latest is None or self._latest_at is None:
            return None
        return self._latest, self._latest_at

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._received = metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to release: the reader holds no thread, socket or file."""
