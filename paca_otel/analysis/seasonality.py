"""Seasonality of one series: autocorrelation at the periods services actually have.

Services breathe with the clock: hourly jobs, daily traffic, weekly business cycles. Rather
than search every lag (a periodogram), this checks the candidate periods
(:data:`CANDIDATES`: an hour, a day, a week) that the series is long enough to show twice,
which is cheap (O(n) per candidate) and gives findings a reader recognises ("daily pattern,
strength 0.82").

A period ``P`` counts when the detrended series' autocorrelation at lag ``P`` is high
(``min_strength``), clearly above chance for the number of pairs, higher than at lag
``P/2`` by ``margin``, and, if a shorter detected period divides it, higher than at that
one by half the margin (a pure daily wave is as similar a week later as a day later).
The half-period rule keeps a smooth daily wave from passing as "hourly": such a wave is
almost the same an hour later (high autocorrelation at any short lag), but at half an hour
it is even more so, whereas a true hourly cycle is anti-correlated at half its period.

Hand-written: the well-kept implementations (``statsmodels``' ``acf``) need NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from paca_otel.analysis.trend import theil_sen
from paca_otel.errors import ConfigError

__all__ = ["CANDIDATES", "Seasonality", "autocorrelation", "detect_seasonality", "regular_grid"]

CANDIDATES: dict[str, float] = {"hourly": 3600.0, "daily": 86_400.0, "weekly": 604_800.0}
"""Candidate periods by name, in seconds."""


@dataclass(frozen=True, slots=True)
class Seasonality:
    """One detected (or rejected) period.

    Attributes:
        name: ``hourly``, ``daily``, ``weekly`` or ``custom``.
        period: seconds.
        strength: autocorrelation at the period, -1..1.
        half: autocorrelation at half the period.
        significant: whether the period passed every test.
    """

    name: str
    period: float
    strength: float
    half: float
    significant: bool


def regular_grid(
    times: Sequence[float], values: Sequence[float], step: float
) -> list[float | None]:
    """Values placed on a regular ``step`` grid from the first time, ``None`` where missing."""
    if not step > 0:
        msg = f"step must be a positive number of seconds, got {step!r}"
        raise ConfigError(msg)
    finite = [(t, v) for t, v in zip(times, values, strict=True) if math.isfinite(v)]
    if not finite:
        return []
    t0 = finite[0][0]
    size = round((finite[-1][0] - t0) / step) + 1
    grid: list[float | None] = [None] * size
    for t, v in finite:
        grid[min(size - 1, round((t - t0) / step))] = v
    return grid


def autocorrelation(grid: Sequence[float | None], lag: int) -> tuple[float, int]:
    """Autocorrelation at ``lag`` over the pairs where both points exist, and their count."""
    present = [v for v in grid if v is not None]
    if lag <= 0 or len(present) < 3:
        return 0.0, 0
    mean = math.fsum(present) / len(present)
    variance = math.fsum((v - mean) ** 2 for v in present) / len(present)
    if variance == 0.0:
        return 0.0, 0
    total = 0.0
    pairs = 0
    for i in range(len(grid) - lag):
        a, b = grid[i], grid[i + lag]
        if a is not None and b is not None:
            total += (a - mean) * (b - mean)
            pairs += 1
    if pairs == 0:
        return 0.0, 0
    return total / pairs / variance, pairs


def detect_seasonality(
    times: Sequence[float],
    values: Sequence[float],
    step: float,
    *,
    candidates: dict[str, float] | None = None,
    min_strength: float = 0.3,
    margin: float = 0.2,
) -> list[Seasonality]:
    """Check each candidate period the series covers at least twice; strongest first.

    Args:
        times: timestamps in seconds (gaps allowed).
        values: the values (non-finite: gaps).
        step: the series' sampling step in seconds (a query's ``step``).
        candidates: name -> period in seconds (default :data:`CANDIDATES`).
        min_strength: least autocorrelation at the period.
        margin: how much higher it must be than at half the period.
    """
    grid = regular_grid(times, values, step)
    trend = theil_sen(times, values)
    if trend is not None:  # a trend correlates with itself at every lag: remove it first
        t0 = next((t for t, v in zip(times, values, strict=True) if math.isfinite(v)), 0.0)
        grid = [
            None if v is None else v - trend.slope * (t0 + i * step - trend.t0)
            for i, v in enumerate(grid)
        ]
    out: list[Seasonality] = []
    for name, period in sorted((candidates or CANDIDATES).items(), key=lambda kv: kv[1]):
        lag = round(period / step)
        if lag < 4 or len(grid) < 2 * lag:
            continue
        strength, pairs = autocorrelation(grid, lag)
        half, _ = autocorrelation(grid, lag // 2)
        chance = 3.0 / math.sqrt(pairs) if pairs else 1.0
        significant = strength >= max(min_strength, chance) and strength - half >= margin
        # a multiple of a shorter detected period (a week of a daily wave) must add to it
        for shorter in out:
            if shorter.significant and period % shorter.period == 0:
                significant = significant and strength - shorter.strength >= margin / 2
        out.append(Seasonality(name, period, strength, half, significant))
    out.sort(key=lambda s: (not s.significant, -s.strength))
    return out
