"""Tests for the failed-authentication limiter, on a fake clock."""

from __future__ import annotations

import pytest

from paca_otel.errors import ConfigError
from paca_otel.security import FailedAuthLimiter


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """Starts at t=1000 s."""
    return FakeClock()


def test_limit_failures_then_retry_after(clock: FakeClock) -> None:
    """Five failures in a 60 s window are allowed; the next attempt waits 12 s (60/5)."""
    limiter = FailedAuthLimiter(limit=5, window=60.0, clock=clock)
    for _ in range(4):
        assert limiter.record_failure("10.0.0.1") == 0.0
    assert limiter.retry_after("10.0.0.1") == 0.0
    assert limiter.record_failure("10.0.0.1") == pytest.approx(12.0)
    assert limiter.retry_after("10.0.0.1") == pytest.approx(12.0)
    clock.now += 5.0
    assert limiter.retry_after("10.0.0.1") == pytest.approx(7.0)
    clock.now += 7.0
    assert limiter.retry_after("10.0.0.1") == 0.0


def test_clients_are_limited_independently(clock: FakeClock) -> None:
    """One address's failures do not block another."""
    limiter = FailedAuthLimiter(limit=1, window=10.0, clock=clock)
    limiter.record_failure("a")
    assert limiter.retry_after("a") > 0
    assert limiter.retry_after("b") == 0.0


def test_bucket_refills_and_is_forgotten(clock: FakeClock) -> None:
    """After a full window a client is back to a full bucket and no longer tracked."""
    limiter = FailedAuthLimiter(limit=3, window=30.0, clock=clock)
    for _ in range(3):
        limiter.record_failure("a")
    clock.now += 30.0
    assert limiter.retry_after("a") == 0.0
    assert len(limiter) == 0


def test_memory_is_bounded_least_recent_evicted(clock: FakeClock) -> None:
    """No more than max_clients addresses are tracked; the oldest go first."""
    limiter = FailedAuthLimiter(limit=1, window=60.0, max_clients=100, clock=clock)
    for i in range(1_000):
        limiter.record_failure(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100
    assert limiter.retry_after("10.0.0.0") == 0.0  # evicted
    assert limiter.retry_after("10.0.3.231") > 0  # the last one is still tracked


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "auth_failure_limit must be at least 1"),
        ({"window": 0}, "auth_failure_window must be a positive"),
        ({"max_clients": 0}, "max_clients must be at least 1"),
    ],
)
def test_bad_bounds_are_config_errors(kwargs: dict[str, float], message: str) -> None:
    """Each bound is validated with a message naming it."""
    with pytest.raises(ConfigError, match=message):
        FailedAuthLimiter(**kwargs)  # type: ignore[arg-type]  # floats stand in for ints here
