"""Scoring of anomaly detections the way the Numenta Anomaly Benchmark (NAB) scores them.

This module turns per-row anomaly scores plus labelled anomaly windows into NAB's normalised
score, so the detectors in :mod:`paca_otel.analysis.detectors` can be measured on the public
benchmark (``benchmarks/anomaly_nab.py``) and users can score them, or their own detectors, on
incidents they labelled in the same format. It is hand-written because NAB ships as an
application (Python 2 era, pandas-based, tied to its repository layout), not as a library.

The rules, from NAB's description of its scoring (profiles "standard", "reward_low_FP_rate",
"reward_low_FN_rate"):

- The first 15 % of a file (at most 750 rows) is a probation period and is not scored.
- Inside a window only the first detection counts. It earns ``tp_weight`` times the scaled
  sigmoid of its position ``p`` (``-1`` at the window's first row, towards ``0`` at its last),
  divided by the sigmoid's value at ``p = -1`` so the earliest detection earns ``tp_weight``.
- A window without detection costs ``fn_weight``.
- A detection outside every window costs ``fp_weight`` times the scaled sigmoid of its distance
  past the end of the previous window (in units of that window's width minus one), or the full
  ``fp_weight`` when no window precedes it.
- A corpus' raw score is the sum over its files; it is normalised as
  ``100 * (raw - null) / (perfect - null)`` where the null detector never fires and the perfect
  one fires on the first row of every window and nowhere else.

The best-threshold search sorts every scored row once and sweeps the threshold downwards,
updating the raw score incrementally: O(n log n) for the corpus instead of O(n) per threshold.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "LOW_FN",
    "LOW_FP",
    "PROFILES",
    "STANDARD",
    "CostProfile",
    "ScoredFile",
    "SweepResult",
    "best_threshold",
    "normalised_score",
    "probation_length",
    "scaled_sigmoid",
    "score_detections",
    "window_rows",
]


@dataclass(frozen=True, slots=True)
class CostProfile:
    """The weights NAB gives to true positives, false positives and missed windows."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


STANDARD = CostProfile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
LOW_FP = CostProfile("reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0)
LOW_FN = CostProfile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0)
PROFILES = (STANDARD, LOW_FP, LOW_FN)

_PROBATION_PERCENT = 0.15
_PROBATION_MAX_ROWS = 5000  # NAB caps probation at 15 % of 5,000 rows (750 rows)


def scaled_sigmoid(position: float) -> float:
    """NAB's reward curve: ``2 * sigmoid(-5 x) - 1``, and ``-1`` beyond three widths.

    Positive before ``x = 0`` (early detections in a window), negative after (false
    positives fade from 0 just after a window to -1 far from it).
    """
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_length(rows: int) -> int:
    """Rows at the start of a file that are not scored (15 %, at most 750)."""
    return min(
        math.floor(_PROBATION_PERCENT * rows), math.floor(_PROBATION_PERCENT * _PROBATION_MAX_ROWS)
    )


def window_rows(
    timestamps: Sequence[str], windows: Sequence[tuple[str, str]]
) -> list[tuple[int, int]]:
    """Map labelled windows to inclusive row ranges.

    Timestamps compare as strings, which is exact for NAB's fixed-width
    ``YYYY-MM-DD HH:MM:SS[.ffffff]`` form; a window covers the rows whose timestamp lies in
    ``[start, end]``. Windows that cover no row are dropped (NAB labels never do that).
    """
    keys = [ts[:19] for ts in timestamps]
    rows = []
    for start, end in windows:
        first = bisect.bisect_left(keys, start[:19])
        last = bisect.bisect_right(keys, end[:19]) - 1
        if first <= last:
            rows.append((first, last))
    return rows


@dataclass(frozen=True, slots=True)
class ScoredFile:
    """One file's rows as the scorer sees them: what a detection on each row would be worth.

    Attributes:
        weights: per row, the profile-weighted score a detection there earns (a window row)
            or costs (any other row); ``None`` for probation rows, which are not scored.
        window_of: per row, the index of the window it lies in, or ``-1``.
        windows: how many windows the file has.
    """

    weights: tuple[float | None, ...]
    window_of: tuple[int, ...]
    windows: int

    @classmethod
    def build(
        cls, rows: int, windows: Sequence[tuple[int, int]], profile: CostProfile
    ) -> ScoredFile:
        """Precompute each row's worth, following NAB's sweeper row by row."""
        probation = probation_length(rows)
        max_tp = scaled_sigmoid(-1.0)
        weights: list[float | None] = []
        window_of: list[int] = []
        ordered = sorted(windows)
        current = 0  # index of the next window not yet finished
        prev_end: int | None = None
        prev_width = 0
        for row in range(rows):
            while current < len(ordered) and row > ordered[current][1]:
                prev_end = ordered[current][1]
                prev_width = ordered[current][1] - ordered[current][0] + 1
                current += 1
            inside = current < len(ordered) and ordered[current][0] <= row
            if inside:
                start, end = ordered[current]
                position = -(end - row + 1) / (end - start + 1)
                weight = scaled_sigmoid(position) * profile.tp_weight / max_tp
                window_of.append(current)
            else:
                if prev_end is None:
                    weight = -profile.fp_weight
                else:
                    # NAB divides by (width - 1); a one-row window would divide by zero.
                    past = abs(row - prev_end) / max(prev_width - 1, 1)
                    weight = scaled_sigmoid(past) * profile.fp_weight
                window_of.append(-1)
            weights.append(None if row < probation else weight)
        return cls(tuple(weights), tuple(window_of), len(ordered))


def score_detections(scored: ScoredFile, detections: Sequence[bool], profile: CostProfile) -> float:
    """A file's raw score for one set of detections (one flag per row)."""
    best: dict[int, float] = {}
    raw = 0.0
    for weight, window, detected in zip(scored.weights, scored.window_of, detections, strict=True):
        if not detected or weight is None:
            continue
        if window < 0:
            raw += weight
        elif window not in best:
            best[window] = weight  # the first detection is the earliest, hence the best
    raw += sum(best.values()) - profile.fn_weight * (scored.windows - len(best))
    return raw


def normalised_score(raw: float, windows: int, profile: CostProfile) -> float:
    """``100 * (raw - null) / (perfect - null)`` over a corpus with ``windows`` windows."""
    null = -profile.fn_weight * windows
    perfect = profile.tp_weight * windows
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)


@dataclass(frozen=True, slots=True)
class SweepResult:
    """The best corpus-wide threshold and the normalised score it reaches."""

    threshold: float
    score: float
    raw: float


def best_threshold(
    files: Sequence[tuple[ScoredFile, Sequence[float]]], profile: CostProfile
) -> SweepResult:
    """Sweep one threshold over a corpus (``score >= threshold`` detects) and keep the best.

    Rows are visited from the highest score down; each row changes the raw score by its own
    false-positive cost, or by how much it improves its window's best detection (the first
    detection of a window replaces the window's miss penalty).
    """
    entries: list[tuple[float, float, int]] = []
    windows_total = 0
    for scored, scores in files:
        if len(scores) != len(scored.weights):
            msg = f"got {len(scores)} scores for a file of {len(scored.weights)} rows"
            raise ValueError(msg)
        for score, weight, window in zip(scores, scored.weights, scored.window_of, strict=True):
            if weight is not None:
                entries.append((score, weight, windows_total + window if window >= 0 else -1))
        windows_total += scored.windows
    entries.sort(key=lambda entry: -entry[0])
    raw = -profile.fn_weight * windows_total
    best_raw, best_at = raw, math.inf
    window_best: dict[int, float] = {}
    for index, (score, weight, window) in enumerate(entries):
        if window < 0:
            raw += weight
        else:
            seen = window_best.get(window)
            if seen is None:
                raw += weight + profile.fn_weight
                window_best[window] = weight
            elif weight > seen:
                raw += weight - seen
                window_best[window] = weight
        last_of_tie = index + 1 == len(entries) or entries[index + 1][0] != score
        if last_of_tie and raw > best_raw:
            best_raw, best_at = raw, score
    return SweepResult(best_at, normalised_score(best_raw, windows_total, profile), best_raw)
