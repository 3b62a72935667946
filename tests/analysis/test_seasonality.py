"""Seasonality detection finds the true period and not its harmonics or multiples."""

from __future__ import annotations

import math
import random

from paca_otel.analysis.seasonality import (
    Seasonality,
    autocorrelation,
    detect_seasonality,
    regular_grid,
)


def wave(
    period: float, *, days: float = 3.0, step: float = 300.0, noise: float = 0.3, slope: float = 0.0
) -> tuple[list[float], list[float]]:
    rng = random.Random(11)
    times = [i * step for i in range(int(days * 86_400 / step))]
    values = [
        50 + 10 * math.sin(2 * math.pi * t / period) + slope * t + rng.gauss(0, noise)
        for t in times
    ]
    return times, values


def significant(found: list[Seasonality]) -> list[str]:
    return [s.name for s in found if s.significant]


def test_daily_wave_is_daily_not_hourly() -> None:
    """A smooth daily wave (with a trend) is daily; hourly is rejected by the half-period test."""
    times, values = wave(86_400.0, slope=1e-4)
    found = detect_seasonality(times, values, 300.0)
    assert significant(found) == ["daily"]
    assert found[0].strength > 0.8


def test_hourly_cycle_is_hourly_not_daily() -> None:
    """An hourly cycle is hourly; the daily lag (a multiple) adds nothing and is rejected."""
    times, values = wave(3600.0, step=60.0, days=2.5)
    found = detect_seasonality(times, values, 60.0)
    assert significant(found) == ["hourly"]


def test_noise_has_no_season() -> None:
    """White noise shows no period."""
    rng = random.Random(5)
    times = [i * 300.0 for i in range(864)]
    values = [rng.gauss(0, 1) for _ in times]
    assert significant(detect_seasonality(times, values, 300.0)) == []


def test_gaps_are_tolerated() -> None:
    """A daily wave with a six-hour gap is still daily."""
    times, values = wave(86_400.0)
    keep = [i for i, t in enumerate(times) if not 100_000 <= t < 121_600]
    found = detect_seasonality([times[i] for i in keep], [values[i] for i in keep], 300.0)
    assert significant(found) == ["daily"]


def test_grid_and_autocorrelation() -> None:
    """The grid leaves holes as None; autocorrelation of a period-4 cycle at lag 4 is 1."""
    grid = regular_grid([0, 10, 30], [1.0, 2.0, 4.0], 10)
    assert grid == [1.0, 2.0, None, 4.0]
    strength, pairs = autocorrelation([1.0, 2.0, 3.0, 4.0] * 5, 4)
    assert pairs == 16
    assert abs(strength - 1.0) < 1e-9
