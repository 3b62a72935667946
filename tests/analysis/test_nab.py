"""NAB scoring on tiny hand-made cases: sigmoid, probation, windows, normalisation, sweep."""

from __future__ import annotations

import math
import random

import pytest

from paca_otel.analysis._nab import (
    LOW_FN,
    LOW_FP,
    STANDARD,
    CostProfile,
    ScoredFile,
    best_threshold,
    normalised_score,
    probation_length,
    scaled_sigmoid,
    score_detections,
    window_rows,
)

MAX_TP = 2.0 / (1.0 + math.exp(-5.0)) - 1.0  # scaled_sigmoid(-1)


def test_scaled_sigmoid_matches_nab_formula() -> None:
    """2*sigmoid(-5x) - 1: 0 at the window's end, ~0.987 at its start, -1 past three widths."""
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(-1.0) == pytest.approx(MAX_TP)
    assert scaled_sigmoid(1.0) == pytest.approx(2.0 / (1.0 + math.exp(5.0)) - 1.0)
    assert scaled_sigmoid(3.0) == pytest.approx(2.0 / (1.0 + math.exp(15.0)) - 1.0)
    assert scaled_sigmoid(3.01) == -1.0


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    """15 % of the rows (floored), never more than 750."""
    assert probation_length(100) == 15
    assert probation_length(1000) == 150
    assert probation_length(4032) == 604
    assert probation_length(22695) == 750


def test_window_rows_cover_inclusive_timestamp_ranges() -> None:
    """A window maps to the first and last rows whose timestamps lie inside it."""
    stamps = [f"2020-01-01 00:{minute:02d}:00" for minute in range(10)]
    windows = [("2020-01-01 00:02:00.000000", "2020-01-01 00:04:00.000000")]
    assert window_rows(stamps, windows) == [(2, 4)]
    assert window_rows(stamps, [("2020-01-01 00:02:30", "2020-01-01 00:02:40")]) == []


def _file(rows: int, windows: list[tuple[int, int]], profile: CostProfile = STANDARD) -> ScoredFile:
    return ScoredFile.build(rows, windows, profile)


def test_tp_weight_is_one_at_the_window_start_and_falls_towards_its_end() -> None:
    """First row of a window earns tp_weight; position p = -(end - row + 1) / width."""
    scored = _file(40, [(20, 29)])
    assert scored.weights[20] == pytest.approx(1.0)
    assert scored.weights[29] == pytest.approx(scaled_sigmoid(-0.1) / MAX_TP)
    assert scored.weights[25] == pytest.approx(scaled_sigmoid(-0.5) / MAX_TP)
    assert scored.window_of[19] == -1
    assert scored.window_of[20] == scored.window_of[29] == 0


def test_fp_costs_full_weight_before_any_window_and_fades_in_after_one() -> None:
    """Before the first window an FP costs -fp_weight; after one, the sigmoid of its distance."""
    scored = _file(40, [(20, 29)])
    assert scored.weights[10] == pytest.approx(-0.11)
    # NAB: distance past the window's last row, in units of (width - 1) = 9 rows.
    assert scored.weights[30] == pytest.approx(0.11 * scaled_sigmoid(1 / 9))
    assert scored.weights[38] == pytest.approx(0.11 * scaled_sigmoid(9 / 9))
    assert scored.weights[0] is None  # probation: 15 % of 40 rows = 6 rows
    assert scored.weights[5] is None
    assert scored.weights[6] is not None


def test_only_the_first_detection_in_a_window_counts() -> None:
    """Two detections in one window earn the earlier one's reward, once."""
    scored = _file(40, [(20, 29)])
    one = [row == 25 for row in range(40)]
    two = [row in (25, 27) for row in range(40)]
    assert score_detections(scored, one, STANDARD) == pytest.approx(scored.weights[25])
    assert score_detections(scored, two, STANDARD) == pytest.approx(scored.weights[25])


def test_missed_windows_cost_fn_weight_and_probation_detections_are_ignored() -> None:
    """No detection costs -fn_weight per window; detections in probation change nothing."""
    scored = _file(40, [(10, 14), (20, 29)])
    assert score_detections(scored, [False] * 40, STANDARD) == pytest.approx(-2.0)
    assert score_detections(scored, [False] * 40, LOW_FN) == pytest.approx(-4.0)
    early = [row < 6 for row in range(40)]
    assert score_detections(scored, early, STANDARD) == pytest.approx(-2.0)


def test_profiles_weigh_false_positives_differently() -> None:
    """The low-FP profile charges twice the standard profile for the same false positive."""
    standard = _file(40, [(20, 29)], STANDARD)
    low_fp = _file(40, [(20, 29)], LOW_FP)
    detections = [row == 10 for row in range(40)]
    assert score_detections(standard, detections, STANDARD) == pytest.approx(-1.11)
    assert score_detections(low_fp, detections, LOW_FP) == pytest.approx(-1.22)


def test_normalisation_maps_null_to_0_and_perfect_to_100() -> None:
    """100 * (raw - null) / (perfect - null) over the corpus' windows."""
    assert normalised_score(-5.0, 5, STANDARD) == 0.0
    assert normalised_score(5.0, 5, STANDARD) == 100.0
    assert normalised_score(0.0, 5, STANDARD) == 50.0
    assert normalised_score(0.0, 5, LOW_FN) == pytest.approx(100 * 10 / 15)


def test_perfect_detector_scores_100() -> None:
    """Detecting every window on its first row and nowhere else is a perfect 100."""
    scored = _file(100, [(30, 39), (70, 79)])
    detections = [row in (30, 70) for row in range(100)]
    raw = score_detections(scored, detections, STANDARD)
    assert normalised_score(raw, 2, STANDARD) == pytest.approx(100.0)


def test_threshold_sweep_matches_brute_force() -> None:
    """The incremental sweep finds the same best raw score as trying every threshold."""
    rng = random.Random(7)
    files = []
    for rows, windows in ((60, [(20, 29)]), (80, [(30, 34), (50, 59)]), (50, [])):
        scores = [round(rng.random(), 2) for _ in range(rows)]
        files.append((_file(rows, windows), scores))
    result = best_threshold(files, STANDARD)
    brute = -math.inf
    for threshold in sorted({s for _, scores in files for s in scores}):
        raw = sum(
            score_detections(scored, [s >= threshold for s in scores], STANDARD)
            for scored, scores in files
        )
        brute = max(brute, raw)
    brute = max(brute, -3.0)  # never firing is a candidate too
    assert result.raw == pytest.approx(brute)
    at_best = sum(
        score_detections(scored, [s >= result.threshold for s in scores], STANDARD)
        for scored, scores in files
    )
    assert at_best == pytest.approx(result.raw)
    assert result.score == pytest.approx(normalised_score(result.raw, 3, STANDARD))


def test_sweep_rejects_a_score_list_of_the_wrong_length() -> None:
    """One score per row, or a clear error."""
    with pytest.raises(ValueError, match="3 scores for a file of 40 rows"):
        best_threshold([(_file(40, []), [0.0, 0.0, 0.0])], STANDARD)


def test_sweep_on_ties_treats_equal_scores_as_one_threshold() -> None:
    """Rows with equal scores are detected together (score >= threshold)."""
    scored = _file(40, [(20, 29)])
    scores = [0.0] * 40
    for row in (10, 25):
        scores[row] = 0.7
    result = best_threshold([(scored, scores)], STANDARD)
    both = [s >= 0.7 for s in scores]
    assert result.raw == pytest.approx(score_detections(scored, both, STANDARD))
    assert result.threshold == 0.7
