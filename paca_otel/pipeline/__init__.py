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
    *, max_series: int = 10_000, max_points: int = 1_000, max_window: float = 3600.0
) -> SeriesStore:
    """The process's series store; the bounds apply when this call creates it."""
    global _store  # noqa: PLW0603  # one store per process, like the OTel global providers
    with _lock:
        if _store is None:
            _store = SeriesStore(
                max_series=max_series, max_points=max_points, max_window=max_window
            )
        return _store


def reset_shared_store() -> None:
    """Forget every series (tests)."""
    global _store  # noqa: PLW0603  # see shared_store
    with _lock:
        _store = None
