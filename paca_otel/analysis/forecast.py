"""Forecasts with prediction intervals, and time to a threshold ("disk full in ~14 h").

The model is deliberately simple and robust: the Theil-Sen trend
(:mod:`paca_otel.analysis.trend`; its seasonal variant when the series has a period) plus,
when the series has a detected period, a seasonal-naive profile of the detrended residuals
(the median residual at each phase of the period). The prediction interval combines the
residual noise (robust: 1.4826 x MAD) and the slope's uncertainty, which grows with the
horizon:
``half_width(h) = z * sqrt(noise^2 + (h * slope_sd)^2)``.

Why not Holt-Winters: its smoothing constants must be fitted per series (an optimiser, or
NumPy), it follows spikes, and its intervals assume Gaussian one-step errors. For capacity
questions a report asks ("when does the disk fill?") a robust line with an honest interval
answers better; the seasonal profile handles the daily wave of traffic-driven metrics.

:func:`time_to_threshold` solves the trend line for the threshold and reads the interval
off the slope's confidence interval: the steepest plausible slope gives the earliest time,
the flattest the latest (unbounded when the flattest slope does not reach it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, median

from paca_otel.analysis.seasonality import detect_seasonality
from paca_otel.analysis.trend import TrendResult, seasonal_theil_sen, theil_sen
from paca_otel.errors import ConfigError

__all__ = ["Forecast", "ForecastPoint", "TimeToThreshold", "forecast", "time_to_threshold"]


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    """One forecast step: the expected value and its prediction interval."""

    timestamp: float
    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Forecast:
    """A forecast of one series.

    Attributes:
        points: the forecast steps, after the last observed point.
        trend: the trend it extends.
        period: the seasonal period used (seconds), or None.
        noise: robust standard deviation of the residuals.
        confidence: level of the intervals.
    """

    points: tuple[ForecastPoint, ...]
    trend: TrendResult
    period: float | None
    noise: float
    confidence: float


@dataclass(frozen=True, slots=True)
class TimeToThreshold:
    """When a rising (or falling) series is expected to cross a threshold.

    Attributes:
        threshold: the level.
        seconds: expected seconds from ``now`` (0: already crossed).
        earliest: seconds at the steepest plausible slope.
        latest: seconds at the flattest plausible slope (``inf``: may never cross).
        now: the reference time.
        level: fitted level at ``now``.
    """

    threshold: float
    seconds: float
    earliest: float
    latest: float
    now: float
    level: float

    @property
    def at(self) -> float:
        """Expected crossing time (seconds since the epoch)."""
        return self.now + self.seconds


def _noise(residuals: Sequence[float]) -> float:
    if len(residuals) < 2:
        return 0.0
    centre = median(residuals)
    return 1.4826 * median(abs(r - centre) for r in residuals)


def forecast(
    times: Sequence[float],
    values: Sequence[float],
    *,
    horizon: float,
    step: float,
    period: float | bool | None = True,
    confidence: float = 0.9,
) -> Forecast | None:
    """Forecast ``horizon`` seconds past the last point, one point per ``step``.

    Args:
        times: timestamps in seconds.
        values: the values (non-finite: gaps).
        horizon: how far ahead, seconds.
        step: seconds between forecast points (and the series' sampling step, for the
            seasonality check).
        period: ``True`` detects the period (hourly/daily/weekly); a number forces one;
            ``None``/``False`` uses the trend alone.
        confidence: level of the prediction intervals, in (0, 1).

    Returns:
        None when the series is too short for a trend.
    """
    if not horizon > 0 or not step > 0:
        msg = f"horizon and step must be positive seconds, got {horizon!r} and {step!r}"
        raise ConfigError(msg)
    trend = theil_sen(times, values)
    if trend is None:
        return None
    pairs = [(t, v) for t, v in zip(times, values, strict=True) if math.isfinite(v)]
    chosen: float | None = None
    if period is True:
        found = detect_seasonality(times, values, step)
        chosen = found[0].period if found and found[0].significant else None
    elif isinstance(period, int | float) and not isinstance(period, bool) and period > 0:
        chosen = float(period)
    profile: dict[int, float] = {}
    bins = max(1, round(chosen / step)) if chosen is not None else 1

    def phase(t: float) -> int:
        assert chosen is not None  # only called with a period
        return round((t % chosen) / step) % bins

    def seasonal(t: float) -> float:
        return profile.get(phase(t), 0.0) if chosen is not None else 0.0

    def fit_profile(fitted: TrendResult) -> dict[int, float]:
        by_phase: dict[int, list[float]] = {}
        for t, v in pairs:
            by_phase.setdefault(phase(t), []).append(v - fitted.at(t))
        return {key: median(rs) for key, rs in by_phase.items()}

    if chosen is not None:  # the wave biases the plain slope: compare like phases only
        seasonal_trend = seasonal_theil_sen(times, values, period=chosen, step=step)
        trend = seasonal_trend if seasonal_trend is not None else trend
        profile = fit_profile(trend)
    residuals = [(t, v - trend.at(t)) for t, v in pairs]
    noise = _noise([r - seasonal(t) for t, r in residuals])
    if chosen is not None:  # each phase's profile is a median of few points: add its error
        per_phase = max(1.0, len(pairs) / bins)
        noise *= math.sqrt(1.0 + 1.57 / per_phase)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    slope_sd = (trend.slope_high - trend.slope_low) / (2.0 * 1.959964)
    last = pairs[-1][0]
    points: list[ForecastPoint] = []
    count = int(horizon // step)
    for k in range(1, count + 1):
        t = last + k * step
        expected = trend.at(t) + seasonal(t)
        half = z * math.sqrt(noise**2 + ((t - last) * slope_sd) ** 2)
        points.append(ForecastPoint(t, expected, expected - half, expected + half))
    return Forecast(tuple(points), trend, chosen, noise, confidence)


def time_to_threshold(
    trend: TrendResult,
    threshold: float,
    *,
    now: float,
    rising: bool = True,
    noise: float = 0.0,
    z: float = 1.645,
) -> TimeToThreshold | None:
    """When the trend reaches ``threshold``, with an interval; None if it heads away.

    Args:
        trend: the fitted trend.
        threshold: the level (``90`` for a disk at 90 %).
        now: the reference time (usually the end of the analysed period).
        rising: True to watch for the level rising to the threshold (disk, memory), False
            for falling to it (free space, throughput). Already past it: ``seconds == 0``.
        noise: standard deviation of the series around its trend; the interval then also
            covers the series crossing ``z`` noise early or late (a noisy disk can touch
            90 % before its trend line does).
        z: width of that allowance in noise units (1.645: a one-sided 95 %).
    """
    level = trend.at(now)
    sign = 1.0 if rising else -1.0
    gap = sign * (threshold - level)
    if gap <= 0.0:
        return TimeToThreshold(threshold, 0.0, 0.0, 0.0, now, level)
    slope = sign * trend.slope
    steep = max(sign * trend.slope_high, sign * trend.slope_low)
    flat = min(sign * trend.slope_high, sign * trend.slope_low)
    if slope <= 0.0:
        return None
    seconds = gap / slope
    allowance = max(0.0, z * noise)
    earliest = max(0.0, gap - allowance) / steep if steep > 0 else seconds
    latest = (gap + allowance) / flat if flat > 0 else math.inf
    return TimeToThreshold(
        threshold, seconds, min(earliest, seconds), max(latest, seconds), now, level
    )
