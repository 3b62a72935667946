"""Rate limit of failed authentications per client address (a token bucket per address).

Each address has a bucket of ``limit`` attempts that refills continuously at ``limit`` per
``window`` seconds; a failed authentication takes one. An empty bucket means "429, retry after
N seconds", where N is when the next attempt will be available. A token bucket (rather than a
fixed window) has no window edge at which an attacker gets ``2 * limit`` tries in a moment.

Memory is bounded: at most ``max_clients`` buckets, least recently used evicted first, and a
bucket that has refilled completely is forgotten (it is the same as no bucket). The clock is
injectable so tests drive it by hand. All state changes are a few arithmetic operations under
one lock: no I/O, nothing that could block the event loop.

Hand-written because the libraries that do this (slowapi, limits) bring storage back ends and
framework middleware for what is a dozen lines here.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from paca_otel.errors import ConfigError

__all__ = ["FailedAuthLimiter"]


class FailedAuthLimiter:
    """Allows ``limit`` failed authentications per ``window`` seconds per client address.

    Args:
        limit: Failed attempts a client may make in a burst (and per window on average).
        window: Seconds over which ``limit`` attempts refill.
        max_clients: Most addresses tracked at once; the least recently seen are forgotten.
        clock: Monotonic seconds; injectable for tests.

    Raises:
        ConfigError: A bound is not positive.
    """

    def __init__(
        self,
        *,
        limit: int = 10,
        window: float = 60.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            msg = f"auth_failure_limit must be at least 1, got {limit}"
            raise ConfigError(msg)
        if not window > 0:
            msg = f"auth_failure_window must be a positive number of seconds, got {window}"
            raise ConfigError(msg)
        if max_clients < 1:
            msg = f"max_clients must be at least 1, got {max_clients}"
            raise ConfigError(msg)
        self.limit = limit
        self.window = float(window)
        self.max_clients = max_clients
        self._rate = limit / self.window  # attempts regained per second
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def __repr__(self) -> str:
        return (
            f"FailedAuthLimiter(limit={self.limit}, window={self.window}, "
            f"tracked={len(self._buckets)})"
        )

    def __len__(self) -> int:
        """How many addresses are tracked now."""
        return len(self._buckets)

    def _level(self, client: str, now: float) -> float:
        """The client's refilled bucket level; forgets full buckets. Call under the lock."""
        state = self._buckets.get(client)
        if state is None:
            return float(self.limit)
        tokens, at = state
        tokens = min(float(self.limit), tokens + (now - at) * self._rate)
        if tokens >= self.limit:
            del self._buckets[client]
        return tokens

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again; ``0.0`` when it may try now."""
        with self._lock:
            tokens = self._level(client, self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def record_failure(self, client: str) -> float:
        """Count one failed attempt by ``client``; returns :meth:`retry_after` after it."""
        with self._lock:
            now = self._clock()
            tokens = max(0.0, self._level(client, now) - 1.0)
            self._buckets[client] = (tokens, now)
            self._buckets.move_to_end(client)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate
