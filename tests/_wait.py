"""Polling against a deadline: the one way tests wait for what another thread or process does.

Tests never "sleep, then assert" (a guess at how long the other side takes: flaky under load,
slow when idle). They poll until the awaited thing holds or a deadline passes, and then fail
naming what they waited for. Hand-written: a dozen lines, and no test dependency we already
have offers it for both threads and the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

TIMEOUT = 10.0
INTERVAL = 0.01


def wait_for(
    check: Callable[[], T | None],
    what: str = "the condition",
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
) -> T:
    """Call ``check`` until it returns something other than None and return it."""
    deadline = time.monotonic() + timeout
    while (value := check()) is None:
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return value


def wait_until(
    predicate: Callable[[], object],
    what: str = "the condition",
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
) -> None:
    """Block until ``predicate()`` is truthy; fail the test naming ``what`` after ``timeout``."""
    wait_for(lambda: True if predicate() else None, what, timeout=timeout, interval=interval)


async def async_wait_until(
    predicate: Callable[[], object],
    what: str = "the condition",
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
) -> None:
    """Like :func:`wait_until`, but yields to the event loop between checks instead of blocking."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
