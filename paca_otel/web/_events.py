"""Server-sent events for the dashboard: one ``sample`` event a second while a page listens.

Each event carries the aliases now, each route's request figures and the active alerts
(:class:`~paca_otel.web._models.LiveEvent`), so charts and the alert list move within about a
second of a change without the page polling. Why SSE and not a WebSocket: one direction is
all the page needs, browsers reconnect an ``EventSource`` on their own, and it passes through
proxies as plain HTTP.

Bounded on every side: one collection a second serves every listener (a shared, briefly
cached sample), at most :data:`MAX_STREAMS` streams at once (503 past that), each stream
sleeps between events instead of spinning, and the generator ends when the client goes away
(Starlette cancels it; the disconnect check is a second guard).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Final

from fastapi import Request

from paca_otel.web._facade import Monitor, NotConfiguredError
from paca_otel.web._models import Alert, LiveEvent, RouteFigure

__all__ = ["INTERVAL", "MAX_STREAMS", "LiveFeed"]

INTERVAL: Final = 1.0
"""Seconds between events on a stream."""
MAX_STREAMS: Final = 32
"""Streams served at once by one composition root (one per process, unless
``configure(set_global=False)`` builds more)."""
_FRESH_FOR: Final = 0.5  # a sample this young is shared instead of collecting again


class LiveFeed:
    """Builds samples (shared between streams) and counts open streams.

    One per composition root (``Monitor.component(LiveFeed)``), so a sample of one root never
    reaches a stream of another.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[float, LiveEvent] | None = None
        self.streams = 0

    def sample(self, monitor: Monitor) -> LiveEvent:
        """The current sample; collected at most once per :data:`_FRESH_FOR` seconds.

        Runs in a worker thread (it collects metrics).
        """
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < _FRESH_FOR:
                return self._last[1]
            live = monitor.live()
            event = LiveEvent(
                timestamp=live.timestamp,
                aliases=dict(live.aliases),
                routes=[RouteFigure.from_stats(r) for r in live.routes],
                alerts=[Alert.from_active(a) for a in monitor.active_alerts()],
            )
            self._last = (now, event)
            return event

    def try_open(self) -> bool:
        """Reserve a stream slot; ``False`` when :data:`MAX_STREAMS` are open."""
        with self._lock:
            if self.streams >= MAX_STREAMS:
                return False
            self.streams += 1
            return True

    def release(self) -> None:
        """Release a stream slot."""
        with self._lock:
            self.streams -= 1

    def after_fork_in_child(self) -> None:
        """In a forked child: a fresh lock (a parent thread may hold this one), no streams."""
        self._lock = threading.Lock()
        self._last = None
        self.streams = 0

    async def stream(self, request: Request, monitor: Monitor) -> AsyncIterator[str]:
        """The event stream of one client (call :meth:`try_open` first)."""
        try:
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.to_thread(self.sample, monitor)
                except NotConfiguredError:
                    yield "event: unconfigured\ndata: {}\n\n"
                else:
                    yield f"event: sample\ndata: {event.model_dump_json()}\n\n"
                await asyncio.sleep(INTERVAL)
        finally:
            self.release()
