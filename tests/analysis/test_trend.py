"""Theil-Sen slope, its interval and Mann-Kendall significance on synthetic series."""

from __future__ import annotations

import math
import random

import pytest

from paca_otel.analysis.trend import theil_sen, thin
from paca_otel.errors import ConfigError


def noisy_line(
    slope: float, n: int = 500, step: float = 60.0, seed: int = 1
) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    times = [i * step for i in range(n)]
    return times, [10.0 + slope * t + rng.gauss(0, 1.0) for t in times]


def test_recovers_known_slope_with_interval() -> None:
    """A line with noise gives its slope inside a tight interval, and is significant."""
    times, values = noisy_line(2.0 / 3600)  # +2 per hour
    trend = theil_sen(times, values)
    assert trend is not None
    assert trend.per_hour == pytest.approx(2.0, rel=0.05)
    assert trend.slope_low <= 2.0 / 3600 <= trend.slope_high
    assert trend.significant()
    assert trend.tau > 0.5


def test_flat_noise_is_not_significant() -> None:
    """Pure noise has no significant trend and its interval contains zero."""
    times, values = noisy_line(0.0, seed=7)
    trend = theil_sen(times, values)
    assert trend is not None
    assert not trend.significant()
    assert trend.slope_low <= 0.0 <= trend.slope_high


def test_spikes_do_not_move_the_slope() -> None:
    """Twenty large spikes barely change the Theil-Sen slope (least squares would swing)."""
    times, values = noisy_line(1.0 / 3600, seed=3)
    for i in range(0, 500, 25):
        values[i] += 500.0
    trend = theil_sen(times, values)
    assert trend is not None
    assert trend.per_hour == pytest.approx(1.0, rel=0.1)


def test_gaps_and_nan_are_skipped() -> None:
    """NaN values and missing stretches do not bias the slope (real timestamps are used)."""
    times, values = noisy_line(-3.0 / 3600, seed=4)
    values[100:200] = [math.nan] * 100
    del times[300:350], values[300:350]
    trend = theil_sen(times, values)
    assert trend is not None
    assert trend.per_hour == pytest.approx(-3.0, rel=0.05)
    assert trend.significant()


def test_long_series_are_thinned() -> None:
    """A day of 10 s samples is thinned to block means and still gives the slope."""
    times, values = noisy_line(0.5 / 3600, n=8640, step=10.0, seed=5)
    trend = theil_sen(times, values)
    assert trend is not None
    assert trend.n == 400
    assert trend.per_hour == pytest.approx(0.5, rel=0.1)


def test_too_short_and_bad_arguments() -> None:
    """Fewer than 8 points give None; bad confidence or mismatched lengths are errors."""
    assert theil_sen([0, 1, 2], [1, 2, 3]) is None
    with pytest.raises(ConfigError, match="confidence"):
        theil_sen([0, 1], [1, 2], confidence=1.5)
    with pytest.raises(ConfigError, match="length"):
        theil_sen([0, 1], [1])


def test_thin_keeps_order_and_means() -> None:
    """Thinning makes block means in time order."""
    times, values = thin(list(range(10)), [float(v) for v in range(10)], 5)
    assert times == [0.5, 2.5, 4.5, 6.5, 8.5]
    assert values == times


def test_seasonal_slope_ignores_daily_wave() -> None:
    """Comparing like phases, a daily wave over a 0.1/h drift gives the drift, not the wave."""
    from paca_otel.analysis.trend import seasonal_theil_sen

    rng = random.Random(8)
    times = [i * 600.0 for i in range(int(3 * 86_400 / 600))]
    values = [
        40 + 15 * math.sin(2 * math.pi * t / 86_400) + 0.1 * t / 3600 + rng.gauss(0, 0.3)
        for t in times
    ]
    trend = seasonal_theil_sen(times, values, period=86_400.0, step=600.0)
    assert trend is not None
    assert trend.per_hour == pytest.approx(0.1, rel=0.1)
    assert trend.significant()
