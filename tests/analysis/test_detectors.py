"""Detectors find spikes, level shifts, seasonal breaks and survive gaps; scores are causal."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from paca_otel.analysis.detectors import (
    DETECTORS,
    AnomalyDetector,
    AnomalyResult,
    Calibration,
    EnsembleDetector,
    EwmaDetector,
    RobustZDetector,
    SeasonalDetector,
    create_detector,
)
from paca_otel.errors import ConfigError

STEP = 300.0  # 5-minute points, NAB's most common resolution
DAY = int(86_400 / STEP)
ALL = sorted(DETECTORS)


def _noise(n: int, seed: int, sigma: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(0.0, sigma) for _ in range(n)]


def _run(detector: AnomalyDetector, values: list[float], start: int = 0) -> list[AnomalyResult]:
    return [detector.update((start + i) * STEP, v) for i, v in enumerate(values)]


def _flagged(results: list[AnomalyResult]) -> list[int]:
    return [i for i, r in enumerate(results) if r.is_anomaly]


@pytest.mark.parametrize("name", ALL)
def test_finds_a_spike_in_noise(name: str) -> None:
    """One large spike after a long quiet stretch is flagged within a few points."""
    values = [50.0 + v for v in _noise(3000, 1)]
    values[2500] += 40.0
    flagged = _flagged(_run(create_detector(name), values))
    assert any(2500 <= i <= 2505 for i in flagged), flagged


@pytest.mark.parametrize("name", ALL)
def test_finds_a_level_shift_once(name: str) -> None:
    """A step of 10 sigma is flagged right after it starts, and only once."""
    values = [v + (10.0 if i >= 2500 else 0.0) for i, v in enumerate(_noise(3200, 2))]
    flagged = _flagged(_run(create_detector(name), values))
    hits = [i for i in flagged if i >= 2500]
    assert hits, flagged
    assert hits[0] <= 2510
    assert len([i for i in hits if i < 2600]) == 1  # the refractory period de-duplicates


@pytest.mark.parametrize("name", ["ensemble", "seasonal"])
def test_finds_a_missing_daily_peak(name: str) -> None:
    """A daily peak that does not come (values stay at the trough level) is flagged."""
    rng = random.Random(3)
    values = []
    for i in range(12 * DAY):
        phase = (i % DAY) / DAY
        peak = 20.0 if 0.4 < phase < 0.6 else 0.0
        if 10 * DAY <= i < 11 * DAY:
            peak = 0.0  # day 11: the peak is missing
        values.append(10.0 + peak + rng.gauss(0.0, 0.5))
    flagged = _flagged(_run(create_detector(name), values))
    assert any(10 * DAY + 0.4 * DAY <= i <= 10 * DAY + 0.6 * DAY for i in flagged), flagged


@pytest.mark.parametrize("name", ALL)
def test_false_alarm_rate_on_white_noise_is_a_few_per_10k_points(name: str) -> None:
    """On i.i.d. noise the default threshold fires about 2-3 times per 10,000 points."""
    values = _noise(40_000, 9)
    flagged = _flagged(_run(create_detector(name), values))
    assert len(flagged) <= 20, flagged


@pytest.mark.parametrize("name", ALL)
def test_stays_quiet_on_a_regular_daily_cycle(name: str) -> None:
    """A clean daily sine with noise raises no alert once learnt."""
    rng = random.Random(4)
    values = [
        100.0 + 30.0 * math.sin(2 * math.pi * i / DAY) + rng.gauss(0.0, 1.0)
        for i in range(10 * DAY)
    ]
    flagged = _flagged(_run(create_detector(name), values))
    assert not [i for i in flagged if i >= 3 * DAY], flagged


@pytest.mark.parametrize("name", ALL)
def test_gaps_do_not_raise_alerts_and_do_not_hide_a_spike(name: str) -> None:
    """Missing hours (timestamps jump) are not anomalies; a spike after the gap still is."""
    detector = create_detector(name)
    rng = random.Random(5)
    flagged = []
    t = 0.0
    for i in range(4000):
        t += STEP * (37 if i == 3000 else 1)  # a 3-hour gap before point 3000
        value = 10.0 + rng.gauss(0.0, 1.0) + (25.0 if i == 3500 else 0.0)
        if detector.update(t, value).is_anomaly:
            flagged.append(i)
    assert 3500 in flagged or 3501 in flagged, flagged
    assert not [i for i in flagged if 3000 <= i < 3500], flagged


@pytest.mark.parametrize("name", ALL)
def test_scores_are_in_unit_interval_and_labels_follow_threshold(name: str) -> None:
    """Every score is in [0, 1], and is_anomaly implies score >= threshold."""
    rng = random.Random(6)
    detector = create_detector(name)
    values = [rng.lognormvariate(0, 2) * (100 if rng.random() < 0.01 else 1) for _ in range(5000)]
    for result in _run(detector, values):
        assert 0.0 <= result.score <= 1.0
        assert not result.is_anomaly or result.score >= detector.threshold
        assert result.raw >= 0.0


@pytest.mark.parametrize("name", ALL)
def test_a_points_score_does_not_depend_on_later_points(name: str) -> None:
    """Causality: scoring a prefix gives the same results as scoring the prefix of a longer run."""
    values = [v + (8.0 if 1500 <= i < 1600 else 0.0) for i, v in enumerate(_noise(2500, 7))]
    full = _run(create_detector(name), values)
    for cut in (400, 1550, 2100):
        assert _run(create_detector(name), values[:cut]) == full[:cut]


@pytest.mark.parametrize("name", ALL)
def test_non_finite_values_are_missing_samples(name: str) -> None:
    """nan/inf score 0 and leave the state as if they were absent."""
    values = _noise(1500, 8)
    plain = _run(create_detector(name), values)
    detector = create_detector(name)
    with_gaps = []
    for i, v in enumerate(values):
        if i in (700, 900):
            assert detector.update(i * STEP - 1, math.nan) == AnomalyResult(0.0, False, 0.0)
            assert not detector.update(i * STEP - 1, math.inf).is_anomaly
        with_gaps.append(detector.update(i * STEP, v))
    assert with_gaps == plain


def test_flat_line_then_change_is_flagged() -> None:
    """A constant series (MAD 0) that moves is flagged instead of dividing by zero."""
    values = [5.0] * 2000 + [6.0] * 100
    flagged = _flagged(_run(RobustZDetector(), values))
    assert flagged
    assert flagged[0] == 2000


def test_results_are_frozen_and_slotted() -> None:
    """Per-point results are small immutable objects."""
    result = AnomalyResult(0.5, True, 3.0)
    assert not hasattr(result, "__dict__")
    with pytest.raises(AttributeError):
        result.score = 1.0  # type: ignore[misc]  # the point of the test: frozen
    assert result == AnomalyResult(score=0.5, is_anomaly=True, raw=3.0)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: Calibration(threshold=0.0), "threshold"),
        (lambda: Calibration(threshold=1.5), "threshold"),
        (lambda: Calibration(suppress=-1), "suppress"),
        (lambda: Calibration(novelty=-0.1), "novelty"),
        (lambda: EwmaDetector(alpha=1.0), "alpha"),
        (lambda: EwmaDetector(beta=0.0), "beta=0.0"),
        (lambda: SeasonalDetector(period=0.0), "period"),
        (lambda: EnsembleDetector(window=1), "window size"),
        (lambda: create_detector("prophet"), "unknown detector 'prophet'"),
    ],
)
def test_bad_settings_raise_config_errors(factory: Callable[[], object], match: str) -> None:
    """Invalid parameters fail at construction with a ConfigError (a ValueError)."""
    with pytest.raises(ConfigError, match=match):
        factory()


@pytest.mark.parametrize("name", ALL)
def test_a_slow_drift_to_levels_never_seen_is_flagged(name: str) -> None:
    """A drift too slow for any z-score is caught when it leaves the recent range."""
    rng = random.Random(10)
    values = [50.0 + rng.uniform(-5.0, 5.0) for _ in range(3000)]
    values += [50.0 - 0.02 * i + rng.uniform(-5.0, 5.0) for i in range(1500)]
    flagged = _flagged(_run(create_detector(name), values))
    assert [i for i in flagged if i >= 3000], flagged


def test_novelty_can_be_turned_off() -> None:
    """Calibration(novelty=None): only the likelihood decides."""
    values = [float(i % 7) for i in range(2000)] + [7.5]
    with_novelty = _run(RobustZDetector(), values)[-1]
    without = _run(RobustZDetector(calibration=Calibration(novelty=None)), values)[-1]
    assert with_novelty.is_anomaly
    assert with_novelty.score == 1.0
    assert not without.is_anomaly


def test_ensemble_covers_the_first_period_with_the_level_view() -> None:
    """Before a day of history exists, the ensemble's likelihood sees a spike; seasonal's can't."""
    values = [10.0 + v for v in _noise(DAY - 10, 11)]  # less than a day at 5 minutes
    values[-5] += 30.0
    calibration = Calibration(learn=100, novelty=None)
    flagged = _flagged(_run(EnsembleDetector(calibration=calibration), values))
    assert len(flagged) == 1
    assert DAY - 15 <= flagged[0] <= DAY - 11  # the short average may need a point or two
    assert not _flagged(_run(SeasonalDetector(calibration=calibration), values))


@pytest.mark.parametrize("name", ["ensemble", "seasonal"])
def test_noise_that_follows_the_day_is_learnt_per_phase(name: str) -> None:
    """Loud daytime noise raises no alerts once learnt; a night-time jump of the same size does."""
    rng = random.Random(15)
    values = []
    for i in range(12 * DAY):
        day_time = 0.3 < (i % DAY) / DAY < 0.7
        values.append(100.0 + rng.gauss(0.0, 8.0 if day_time else 1.0))
    night = 11 * DAY + 10
    for i in range(night, night + 6):
        values[i] += 25.0
    flagged = _flagged(_run(create_detector(name), values))
    assert len([i for i in flagged if 4 * DAY <= i < 11 * DAY]) <= 2, flagged
    assert any(night <= i <= night + 6 for i in flagged), flagged
