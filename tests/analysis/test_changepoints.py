"""Level shifts are found with their time and size; ramps, noise and spikes are not."""

from __future__ import annotations

import math
import random

from paca_otel.analysis.changepoints import change_points, noise_sigma


def series(
    levels: list[tuple[int, float]], *, noise: float = 1.0, seed: int = 2
) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    values: list[float] = []
    for count, level in levels:
        values += [level + rng.gauss(0, noise) for _ in range(count)]
    return [i * 300.0 for i in range(len(values))], values


def test_finds_one_shift_at_its_time() -> None:
    """A step from 100 to 110 (10 sigma) is found at the right point with its size."""
    times, values = series([(150, 100.0), (138, 110.0)])
    found = change_points(times, values)
    assert len(found) == 1
    assert abs(found[0].index - 150) <= 2
    assert abs(found[0].shift - 10.0) < 1.0
    assert found[0].relative > 0.09


def test_finds_two_shifts() -> None:
    """Up then down: two change points in order."""
    times, values = series([(100, 50.0), (100, 60.0), (100, 52.0)])
    found = change_points(times, values)
    assert [round(cp.index, -1) for cp in found] == [100, 200]
    assert found[0].shift > 0 > found[1].shift


def test_ramp_and_noise_give_none() -> None:
    """A steady ramp is a trend, not a staircase; pure noise has no shift."""
    rng = random.Random(3)
    times = [i * 300.0 for i in range(288)]
    ramp = [i * 0.2 + rng.gauss(0, 1.0) for i in range(288)]
    assert change_points(times, ramp) == []
    _, flat = series([(288, 5.0)])
    assert change_points(times, flat) == []


def test_spike_burst_is_not_a_shift() -> None:
    """A burst shorter than min_size stays an anomaly, not two change points."""
    times, values = series([(140, 10.0), (5, 40.0), (143, 10.0)])
    assert change_points(times, values) == []


def test_gaps_are_skipped() -> None:
    """NaN gaps do not stop the shift being found."""
    times, values = series([(150, 100.0), (138, 120.0)])
    values[20:40] = [math.nan] * 20
    found = change_points(times, values)
    assert len(found) == 1
    assert found[0].timestamp == 150 * 300.0 or abs(found[0].timestamp - 150 * 300.0) <= 600


def test_noise_sigma_ignores_level_shift() -> None:
    """The noise estimate from first differences is not inflated by a shift."""
    _, values = series([(200, 0.0), (200, 50.0)], noise=2.0)
    assert 1.6 < noise_sigma(values) < 2.4
