"""Time a block or a function into a histogram, in seconds.

Why apart from :mod:`paca_otel.signals._metrics`: the collector decides *which* histogram and
cleans the labels once, when ``collector.timer(...)`` is called; what is left is the timing
itself, which runs on the caller's path for every timed block or call and must work the same
for sync and async functions. A :class:`Timer` holds only the histogram and the labels already
cleaned, so nothing is looked up or checked per timed call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, TypeVar, cast

from opentelemetry.metrics import Histogram

from paca_otel import _internal
from paca_otel.signals._labels import Labels

__all__ = ["Timer"]

_F = TypeVar("_F", bound=Callable[..., Any])


class Timer:
    """Measures wall-clock seconds into a histogram, as a context manager or a decorator.

    As a context manager one ``Timer`` times one block at a time (nested or concurrent use of
    the *same* object mixes up start times; ``collector.timer(...)`` per block is the idiom).
    As a decorator every call is timed independently, so it is safe under threads and tasks.
    With ``histogram=None`` it only measures (``collector.timer`` does so when it refused the
    labels); ``labels`` are passed to the SDK as given, so build timers with
    :meth:`MetricsCollector.timer`, which cleans them.
    """

    __slots__ = ("_histogram", "_labels", "_start", "elapsed")

    def __init__(self, histogram: Histogram | None, labels: Labels | None = None) -> None:
        self._histogram = histogram
        self._labels = labels
        self._start = 0.0
        self.elapsed: float | None = None
        """Seconds the last timed block took (``None`` until one finished)."""

    def _record(self, seconds: float) -> None:
        self.elapsed = seconds
        if self._histogram is None:  # its labels were refused: measure, record nothing
            return
        with _internal.handle_internal_errors("metrics.timer"):
            self._histogram.record(seconds, self._labels)

    def __enter__(self) -> Timer:
        self._start = perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._record(perf_counter() - self._start)

    def __call__(self, func: _F) -> _F:
        """Decorate ``func`` (sync or async) so that every call is timed."""
        record = self._record
        if inspect.iscoroutinefunction(func):
            async_func = cast("Callable[..., Awaitable[Any]]", func)

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                start = perf_counter()
                try:
                    return await async_func(*args, **kwargs)
                finally:
                    record(perf_counter() - start)

            return cast("_F", async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                record(perf_counter() - start)

        return cast("_F", wrapper)
