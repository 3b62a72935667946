"""Error handling for paths that must never raise into the host application.

Record, callback, processor and export paths log once, drop, and count the drop in a
self-metric (``paca_otel.dropped``, attribute ``reason``). Under pytest, internal errors
re-raise so the project's own tests see them (the way Logfire's ``handle_internal_errors``
does); users' test suites can opt out with ``PACA_OTEL_RAISE_INTERNAL=0``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import metrics

_logger = logging.getLogger("paca_otel")
_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(logger: logging.Logger, key: str, msg: str, *args: object) -> None:
    """Log ``msg`` at WARNING the first time ``key`` is seen in this process, never again."""
    if key in _warned:
        return
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(msg, *args)


def reset_warnings() -> None:
    """Forget which warnings were given (for tests)."""
    with _warned_lock:
        _warned.clear()
    drops.reset()


def raise_internal() -> bool:
    """Whether internal errors re-raise: under pytest unless ``PACA_OTEL_RAISE_INTERNAL=0``."""
    flag = os.environ.get("PACA_OTEL_RAISE_INTERNAL")
    if flag is not None:
        return flag not in ("", "0", "false")
    return "PYTEST_CURRENT_TEST" in os.environ


class _Drops:
    """The ``paca_otel.dropped`` self-metric, created lazily on the global MeterProvider.

    Lazy because the global provider may be set after this module is imported; the OTel API's
    proxy meter forwards to the real one once it is.
    """

    def __init__(self) -> None:
        self._counter: metrics.Counter | None = None

    def reset(self) -> None:
        """Look the counter up again on next use (after the global provider changed)."""
        self._counter = None

    def bind(self) -> None:
        """Create the counter on the global provider now (``configure`` just installed it).

        Drops are often counted while a handle shuts down (an exporter's last export fails):
        a first lookup then would ask a provider already shut down, which the SDK answers
        with a warning and a no-op meter.
        """
        self._counter = self._create()

    def add(self, reason: str, amount: int = 1, *, signal: str | None = None) -> None:
        """Count ``amount`` dropped items; ``signal`` (traces/metrics/logs) for lost telemetry."""
        counter = self._counter
        if counter is None:
            counter = self._counter = self._create()
        counter.add(
            amount, {"reason": reason} if signal is None else {"reason": reason, "signal": signal}
        )

    @staticmethod
    def _create() -> metrics.Counter:
        return metrics.get_meter("paca_otel").create_counter(
            "paca_otel.dropped",
            unit="{item}",
            description="Items paca-otel dropped instead of raising into the application.",
        )


drops = _Drops()


@contextmanager
def handle_internal_errors(what: str, logger: logging.Logger = _logger) -> Iterator[None]:
    """Swallow, log once and count an exception raised by paca-otel's own code in ``what``."""
    try:
        yield
    except Exception:
        if raise_internal():
            raise
        drops.add(f"internal_error:{what}")
        if what not in _warned:
            with _warned_lock:
                _warned.add(what)
            logger.exception("paca-otel internal error in %s (further ones are counted only)", what)
