"""Online anomaly detectors with one interface: ``update(timestamp, value) -> AnomalyResult``.

Each detector measures how far the newest value is from what it expected (its *raw*
deviation, in robust standard deviations), then turns that into a *score* in [0, 1] with an
:class:`~paca_otel.analysis._streaming.AnomalyLikelihood` and flags ``is_anomaly`` when the score
reaches its ``threshold``. A point's score depends only on the points before and including it.
Timestamps are seconds (any epoch); they place points in the seasonal profile, so gaps and
irregular sampling do not shift it.

Why the extra calibration step: on a benchmark like NAB (and for an on-call team) a detector
earns one early alert per incident and pays for every false one. Raw z-scores fire on every
noisy point, so a fixed z threshold is either deaf or noisy. Comparing a short average of
deviations against their own long-run distribution (Numenta's anomaly likelihood) makes the
threshold mean the same thing on quiet and noisy series. Two more rules, both from Numenta's
NAB detector and both decided once for all detectors in :class:`Calibration`:

- *Range novelty*: a value beyond the range of the recent history (by 5 % of it) is an anomaly
  even when the likelihood, inflated by a noisy history, does not say so (slow drifts to
  levels never seen, shifts in spiky series).
- *Refractory period*: after a detection the detector stays quiet for ``suppress`` points, so
  one incident raises one alert, as an alert manager groups repeats.

The detectors:

- ``robust``: distance from the rolling median in rolling MADs (spikes, level shifts).
- ``ewma``: distance from an exponentially weighted mean in EW standard deviations (the
  cheapest; tracks slow drifts so only abrupt changes stand out).
- ``seasonal``: distance from the same time of day in previous days (a missing daily peak,
  a flat stretch where traffic should move, a peak at the wrong hour), in units of the noise
  usual for that time of day.
- ``ensemble`` (the default): the seasonal view once it has learnt, the robust level view
  before that and wherever no profile fits the sampling, range novelty on both.

On the 19 NAB development files (``benchmarks/anomaly_nab.py``) the defaults score 67.7
(standard profile, default threshold, which is also the best threshold) for the ensemble and
seasonal detectors, and 46-47 for robust and EWMA, which see no seasonality.

Non-finite values (``nan``, ``inf``) are treated as missing: score 0, state unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from paca_otel.analysis._streaming import (
    RAW_CAP,
    AnomalyLikelihood,
    RangeNovelty,
    RollingRobust,
    SeasonalProfile,
)
from paca_otel.errors import ConfigError

__all__ = [
    "DETECTORS",
    "AnomalyDetector",
    "AnomalyResult",
    "Calibration",
    "EnsembleDetector",
    "EwmaDetector",
    "RobustZDetector",
    "SeasonalDetector",
    "create_detector",
]


class AnomalyResult(NamedTuple):
    """One point's verdict: immutable and slotted.

    A ``NamedTuple`` rather than a frozen dataclass because one is built per point, and a
    frozen dataclass' ``__init__`` (``object.__setattr__`` per field) costs three times as
    much, a tenth of the whole per-point budget.

    Attributes:
        score: calibrated anomaly score in [0, 1] (0 during the learning and refractory
            periods; 1 for a value beyond the recent range).
        is_anomaly: the detector flags this point: ``score >= threshold`` (or a value beyond
            the recent range) outside its refractory period.
        raw: the uncalibrated deviation in robust standard deviations (capped at 10).
    """

    score: float
    is_anomaly: bool
    raw: float


_QUIET = AnomalyResult(0.0, False, 0.0)


class AnomalyDetector(Protocol):
    """What every detector offers; implement it to plug your own into the CLI and benchmark.

    A detector follows one series and keeps its state in plain attributes: use one instance
    per series, from one thread (or behind the caller's lock).
    """

    name: str
    threshold: float

    def update(self, timestamp: float, value: float) -> AnomalyResult:
        """Score the next point (timestamps in seconds, non-decreasing)."""
        ...


@dataclass(frozen=True, slots=True)
class Calibration:
    """How every detector turns raw deviations into scores and alerts (shared defaults).

    Attributes:
        threshold: score at or above which a point is an anomaly. 0.5 means a nominal
            Gaussian tail of 1e-5 for the short average of deviations (Numenta's
            log-likelihood scale); about 2.5 alerts per 10,000 points of pure noise.
        suppress: points after a detection that are not flagged again (100: about 8 hours
            of 5-minute data; one incident, one alert).
        short: raw deviations averaged before comparison (5: a sustained deviation adds up,
            a lone noisy point is diluted).
        long: points in the reference distribution of that average, and in the recent range
            for novelty (8640: a month of 5-minute points, Numenta's history length).
        learn: points seen before any score is given (300: about a day of 5-minute data).
        novelty: a value beyond the recent range by more than this fraction of it is an
            anomaly whatever its likelihood (Numenta's 0.05); ``None`` turns this off.
    """

    threshold: float = 0.5
    suppress: int = 100
    short: int = 5
    long: int = 8640
    learn: int = 300
    novelty: float | None = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            msg = f"threshold must be in (0, 1], got {self.threshold}"
            raise ConfigError(msg)
        if self.suppress < 0:
            msg = f"suppress must be >= 0 points, got {self.suppress}"
            raise ConfigError(msg)
        if self.novelty is not None and self.novelty < 0.0:
            msg = f"novelty must be >= 0 (a fraction of the range) or None, got {self.novelty}"
            raise ConfigError(msg)


class _Calibrated:
    """Shared tail of every detector: likelihood, range novelty, threshold, refractory period."""

    name = "base"

    def __init__(self, calibration: Calibration | None) -> None:
        settings = calibration or Calibration()
        self.calibration = settings
        self.threshold = settings.threshold
        self._suppress = settings.suppress
        self._learn = settings.learn
        self._quiet = 0
        self._seen = 0
        self._likelihood = self._new_likelihood()
        self._range = (
            RangeNovelty(size=settings.long, tolerance=settings.novelty)
            if settings.novelty is not None
            else None
        )

    def _new_likelihood(self) -> AnomalyLikelihood:
        settings = self.calibration
        return AnomalyLikelihood(short=settings.short, long=settings.long, learn=settings.learn)

    def _verdict(self, value: float, raw: float, score: float) -> AnomalyResult:
        """Threshold the score (or range novelty) outside the refractory period."""
        self._seen += 1
        novel = self._range is not None and self._range.novel(value)
        if self._quiet > 0:
            self._quiet -= 1
            return AnomalyResult(0.0, False, raw)
        if score >= self.threshold:
            self._quiet = self._suppress
            return AnomalyResult(score, True, raw)
        if novel and self._seen > self._learn:
            self._quiet = self._suppress
            return AnomalyResult(1.0, True, raw)
        return AnomalyResult(score, False, raw)


class RobustZDetector(_Calibrated):
    """Deviation from the rolling median in rolling MADs: robust to the outliers it finds.

    Args:
        window: points in the rolling median/MAD (500: a long enough reference to hold a
            daily cycle at 5-minute resolution, short enough to follow a new normal).
        calibration: scoring and alerting settings (see :class:`Calibration`).
    """

    name = "robust"

    def __init__(self, *, window: int = 500, calibration: Calibration | None = None) -> None:
        super().__init__(calibration)
        self._window = RollingRobust(window)

    def update(self, timestamp: float, value: float) -> AnomalyResult:
        """Score ``value`` against the window, then add it to the window."""
        if not math.isfinite(value):
            return _QUIET
        raw = self._window.observe(value)
        return self._verdict(value, raw, self._likelihood.score(raw))


class EwmaDetector(_Calibrated):
    """Deviation from an exponentially weighted mean, in exponentially weighted std devs.

    The cheapest detector (O(1), no window): it follows slow drifts and flags abrupt changes.
    The spread is smoothed more slowly than the mean: a variance estimated from the last ~20
    points is itself so noisy that ordinary noise would produce large z-scores.

    Args:
        alpha: weight of the newest point in the mean (0.05: a memory of about 20 points).
        beta: weight of the newest squared deviation in the variance (0.01: ~100 points).
        calibration: scoring and alerting settings (see :class:`Calibration`).
    """

    name = "ewma"

    def __init__(
        self, *, alpha: float = 0.05, beta: float = 0.01, calibration: Calibration | None = None
    ) -> None:
        if not (0.0 < alpha < 1.0 and 0.0 < beta < 1.0):
            msg = f"alpha and beta must be in (0, 1), got alpha={alpha}, beta={beta}"
            raise ConfigError(msg)
        super().__init__(calibration)
        self._alpha = alpha
        self._beta = beta
        self._mean = math.nan
        self._var = 0.0
        self._count = 0

    def update(self, timestamp: float, value: float) -> AnomalyResult:
        """Score ``value`` against the running mean/variance, then fold it in."""
        if not math.isfinite(value):
            return _QUIET
        self._count += 1
        if self._count == 1:
            self._mean = value
            return self._verdict(value, 0.0, self._likelihood.score(0.0))
        diff = value - self._mean
        std = math.sqrt(self._var)
        if self._count < 10:
            raw = 0.0  # no variance estimate yet
        elif std > 0.0:
            raw = abs(diff) / std
            raw = raw if raw < RAW_CAP else RAW_CAP
        else:
            raw = RAW_CAP if diff else 0.0
        self._mean += self._alpha * diff
        self._var = (1.0 - self._beta) * (self._var + self._beta * diff * diff)
        return self._verdict(value, raw, self._likelihood.score(raw))


class SeasonalDetector(_Calibrated):
    """Deviation from the same phase of previous periods, in robust units of that residual.

    Quiet until a phase has been seen once (a period of history); see
    :class:`EnsembleDetector` for the level view as a fallback meanwhile.

    Args:
        period: the season in seconds (default a day).
        smoothing: how fast the seasonal profile follows change (see
            :class:`~paca_otel.analysis._streaming.SeasonalProfile`).
        window: points in the rolling median/MAD of the residuals.
        calibration: scoring and alerting settings (see :class:`Calibration`).
    """

    name = "seasonal"

    def __init__(
        self,
        *,
        period: float = 86_400.0,
        smoothing: float = 0.2,
        window: int = 500,
        calibration: Calibration | None = None,
    ) -> None:
        super().__init__(calibration)
        self._profile = SeasonalProfile(period=period, smoothing=smoothing, spread_window=window)
        self._residuals = RollingRobust(window)

    def update(self, timestamp: float, value: float) -> AnomalyResult:
        """Score the residual from the profile; quiet until the phase has a history."""
        if not math.isfinite(value):
            return _QUIET
        observed = self._profile.observe(timestamp, value)
        if observed is None:
            return self._verdict(value, 0.0, 0.0)
        residual, noise = observed
        raw = self._residuals.observe(residual) / noise
        return self._verdict(value, raw, self._likelihood.score(raw))


class EnsembleDetector(_Calibrated):
    """The default: seasonal baseline, level baseline until it is ready, and range novelty.

    The seasonal residual generalises the level: on a series without seasonality every phase
    of the profile converges to the same level, and the residual is just the deviation from
    it (with a little more noise). So once the profile and its calibration have learnt, the
    seasonal view speaks for every point, in units of the noise usual at its phase. Before
    that (the first period plus the learning period of its calibration), and on series
    sampled too coarsely for a profile (fewer than 4 points per period), the robust level view
    speaks. On both, a value beyond the recent range is an anomaly too.

    Args:
        window: points in the rolling median/MAD windows (level and residual).
        period, smoothing: the seasonal profile (see :class:`SeasonalDetector`).
        calibration: scoring and alerting settings (see :class:`Calibration`).
    """

    name = "ensemble"

    def __init__(
        self,
        *,
        window: int = 500,
        period: float = 86_400.0,
        smoothing: float = 0.2,
        calibration: Calibration | None = None,
    ) -> None:
        super().__init__(calibration)
        self._level: RollingRobust | None = RollingRobust(window)
        self._profile = SeasonalProfile(period=period, smoothing=smoothing, spread_window=window)
        self._residuals = RollingRobust(window)
        self._seasonal = self._new_likelihood()
        self._seasonal_seen = 0

    def update(self, timestamp: float, value: float) -> AnomalyResult:
        """Score the seasonal residual once it is calibrated, the level deviation before."""
        if not math.isfinite(value):
            return _QUIET
        observed = self._profile.observe(timestamp, value)
        level_score = -1.0
        raw = 0.0
        level = self._level
        if level is not None:
            raw = level.observe(value)
            level_score = self._likelihood.score(raw)
        if observed is None:
            return self._verdict(value, raw, max(level_score, 0.0))
        residual, noise = observed
        seasonal_raw = self._residuals.observe(residual) / noise
        seasonal_score = self._seasonal.score(seasonal_raw)
        self._seasonal_seen += 1
        if self._seasonal_seen <= self.calibration.learn:
            return self._verdict(value, raw, max(level_score, 0.0))
        self._level = None  # the seasonal view has taken over for good: stop paying for both
        return self._verdict(value, seasonal_raw, seasonal_score)


DETECTORS: dict[str, Callable[[], AnomalyDetector]] = {
    "ensemble": EnsembleDetector,
    "robust": RobustZDetector,
    "ewma": EwmaDetector,
    "seasonal": SeasonalDetector,
}
"""Detector names accepted by :func:`create_detector` and ``paca-otel anomalies --detector``."""


def create_detector(name: str = "ensemble") -> AnomalyDetector:
    """A new detector with default settings, by name (``ensemble``, ``robust``, ...)."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        msg = f"unknown detector {name!r}; choose one of: {', '.join(DETECTORS)}"
        raise ConfigError(msg) from None
    return factory()
