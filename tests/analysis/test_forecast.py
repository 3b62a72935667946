"""Forecasts carry intervals that cover the truth; time to threshold comes with a range."""

from __future__ import annotations

import math
import random

import pytest

from paca_otel.analysis.forecast import forecast, time_to_threshold
from paca_otel.analysis.trend import theil_sen
from paca_otel.errors import ConfigError


def disk(hours: float = 24.0, step: float = 300.0) -> tuple[list[float], list[float]]:
    """Disk usage filling 1 %/h from 60 %, with noise."""
    rng = random.Random(9)
    times = [i * step for i in range(int(hours * 3600 / step))]
    return times, [60.0 + t / 3600 + rng.gauss(0, 0.3) for t in times]


def test_time_to_threshold_with_interval() -> None:
    """Disk at ~84 % filling 1 %/h reaches 95 % in ~11 h, inside a tight interval."""
    times, values = disk()
    trend = theil_sen(times, values)
    assert trend is not None
    eta = time_to_threshold(trend, 95.0, now=times[-1])
    assert eta is not None
    assert eta.seconds / 3600 == pytest.approx(95 - 60 - times[-1] / 3600, rel=0.05)
    assert eta.earliest <= eta.seconds <= eta.latest < math.inf
    assert eta.at == pytest.approx(times[-1] + eta.seconds)


def test_time_to_threshold_heading_away_or_past() -> None:
    """A falling series never reaches a higher threshold; one already past it gives 0."""
    times, values = disk()
    falling = theil_sen(times, [-v for v in values])
    assert falling is not None
    assert time_to_threshold(falling, 0.0, now=times[-1]) is None
    rising = theil_sen(times, values)
    assert rising is not None
    past = time_to_threshold(rising, 50.0, now=times[-1])
    assert past is not None
    assert past.seconds == 0.0
    down = time_to_threshold(falling, -100.0, now=times[-1], rising=False)
    assert down is not None
    assert down.seconds > 0


def test_linear_forecast_interval_covers_truth() -> None:
    """Six hours ahead, the 90 % interval holds the true line and widens with the horizon."""
    times, values = disk()
    result = forecast(times, values, horizon=6 * 3600, step=300.0)
    assert result is not None
    assert result.period is None
    assert len(result.points) == 72
    for point in result.points:
        assert point.low <= 60.0 + point.timestamp / 3600 <= point.high
    first, last = result.points[0], result.points[-1]
    assert last.high - last.low >= first.high - first.low


def test_seasonal_forecast_follows_the_wave() -> None:
    """With a daily wave, the forecast follows it (error well below the wave's amplitude)."""
    rng = random.Random(2)
    step = 600.0
    times = [i * step for i in range(int(3 * 86_400 / step))]

    def truth(t: float) -> float:
        return 40 + 15 * math.sin(2 * math.pi * t / 86_400)

    values = [truth(t) + rng.gauss(0, 0.5) for t in times]
    result = forecast(times, values, horizon=12 * 3600, step=step)
    assert result is not None
    assert result.period == 86_400.0
    errors = [abs(p.value - truth(p.timestamp)) for p in result.points]
    assert max(errors) < 3.0
    assert sum(p.low <= truth(p.timestamp) <= p.high for p in result.points) >= 0.8 * len(errors)


def test_forecast_arguments() -> None:
    """A short series gives None; a non-positive horizon is an error."""
    assert forecast([0, 1], [1, 2], horizon=10, step=1) is None
    with pytest.raises(ConfigError, match="horizon"):
        forecast([0, 1], [1, 2], horizon=0, step=1)


def test_noise_widens_the_time_to_threshold_interval() -> None:
    """Noise around the trend widens the interval on both sides (the expected time stays)."""
    times, values = disk()
    trend = theil_sen(times, values)
    assert trend is not None
    quiet = time_to_threshold(trend, 95.0, now=times[-1])
    noisy = time_to_threshold(trend, 95.0, now=times[-1], noise=1.0)
    assert quiet is not None
    assert noisy is not None
    assert noisy.seconds == quiet.seconds
    assert noisy.earliest < quiet.earliest - 1.5 * 3600
    assert noisy.latest > quiet.latest + 1.5 * 3600
