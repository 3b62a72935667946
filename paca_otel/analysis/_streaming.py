"""Streaming building blocks of the anomaly detectors: rolling robust statistics, a seasonal
profile, and the likelihood calibration that turns raw deviations into scores in [0, 1].

Every block is updated one point at a time, uses only points seen so far, and keeps bounded
state, so a detector built from them is online and causal by construction.

Why hand-written: the detectors must score >= 100k points/s per core in pure Python (numpy is
not a dependency, and per-point numpy calls cost more than they save). The standard library has
no rolling median/MAD, and pandas-style rolling windows work on whole arrays, not online. The
choices, each O(log n) or amortised O(1) per point:

- :class:`RollingRobust` keeps its window sorted with :mod:`bisect` (insertion and removal are
  a binary search plus a C-level ``memmove``, fast for windows of thousands). The median is an
  index. The MAD is the k-th smallest of two sorted sequences of distances from the median
  (left and right of it), found by binary search in O(log n) without building them; it is
  refreshed every few points because a window's spread moves slowly.
- :class:`AnomalyLikelihood` follows Numenta's "anomaly likelihood" (Ahmad et al., 2017,
  "Unsupervised real-time anomaly detection for streaming data"): it averages raw scores over a
  short window and asks how far into the tail of their long-run distribution that average lies.
  A lone large deviation in a noisy series is common and scores low; a sustained one is rare and
  scores high. Running sums give the long-run mean and variance in O(1).
- :class:`RangeNovelty` flags a value beyond the range of the last ``size`` values by more than
  a fraction of that range (Numenta's NAB detector calls it a "spatial anomaly"). Rolling
  minimum and maximum come from monotonic deques, amortised O(1).
- :class:`SeasonalProfile` keeps one smoothed value per phase of the period (for example one
  per 5 minutes of the day), indexed by the timestamp rather than by the point's position, so
  gaps and irregular sampling do not shift the profile.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from itertools import pairwise

from paca_otel.errors import ConfigError

__all__ = ["RAW_CAP", "AnomalyLikelihood", "RangeNovelty", "RollingRobust", "SeasonalProfile"]

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
# Deviations are capped at 10 robust sigmas. Gaussian noise never gets there (p ~ 1e-23), so
# beyond it size says how big an outlier is, not whether it is one. Uncapped, one huge spike
# dominates the short average that the likelihood compares, and a series with occasional big
# spikes alerts on each of them; capped, the average counts how many recent points are
# certainly off. (On the NAB development files caps from 6 to 15 score 60-64, 30 scores 60,
# 100 scores 55: the choice is not sharp, and 10 is not the best of them.)
RAW_CAP = 10.0
_LOG_TAIL_FLOOR = math.log(1e-10)  # Numenta's log-likelihood scale: a 1e-10 tail scores 1.0
_SQRT2 = math.sqrt(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def log_tail(z: float) -> float:
    """Natural log of the standard normal upper tail ``P(Z > z)``.

    ``erfc`` underflows near ``z = 38``; beyond ``z = 5`` the asymptotic form (Mills' ratio,
    relative error < 4 %) keeps large deviations distinguishable instead of all scoring 1.0.
    """
    if z < 5.0:
        return math.log(0.5 * math.erfc(z / _SQRT2))
    return -0.5 * z * z - math.log(z) - _HALF_LOG_2PI


class RollingRobust:
    """Median and MAD of the last ``size`` values, updated one value at a time.

    Args:
        size: how many recent values the statistics cover.
        scale_every: recompute the MAD every this many values (the median is always exact).
    """

    __slots__ = ("_mad", "_order", "_scale", "_scale_every", "_since", "_size", "_sorted")

    def __init__(self, size: int, *, scale_every: int = 8) -> None:
        if size < 3:
            msg = f"rolling window size must be at least 3, got {size}"
            raise ConfigError(msg)
        self._size = size
        self._scale_every = max(1, scale_every)
        self._order: deque[float] = deque()
        self._sorted: list[float] = []
        self._mad = 0.0
        self._scale = 0.0
        self._since = 0

    def __len__(self) -> int:
        return len(self._sorted)

    def median(self) -> float:
        """The window's (upper) median; ``nan`` while empty."""
        values = self._sorted
        return values[len(values) // 2] if values else math.nan

    def mad(self) -> float:
        """The window's median absolute deviation from its median (as of the last refresh)."""
        return self._mad

    def spread(self) -> float:
        """Largest minus smallest value in the window (0 while empty)."""
        values = self._sorted
        return values[-1] - values[0] if values else 0.0

    def push(self, value: float) -> None:
        """Add a value, dropping the oldest one once the window is full."""
        self.observe(value)

    def observe(self, value: float) -> float:
        """The value's robust z-score against the window before it; then the value joins.

        ``|value - median| / (1.4826 MAD)``, capped at :data:`RAW_CAP` (beyond it every
        deviation is "certain"). 0 while fewer than ten
        values are known. When more than half the window is one value the MAD is 0; then a
        twentieth of the range (or, for a constant window, a tiny fraction of the level)
        stands in, so a change from a flat line scores as the large deviation it is.

        This is the detectors' per-point call, so it is one method doing both steps.
        """
        values = self._sorted
        count = len(values)
        if count >= 10:
            deviation = (value - values[count >> 1]) / self._scale
            if deviation < 0.0:
                deviation = -deviation
            deviation = min(deviation, RAW_CAP)
        else:
            deviation = 0.0
        insort(values, value)
        order = self._order
        order.append(value)
        if count >= self._size:
            del values[bisect_left(values, order.popleft())]
        self._since += 1
        if self._since >= self._scale_every or count < 10:
            self._since = 0
            self._refresh_scale()
        return deviation

    def _refresh_scale(self) -> None:
        values = self._sorted
        mad = self._mad = exact_mad(values)
        scale = _MAD_TO_SIGMA * mad
        if scale <= 0.0:
            scale = (values[-1] - values[0]) * 0.05 or 1e-9 * (abs(values[len(values) >> 1]) + 1.0)
        self._scale = scale


def exact_mad(values: list[float]) -> float:
    """The MAD of an ascending list in O(log n): the k-th smallest distance from the median.

    The distances left of the median (``median - values[h-1-i]``) and right of it
    (``values[h+j] - median``) are two ascending sequences; their merged k-th element is found
    by binary search on how many come from the left one, as in the classic two-sorted-arrays
    selection. ``k = n // 2`` matches the (upper) median used for the centre.
    """
    n = len(values)
    if n < 2:
        return 0.0
    half = n // 2
    centre = values[half]
    left_len, right_len = half, n - half
    need = half + 1  # how many of the smallest distances to take; the largest of them is the MAD
    low, high = max(0, need - right_len), min(need, left_len)
    while True:
        take_left = (low + high) // 2
        take_right = need - take_left
        # Distances: left[i] = centre - values[half - 1 - i]; right[j] = values[half + j] - centre.
        if take_left < left_len and take_right > 0:
            next_left = centre - values[half - 1 - take_left]
            last_right = values[half + take_right - 1] - centre
            if last_right > next_left:
                low = take_left + 1
                continue
        if take_left > 0 and take_right < right_len:
            last_left = centre - values[half - take_left]
            next_right = values[half + take_right] - centre
            if last_left > next_right:
                high = take_left - 1
                continue
        best = -math.inf
        if take_left > 0:
            best = centre - values[half - take_left]
        if take_right > 0:
            best = max(best, values[half + take_right - 1] - centre)
        return best


class AnomalyLikelihood:
    """Turns a stream of raw deviations (>= 0) into calibrated scores in [0, 1].

    The score is ``log(tail) / log(1e-10)`` (clamped to [0, 1]), where ``tail`` is the Gaussian
    upper-tail probability of the mean of the last ``short`` raw values against the mean and
    standard deviation of that short mean over the last ``long`` points (Numenta's
    log-likelihood scale). 0.5 means a nominal tail of 1e-5. The Gaussian is only an
    approximation of the short mean's right tail, which is heavier: on i.i.d. Gaussian noise the
    measured rate of scores >= 0.5 is about 2.5 per 10,000 points, not 0.1 (see
    ``tests/analysis/test_detectors.py``). Heavier-tailed fits (log, square root, Laplace) were
    tried and lost more detections on the NAB development files than they saved false alarms.
    Until ``learn`` points have been seen the score is 0 (no reference yet).

    Args:
        short: points averaged before comparing (smooths single-point noise; sustained
            deviations add up).
        long: points in the reference distribution (long enough to contain a few days of
            5-minute data, so daily cycles are "normal").
        learn: points needed before any score is given.
    """

    __slots__ = (
        "_count",
        "_learn",
        "_long",
        "_long_len",
        "_long_sq",
        "_long_sum",
        "_recompute_in",
        "_short",
        "_short_len",
        "_short_sum",
    )

    def __init__(self, *, short: int = 5, long: int = 10_000, learn: int = 300) -> None:
        if short < 1 or long < 2 or learn < 2:
            msg = f"likelihood windows must be positive (short={short}, long={long}, learn={learn})"
            raise ConfigError(msg)
        self._short_len = short
        self._long_len = long
        self._learn = learn
        self._short: deque[float] = deque()
        self._short_sum = 0.0
        self._long: deque[float] = deque()
        self._long_sum = 0.0
        self._long_sq = 0.0
        self._count = 0
        self._recompute_in = long

    def score(self, raw: float) -> float:
        """Score the newest raw deviation, then add it to the history."""
        short = self._short
        short.append(raw)
        self._short_sum += raw
        if len(short) > self._short_len:
            self._short_sum -= short.popleft()
        mean_short = self._short_sum / len(short)
        long = self._long
        count = len(long)
        result = 0.0
        if count >= self._learn:
            mean = self._long_sum / count
            variance = self._long_sq / count - mean * mean
            # A floor on the spread: a perfectly flat history must not make any change infinite.
            std = math.sqrt(variance) if variance > 1e-6 else 1e-3
            z = (mean_short - mean) / std
            if z > 0.0:
                result = log_tail(z) / _LOG_TAIL_FLOOR
                result = min(result, 1.0)
        long.append(mean_short)
        self._long_sum += mean_short
        self._long_sq += mean_short * mean_short
        if count + 1 > self._long_len:
            old = long.popleft()
            self._long_sum -= old
            self._long_sq -= old * old
        self._recompute_in -= 1
        if self._recompute_in <= 0:
            # Running sums drift by rounding over millions of points: resum once per window.
            self._recompute_in = self._long_len
            self._long_sum = math.fsum(long)
            self._long_sq = math.fsum(v * v for v in long)
        return result


class RangeNovelty:
    """Is a value outside everything seen lately, by more than ``tolerance`` of that range?

    A likelihood is relative: after a noisy stretch it needs a larger deviation to fire, so a
    slow drift to a level never seen before, or a shift in a series whose history is spiky,
    can stay under it. A new extreme beyond the recent range is a different, absolute kind of
    evidence, and rare by construction (records become rarer the longer the history).

    Args:
        size: how many recent values define the range.
        tolerance: margin beyond the range, as a fraction of it (0.05, Numenta's choice).
    """

    __slots__ = ("_index", "_max", "_min", "_size", "_tolerance")

    def __init__(self, *, size: int = 8640, tolerance: float = 0.05) -> None:
        if size < 2 or tolerance < 0.0:
            msg = f"range novelty needs size >= 2 and tolerance >= 0, got {size}, {tolerance}"
            raise ConfigError(msg)
        self._size = size
        self._tolerance = tolerance
        self._index = 0
        self._max: deque[tuple[int, float]] = deque()  # decreasing values: front is the max
        self._min: deque[tuple[int, float]] = deque()  # increasing values: front is the min

    def novel(self, value: float) -> bool:
        """Whether ``value`` is beyond the range of the values before it; then remember it."""
        index = self._index
        self._index = index + 1
        highs, lows = self._max, self._min
        oldest = index - self._size  # the range covers the `size` values before this one
        while highs and highs[0][0] < oldest:
            highs.popleft()
        while lows and lows[0][0] < oldest:
            lows.popleft()
        result = False
        if highs:
            high, low = highs[0][1], lows[0][1]
            if high > low:  # a constant history has no scale to be "beyond" by
                margin = (high - low) * self._tolerance
                result = value > high + margin or value < low - margin
        while highs and highs[-1][1] <= value:
            highs.pop()
        highs.append((index, value))
        while lows and lows[-1][1] >= value:
            lows.pop()
        lows.append((index, value))
        return result


class SeasonalProfile:
    """Per phase of a period: a smoothed value and how noisy that phase usually is.

    Phases are found from the timestamp, not the point's position, so gaps do not shift them.
    The bin width is the median of the first 16 intervals between timestamps (the sampling
    interval, robust to an early gap or jitter), so a bin holds about one point per period.
    Under irregular sampling a phase can be empty while its neighbours are not; the residual
    then uses the previous or next bin. Series sampled more finely than ``max_bins`` per period
    share a bin between neighbouring points. Series sampled too coarsely (fewer than 4 points
    per period) have no profile: :meth:`observe` returns ``None`` for them, and the detectors
    fall back to the level alone.

    Noise often has a season of its own: request counts vary more at the daily peak than at
    night. So each phase also keeps a smoothed mean absolute residual, and :meth:`observe`
    reports how many times noisier than the whole series (mean absolute residual over the
    last ``spread_window`` points) this phase usually is. The factor is never below 1: a
    phase that is usually quiet does not make its deviations look larger (a calm night would
    otherwise alert on every ripple), while a usually noisy phase needs proportionally larger
    deviations.

    Args:
        period: the season in seconds (a day by default: the strongest cycle of service load).
        smoothing: weight of the newest value in its bin, for the value and for the noise
            (0.2: a profile that follows a change over about five periods, but is not pulled
            by one anomalous day).
        max_bins: memory bound (10,080: a day at 10-second steps fits, as does a week at
            1-minute steps).
        spread_window: points in the series-wide mean absolute residual.
    """

    __slots__ = (
        "_bins",
        "_full_at",
        "_max_bins",
        "_period",
        "_probe",
        "_smoothing",
        "_spread",
        "_spread_count",
        "_spread_window",
        "_spreads",
        "_width",
        "disabled",
    )

    _PROBE = 17  # points (16 intervals) sampled to find the sampling interval

    def __init__(
        self,
        *,
        period: float = 86_400.0,
        smoothing: float = 0.2,
        max_bins: int = 10_080,
        spread_window: int = 500,
    ) -> None:
        if period <= 0 or not 0.0 < smoothing <= 1.0 or spread_window < 1:
            msg = (
                f"seasonal period must be > 0, smoothing in (0, 1] and spread_window >= 1, "
                f"got {period}, {smoothing}, {spread_window}"
            )
            raise ConfigError(msg)
        self._period = period
        self._smoothing = smoothing
        self._max_bins = max_bins
        self._spread_window = spread_window
        self._bins: list[float | None] = []
        self._spreads: list[float] = []  # per phase; -1 until the phase has a residual
        self._spread = 0.0
        self._spread_count = 0
        self._width = 0.0
        self._full_at = math.inf  # after one whole period an empty bin is a sampling hole
        self._probe: list[tuple[float, float]] = []
        self.disabled = False

    @property
    def bin_width(self) -> float:
        """Seconds per bin (0 until the sampling interval is known)."""
        return self._width

    def residual(self, timestamp: float, value: float) -> float | None:
        """Value minus the profile at this phase (``None`` until the phase has a history)."""
        observed = self.observe(timestamp, value)
        return None if observed is None else observed[0]

    def observe(self, timestamp: float, value: float) -> tuple[float, float] | None:
        """``(residual, noise factor >= 1)`` of this point, then the profile learns from it.

        ``None`` until the phase has a history.
        """
        bins = self._bins
        if not bins:
            if not self.disabled:
                self._configure(timestamp, value)
            return None
        index = int((timestamp % self._period) / self._width)
        count = len(bins)
        if index >= count:
            index = count - 1
        base = bins[index]
        if base is None:
            bins[index] = value
            if timestamp < self._full_at:
                return None  # the first period: this phase was simply not reached yet
            base = bins[index - 1]
            if base is None:
                base = bins[index + 1 if index + 1 < count else 0]
            return None if base is None else (value - base, 1.0)
        smoothing = self._smoothing
        bins[index] = base + smoothing * (value - base)
        residual = value - base
        size = residual if residual >= 0.0 else -residual
        spread = self._spread
        phase = self._spreads[index]
        factor = 1.0
        if phase < 0.0:
            self._spreads[index] = size
        else:
            if phase > spread > 0.0:
                factor = phase / spread
            self._spreads[index] = phase + smoothing * (size - phase)
        seen = self._spread_count
        if seen < self._spread_window:
            seen += 1
            self._spread_count = seen
        self._spread = spread + (size - spread) / seen
        return residual, factor

    def _configure(self, timestamp: float, value: float) -> None:
        probe = self._probe
        if probe and timestamp <= probe[-1][0]:
            return  # out of order or repeated timestamps say nothing about the interval
        probe.append((timestamp, value))
        if len(probe) < self._PROBE:
            return
        steps = sorted(b[0] - a[0] for a, b in pairwise(probe))
        count = min(round(self._period / steps[len(steps) // 2]), self._max_bins)
        self._probe = []
        if count < 4:
            self.disabled = True
            return
        self._bins = [None] * count
        self._spreads = [-1.0] * count
        self._width = self._period / count
        self._full_at = probe[0][0] + self._period
        for stamp, old in probe:
            self.observe(stamp, old)  # seed the profile with the probed points
