"""The alerting pipeline: metric reader + span processor -> windowed series store.

The store is process-wide (:func:`shared_store`) so the rules, the API and the analysis see one
set of series even when ``configure()`` is called again and builds a new reader.
"""

from __future__ import annotations

import threading

from paca_otel.pipeline.store import SeriesStore

_lock = threading.Lock()
_store: SeriesStore | None = None


def shared_store(
    *,
    max_series: int | None = None,
    max_points: int | None = None,
    max_window: float | None = None,
) -> SeriesStore:
    """The process's series store, created on first use.

    Bounds given here apply to the store whether this call creates it or not: an
    ``AlertManager`` made before ``configure()`` must not freeze the defaults.
    """
    global _store  # noqa: PLW0603  # one store per process, like the OTel global providers
    with _lock:
        if _store is None:
            _store = SeriesStore()
        if max_series is not None:
            _store.max_series = max_series
        if max_points is not None:
            _store.max_points = max_points
        if max_window is not None:
            _store.max_window = float(max_window)
        return _store


def reset_shared_store() -> None:
    """Forget every series (tests)."""
    global _store  # noqa: PLW0603  # see shared_store
    with _lock:
        _store = None
