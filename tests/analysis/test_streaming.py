"""Streaming blocks: rolling median/MAD, likelihood calibration, seasonal profile."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from paca_otel.analysis._streaming import (
    AnomalyLikelihood,
    RangeNovelty,
    RollingRobust,
    SeasonalProfile,
    exact_mad,
    log_tail,
)
from paca_otel.errors import ConfigError


def _mad(values: list[float]) -> float:
    ordered = sorted(values)
    centre = ordered[len(ordered) // 2]
    deviations = sorted(abs(v - centre) for v in ordered)
    return deviations[len(deviations) // 2]


@pytest.mark.parametrize("size", [2, 3, 4, 5, 10, 11, 100, 101])
def test_exact_mad_matches_brute_force(size: int) -> None:
    """The O(log n) MAD equals sorting all distances from the median, ties included."""
    rng = random.Random(size)
    for _ in range(200):
        values = sorted(float(rng.randint(0, 6)) if rng.random() < 0.5 else rng.gauss(0, 1)
                        for _ in range(size))  # fmt: skip
        assert exact_mad(values) == _mad(values)


def test_rolling_window_keeps_the_last_values_only() -> None:
    """Median and MAD describe the last `size` values, refreshed every `scale_every`."""
    rng = random.Random(1)
    window = RollingRobust(50, scale_every=1)
    seen: list[float] = []
    for _ in range(500):
        value = rng.expovariate(1.0)
        window.push(value)
        seen.append(value)
        last = seen[-50:]
        assert window.median() == sorted(last)[len(last) // 2]
        assert window.mad() == _mad(last)
        assert window.spread() == max(last) - min(last)
    assert len(window) == 50


def test_log_tail_matches_erfc_and_stays_finite_far_out() -> None:
    """log P(Z > z) is exact below 5 sigma, close above, and never -inf."""
    for z in (0.0, 1.0, 3.0, 4.9):
        assert log_tail(z) == pytest.approx(math.log(0.5 * math.erfc(z / math.sqrt(2))))
    assert log_tail(6.0) == pytest.approx(math.log(0.5 * math.erfc(6 / math.sqrt(2))), rel=0.01)
    assert math.isfinite(log_tail(1000.0))
    assert log_tail(40.0) < log_tail(30.0)


def test_likelihood_is_zero_while_learning_and_on_typical_values() -> None:
    """No score before `learn` points; ordinary noise scores far below 0.5."""
    rng = random.Random(2)
    likelihood = AnomalyLikelihood(short=5, long=1000, learn=100)
    scores = [likelihood.score(abs(rng.gauss(0, 1))) for _ in range(2000)]
    assert scores[:100] == [0.0] * 100
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores) < 0.5


def test_likelihood_scores_a_sustained_deviation_high() -> None:
    """A run of large deviations reaches the natural 0.5 threshold and stays within [0, 1]."""
    rng = random.Random(3)
    likelihood = AnomalyLikelihood(short=5, long=1000, learn=100)
    for _ in range(1000):
        likelihood.score(abs(rng.gauss(0, 1)))
    scores = [likelihood.score(8.0) for _ in range(5)]
    assert max(scores) >= 0.5
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_likelihood_on_a_flat_history_does_not_divide_by_zero() -> None:
    """A perfectly constant history still yields a finite, bounded score."""
    likelihood = AnomalyLikelihood(short=1, long=100, learn=10)
    for _ in range(100):
        likelihood.score(0.0)
    assert likelihood.score(1.0) == 1.0


def test_seasonal_profile_is_indexed_by_time_so_gaps_keep_it_aligned() -> None:
    """After a gap of several hours the residual is still taken against the same hour."""
    profile = SeasonalProfile(period=86_400.0, smoothing=1.0)
    step = 3600.0

    def value(t: float) -> float:
        return 10.0 * math.sin(2 * math.pi * t / 86_400.0)

    residuals = []
    t = 0.0
    while t < 5 * 86_400.0:
        if not 2 * 86_400.0 < t < 2 * 86_400.0 + 7 * step:  # a 7-hour gap on day 3
            residual = profile.residual(t, value(t))
            if t >= 2 * 86_400.0:
                residuals.append(residual)
        t += step
    assert all(r is not None and abs(r) < 1e-9 for r in residuals)


def test_seasonal_profile_is_disabled_for_too_coarse_sampling() -> None:
    """Fewer than four points per period: no profile, residual is None."""
    profile = SeasonalProfile(period=86_400.0)
    assert all(profile.residual(43_200.0 * i, 1.0) is None for i in range(40))
    assert profile.disabled
    assert profile.bin_width == 0.0


def test_bad_parameters_raise_config_errors() -> None:
    """Windows and periods are validated with errors naming the value."""
    with pytest.raises(ConfigError, match="at least 3"):
        RollingRobust(2)
    with pytest.raises(ConfigError, match="short=0"):
        AnomalyLikelihood(short=0)
    with pytest.raises(ConfigError, match="period"):
        SeasonalProfile(period=0)
    with pytest.raises(ConfigError, match="tolerance"):
        RangeNovelty(tolerance=-1.0)


def test_range_novelty_flags_values_beyond_the_recent_range_plus_tolerance() -> None:
    """Only values more than 5 % of the range beyond it are novel; old extremes expire."""
    novelty = RangeNovelty(size=100, tolerance=0.05)
    for i in range(100):
        novel = novelty.novel(float(i % 10))
        assert novel is (1 < i < 10)  # 2..9 extend it (after 0, 0 has no range yet)
    assert not novelty.novel(9.4)  # range 0..9: within 0.45 of the max
    assert novelty.novel(9.9)  # range 0..9.4: beyond 9.4 + 0.47
    assert not novelty.novel(-0.45)  # range 0..9.9: within 0.495 of the min
    assert novelty.novel(-1.0)
    for _ in range(100):
        novelty.novel(5.0)  # the old extremes leave the window...
    assert not novelty.novel(5.0)  # ...and a constant history has no range to exceed
    assert novelty.novel(6.0) is False


def test_range_novelty_matches_brute_force_rolling_min_max() -> None:
    """The monotonic-deque min/max equal min()/max() over the last `size` values."""
    rng = random.Random(12)
    novelty = RangeNovelty(size=30, tolerance=0.1)
    history: list[float] = []
    for _ in range(3000):
        value = rng.gauss(0.0, 1.0) * (5 if rng.random() < 0.02 else 1)
        window = history[-30:]
        expected = False
        if window and max(window) > min(window):
            margin = 0.1 * (max(window) - min(window))
            expected = value > max(window) + margin or value < min(window) - margin
        assert novelty.novel(value) is expected
        history.append(value)


def test_seasonal_profile_finds_the_interval_despite_an_early_gap_and_jitter() -> None:
    """The bin width is the median early interval; jittered phases fall back to a neighbour."""
    rng = random.Random(13)
    profile = SeasonalProfile(period=86_400.0, smoothing=0.5)
    stamps = [0.0, 7200.0] + [7200.0 + 300.0 * i for i in range(1, 288 * 4)]  # 2 h gap first
    stamps = [t + rng.uniform(-100.0, 100.0) if i > 20 else t for i, t in enumerate(stamps)]
    residuals = [profile.residual(t, 5.0) for t in stamps]
    assert profile.bin_width == 300.0
    late = residuals[288 * 2 :]
    assert all(r == 0.0 for r in late)  # a constant series: every late phase has a baseline


def test_seasonal_profile_shares_bins_when_sampled_finer_than_max_bins() -> None:
    """One-second data over a day uses max_bins bins of several points instead of none."""
    profile = SeasonalProfile(period=86_400.0, max_bins=1440)
    for t in range(20):
        profile.residual(float(t), 1.0)
    assert profile.bin_width == 60.0
    assert not profile.disabled


def test_seasonal_profile_reports_noisier_phases_but_never_quieter_ones() -> None:
    """The noise factor is ~ phase spread / series spread where that is above 1, else 1."""
    rng = random.Random(14)
    profile = SeasonalProfile(period=86_400.0, smoothing=0.2, spread_window=288)
    factors: dict[str, list[float]] = {"noisy": [], "quiet": []}
    for i in range(288 * 20):
        noisy = (i % 288) < 72  # a quarter of the day has 10x the noise
        observed = profile.observe(300.0 * i, rng.gauss(0.0, 10.0 if noisy else 1.0))
        if observed is not None and i > 288 * 10:
            factors["noisy" if noisy else "quiet"].append(observed[1])
    assert min(factors["quiet"]) == 1.0
    assert statistics.median(factors["noisy"]) > 2.0
