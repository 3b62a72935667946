"""Level shifts in one series: binary segmentation with a CUSUM split and a median check.

A level shift ("p95 went from 120 ms to 310 ms at 14:02, after the deploy") is a different
finding from a trend or a spike, and reports name its time and size. The method:

1. *Locate*: in a segment, the split that maximises the standardised CUSUM of the values
   (the classic binary-segmentation statistic, O(n) per segment with prefix sums).
2. *Verify robustly*: the shift is the difference of the two sides' medians, and it must be
   large against the noise (the MAD of first differences, which a level shift barely
   touches), significant for the segment sizes, and *abrupt*: the medians of the few points
   just before and after the split must differ by at least half the shift. A steady ramp
   has a large between-segment difference but a small local jump, so trends are not cut
   into staircases; :mod:`paca_otel.analysis.trend` reports those.
3. *Recurse* into both sides until no split passes or ``max_points`` are found.

Hand-written: the well-kept change-point libraries (``ruptures``) need NumPy/SciPy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from paca_otel.errors import ConfigError

__all__ = ["ChangePoint", "change_points", "noise_sigma"]


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """One level shift.

    Attributes:
        timestamp: time of the first point at the new level.
        index: that point's index in the analysed (finite) values.
        before: median level before the shift (back to the previous change point).
        after: median level after it (up to the next change point).
        score: the shift in units of the noise's standard deviation.
    """

    timestamp: float
    index: int
    before: float
    after: float
    score: float

    @property
    def shift(self) -> float:
        """``after - before``."""
        return self.after - self.before

    @property
    def relative(self) -> float:
        """The shift as a fraction of the level before it (inf from a level of 0)."""
        if self.before == 0.0:
            return math.inf if self.shift else 0.0
        return self.shift / abs(self.before)


def noise_sigma(values: Sequence[float]) -> float:
    """Robust standard deviation of the noise: MAD of first differences / sqrt 2, scaled.

    Differences cancel level and slow trend, and the median ignores the one large difference
    a level shift adds, so this is the point-to-point noise alone.
    """
    if len(values) < 3:
        return 0.0
    diffs = [b - a for a, b in itertools.pairwise(values)]
    centre = median(diffs)
    mad = median(abs(d - centre) for d in diffs)
    return 1.4826 * mad / math.sqrt(2.0)


def _best_split(values: Sequence[float], lo: int, hi: int, min_size: int) -> int | None:
    """Index in ``(lo, hi)`` maximising the standardised CUSUM, or None if too short."""
    n = hi - lo
    if n < 2 * min_size:
        return None
    total = math.fsum(values[lo:hi])
    running = 0.0
    best, best_k = -1.0, None
    for k in range(1, n):
        running += values[lo + k - 1]
        if k < min_size or n - k < min_size:
            continue
        stat = abs(running - k * total / n) / math.sqrt(k * (n - k) / n)
        if stat > best:
            best, best_k = stat, lo + k
    return best_k


def change_points(
    times: Sequence[float],
    values: Sequence[float],
    *,
    min_size: int | None = None,
    min_sigma: float = 3.0,
    z: float = 6.0,
    max_points: int = 5,
) -> list[ChangePoint]:
    """The level shifts in a series, oldest first.

    Args:
        times: timestamps in seconds, ascending.
        values: values at those times; non-finite values are gaps and are skipped.
        min_size: fewest points on each side of a shift (default: a 24th of the series, at
            least 5), so a short burst is an anomaly, not two shifts.
        min_sigma: a shift must be at least this many noise standard deviations.
        z: and significant: shift / (sigma * sqrt(1/n_left + 1/n_right)) at least this.
        max_points: report at most this many shifts (found top-down: the split of the whole
            series first, then splits of its parts).
    """
    if len(times) != len(values):
        msg = f"times and values differ in length ({len(times)} != {len(values)})"
        raise ConfigError(msg)
    pairs = [(t, v) for t, v in zip(times, values, strict=True) if math.isfinite(v)]
    ts = [t for t, _ in pairs]
    vs = [v for _, v in pairs]
    n = len(vs)
    size = min_size if min_size is not None else max(5, n // 24)
    if size < 2:
        msg = f"min_size must be at least 2 points, got {size}"
        raise ConfigError(msg)
    sigma = noise_sigma(vs)
    if n < 2 * size:
        return []
    if sigma == 0.0:  # a noiseless series: any abrupt step counts, scaled to its range
        spread = max(vs) - min(vs)
        sigma = spread * 1e-3 if spread > 0 else 0.0
        if sigma == 0.0:
            return []
    found: list[int] = []
    pending = [(0, n)]
    while pending and len(found) < max_points:
        lo, hi = pending.pop()
        k = _best_split(vs, lo, hi, size)
        if k is None:
            continue
        left, right = vs[lo:k], vs[k:hi]
        shift = median(right) - median(left)
        local = median(vs[k : k + size]) - median(vs[k - size : k])
        strength = abs(shift) / (sigma * math.sqrt(1 / len(left) + 1 / len(right)))
        if (
            abs(shift) >= min_sigma * sigma
            and strength >= z
            and abs(local) >= 0.5 * abs(shift)
            and local * shift > 0
        ):
            found.append(k)
            pending.extend(((lo, k), (k, hi)))
    found.sort()
    bounds = [0, *found, n]
    out: list[ChangePoint] = []
    for position, k in enumerate(found, start=1):
        before = median(vs[bounds[position - 1] : k])
        after = median(vs[k : bounds[position + 1]])
        out.append(
            ChangePoint(
                timestamp=ts[k],
                index=k,
                before=before,
                after=after,
                score=abs(after - before) / sigma,
            )
        )
    return out
