"""Online anomaly detectors with one interface: ``update(timestamp, value) -> AnomalyResult``.

Each detector measures how far the newest value is from what it expected (its *raw*
deviation, in robust standard deviations), then turns that into a *score* in [0, 1] with an
:class:`~paca_otel.analysis.streaming.AnomalyLikelihood` and flags ``is_anomaly`` when the score
reaches its ``threshold``. A point's score depends only on the points before and including it.

Why the extra calibration step: on a benchmark like NAB (and for an on-call team) a detector
earns one early alert per incident and pays for every false one. Raw z-scores fire on every
noisy point, so a fixed z threshold is either deaf or noisy. Comparing a short average of
deviations against their own long-run distribution (Numenta's anomaly likelihood) makes the
threshold mean the same thing on quiet and noisy series. After a detection, the detector
stays quiet for ``suppress`` points (a *refractory period*): the same incident is not alerted
twice, as an alert manager groups repeats.

The detectors:

- ``robust``: distance from the rolling median in rolling MADs (spikes, level shifts).
- ``ewma``: distance from an exponentially weighted mean in EW standard deviations (fast,
  tracks slow drifts so only abrupt changes stand out).
- ``seasonal``: distance from the same time of day in previous days (a missing daily peak,
  a flat stretch where traffic should move, a peak at the wrong hour).
- ``ensemble`` (the default): robust and seasonal; it trusts the seasonal view only while its
  recent prediction error is clearly (``margin`` times) smaller than the level's, so
  non-seasonal series do not pay for a useless profile.

Non-finite values (``nan``, ``inf``) are treated as missing: score 0, state unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from paca_otel.analysis.streaming import AnomalyLikelihood, RollingRobust, SeasonalProfile
from paca_otel.errors import ConfigError

__all__ = [
    "DETECTORS",
    "AnomalyDetector",
    "AnomalyResult",
    "EnsembleDetector",
    "EwmaDetector",
    "RobustZDetector",
    "SeasonalDetector",
    "create_detector",
]

_MAD_TO_SIGMA = 1.4826
_RAW_CAP = 30.0  # deviations beyond 30 sigma are all "certain"; capping keeps the variance sane


@dataclass(frozen=True, slots=True)
class AnomalyResult:
    """One point's verdict.

    Attributes:
        score: calibrated anomaly score in [0, 1] (0 during the learning and refractory
            periods).
        is_anomaly: ``score >= threshold`` of the detector that produced it.
        raw: the uncalibrated deviation in robust standard deviations (capped at 30).
    """

    score: float
    is_anomaly: bool
    raw: float


_QUIET = AnomalyResult(0.0, False, 0.0)


class AnomalyDetector(Protocol):
    """What every detector offers; implement it to plug your own into the CLI and benchmark."""

    name: str
    threshold: float

    def update(self, timestamp: float, value: float) -> AnomalyResult:
        """Score the next point (timestamps in seconds, non-decreasing)."""
        ...


def _robust_z(value: float, window: RollingRobust) -> float:
    """``|value - median| / (1.4826 MAD)`` of the window, before ``value`` joins it.

    When more than half the window is one value the MAD is 0; then a twentieth of the range
    (or, for a constant window, a tiny fraction of the level) stands in, so a change from a
    flat line scores as the large deviation it is without dividing by zero.
    """
    if len(window) < 10:
        return 0.0
    median = window.median()
    scale = _MAD_TO_SIGMA * window.mad()
    if scale <= 0.0:
        scale = window.spread() * 0.05 or 1e-9 * (abs(median) + 1.0)
    deviation = abs(value - median) / scale
    return deviation if deviation < _RAW_CAP else _RAW_CAP


class _Calibrated:
    """Shared tail of every detector: likelihood, threshold, refractory period."""

    name = "base"

    def __init__(
        self, *, threshold: float, suppress: int, short: int, long: int, learn: int
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            msg = f"threshold must be in (0, 1], got {threshold}"
            raise ConfigError(msg)
        if suppress < 0:
            msg = f"suppress must be >= 0 points, got {suppress}"
            raise ConfigError(msg)
        self.threshold = threshold
        self.suppress = suppress
        self._quiet = 0
        self._likelihood = AnomalyLikelihood(short=short, long=long, learn=learn)

    def _verdict(self, raw: float, score: float) -> AnomalyResult:
        if self._quiet > 0:
            self._quiet -= 1
            return AnomalyResult(0.0, False, raw)
        if score >= self.threshold:
            self._quiet = self.suppress
            return AnomalyResult(score, True, raw)
        return AnomalyResult(score, False, raw)


class RobustZDetector(_Calibrated):
    """Deviation from the rolling median in rolling MADs: robust to the outliers it finds.

    Args:
        window: points in the rolling median/MAD (500: a long enough reference to hold a
            daily cycle at 5-minute resolution, short enough to follow a new normal).
        threshold: score at or above which a point is an anomaly (0.5 = Gaussian tail 1e-5).
        suppress: points after a detection that are not flagged again.
        short, long, learn: see :class:`~paca_otel.analysis.streaming.AnomalyLikelihood`.
    """

    name = "robust"

    def __init__(
        self,
        *,
        window: int = 500,
        threshold: float = 0.5,
        suppress: int = 100,
        short: int = 5,
        long: int = 8640,
        learn: int = 300,
    ) -> None:
        super().__init__(threshold=threshold, suppress=suppress, short=short, long=long,
                         learn=learn)  # fmt: skip
        self._window = RollingRobust(window)

    def update(self, timestamp: float, value: float) -> AnomalyResult:
        """Score ``value`` against the window, then add it to the window."""
        if not math.isfinite(value):
            return _QUIET
        raw = _robust_z(value, self._window)
        self._window.push(value)
        return self._verdict(raw, self._likelihood.score(raw))


class EwmaDetector(_Calibrated):
    """Deviation from an exponentially weighted mean, in exponentially weighted std devs.

    The cheapest detector (O(1), no window): it follows slow drifts and flags abrupt changes.
    The spread is smoothed more slowly than the mean: a variance estimated from the last ~20
    points is itself so noisy that ordinary noise would produce large z-scores.

    Args:
        alpha: weight of the newest point in the mean (0.05: a memory of about 20 points).
        beta: weight of the newest squared deviation in the variance (0.01: ~100 points).
        threshold, suppress, short, long, learn: as for :class:`RobustZDetector`.
    """

    name = "ewma"

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        beta: float = 0.01,
        threshold: float = 0.5,
        suppress: int = 100,
        short: int = 5,
        long: int = 8640,
        learn: int = 300,
    ) -> None:
        if not (0.0 < alpha < 1.0 and 0.0 < beta < 1.0):
            msg = f"alpha and beta must be in (0, 1), got alpha={alpha}, beta={beta}"
            raise ConfigError(msg)
        super().__init__(threshold=threshold, suppress=suppress, short=short, long=long,
                         learn=learn)  # fmt: skip
        self._alpha = alpha
        self._beta = beta
        self._mean = math.nan
        self._var = 0.0
        self._seen = 0

    def update(self, timestamp: float, value: float) -> AnomalyResult:
        """Score ``value`` against the running mean/variance, then fold it in."""
        if not math.isfinite(value):
            return _QUIET
        self._seen += 1
        if self._seen == 1:
            self._mean = value
            return self._verdict(0.0, self._likelihood.score(0.0))
        diff = value - self._mean
        std = math.sqrt(self._var)
        if self._seen < 10:
            raw = 0.0  # no variance estimate yet
        elif std > 0.0:
            raw = abs(diff) / std
            raw = raw if raw < _RAW_CAP else _RAW_CAP
        else:
            raw = _RAW_CAP if diff else 0.0
        self._mean += self._alpha * diff
        self._var = (1.0 - self._beta) * (self._var + self._beta * diff * diff)
        return self._verdict(raw, self._likelihood.score(raw))


class SeasonalDetector(_Calibrated):
    """Deviation from the same phase of previous periods, in robust units of that residual.

    Args:
        period: the season in seconds (default a day).
        smoothing: how fast the seasonal profile follows change (see
            :class:`~paca_otel.analysis.streaming.SeasonalProfile`).
        window: points in the rolling median/MAD of the residuals.
        threshold, suppress, short, long, learn: as for :class:`RobustZDetector`.
    """

    name = "seasonal"

    def __init__(
        self,
        *,
        period: float = 86_400.0,
        smoothing: float = 0.2,
        window: int = 500,
        threshold: float = 0.5,
        suppress: int = 100,
        short: int = 5,
        long: int = 8640,
        learn: int = 300,
    ) -> None:
        super().__init__(threshold=threshold, suppress=suppress, short=short, long=long,
                         learn=learn)  # fmt: skip
        self._profile = SeasonalProfile(period=period, smoothing=smoothing)
        self._residuals = RollingRobust(window)

    def update(self, timestamp: float, value: float) -> AnomalyResult:
        """Score the residual from the profile; quiet until the phase has a history."""
        if not math.isfinite(value):
            return _QUIET
        residual = self._profile.residual(timestamp, value)
        if residual is None:
            return self._verdict(0.0, 0.0)
        raw = _robust_z(residual, self._residuals)
        self._residuals.push(residual)
        return self._verdict(raw, self._likelihood.score(raw))


class EnsembleDetector(_Calibrated):
    """The default: the robust level view, or the seasonal view where it predicts better.

    Both views are calibrated separately (each has its own likelihood history). Which one
    speaks for a point is decided by their recent mean absolute prediction errors: the seasonal
    view needs to be ``margin`` times better, so a weakly seasonal series stays with the
    level view and does not pay twice for false alarms.

    Args:
        window: points in both rolling median/MAD windows.
        period, smoothing: the seasonal profile (see :class:`SeasonalDetector`).
        margin: how many times smaller the seasonal error must be to be trusted.
        threshold, suppress, short, long, learn: as for :class:`RobustZDetector`.
    """

    name = "ensemble"

    def __init__(
        self,
        *,
        window: int = 500,
        period: float = 86_400.0,
        smoothing: float = 0.2,
        margin: float = 1.5,
        threshold: float = 0.5,
        suppress: int = 100,
        short: int = 5,
        long: int = 8640,
        learn: int = 300,
    ) -> None:
        super().__init__(threshold=threshold, suppress=suppress, short=short, long=long,
                         learn=learn)  # fmt: skip
        self._level = RollingRobust(window)
        self._profile = SeasonalProfile(period=period, smoothing=smoothing)
        self._residuals = RollingRobust(window)
        self._seasonal = AnomalyLikelihood(short=short, long=long, learn=learn)
        self._margin = margin
        self._level_error = 0.0
        self._seasonal_error = 0.0

    def update(self, timestamp: float, value: float) -> AnomalyResult:
        """Score both views, pick the better predictor's score, apply threshold and quiet."""
        if not math.isfinite(value):
            return _QUIET
        level = self._level
        if len(level):
            self._level_error += 0.01 * (abs(value - level.median()) - self._level_error)
        raw = _robust_z(value, level)
        level.push(value)
        score = self._likelihood.score(raw)
        residual = self._profile.residual(timestamp, value)
        if residual is not None:
            self._seasonal_error += 0.01 * (abs(residual) - self._seasonal_error)
            seasonal_raw = _robust_z(residual, self._residuals)
            self._residuals.push(residual)
            seasonal_score = self._seasonal.score(seasonal_raw)
            if self._seasonal_error * self._margin < self._level_error:
                raw, score = seasonal_raw, seasonal_score
        return self._verdict(raw, score)


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
