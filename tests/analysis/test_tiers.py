"""Tiers: parsing ``history_tiers`` and choosing the tier that answers a query."""

from __future__ import annotations

import pytest

from paca_otel.analysis._tiers import DEFAULT_TIERS, choose_tier, parse_tiers
from paca_otel.errors import ConfigError

HOUR = 3_600_000
DAY = 24 * HOUR


def test_tiers_parse_and_reject_bad_settings() -> None:
    """history_tiers reads 'raw:24h,1m:7d,1h:90d'; nonsense names the setting and the rule."""
    raw, minute, hour = parse_tiers("raw:24h,1m:7d,1h:90d")
    assert (raw.resolution_ms, raw.retention_ms) == (0, 86_400_000)
    assert (minute.resolution_ms, hour.resolution_ms) == (60_000, 3_600_000)
    for bad, why in [
        ("1m:7d", "must be 'raw'"),
        ("raw:1d,raw:2d", "must be 'raw'"),
        ("raw:1d,1m", "no ':'"),
        ("raw:1d,1m:7x", "not a duration"),
        ("raw:1d,1h:7d,1m:30d", "coarser"),
        ("raw:1d,1m:7d,90s:30d", "multiple"),
        ("raw:7d,1m:1d", "at least as long"),
        ("raw:0s", "more than 0"),
    ]:
        with pytest.raises(ConfigError, match="history_tiers") as info:
            parse_tiers(bad)
        assert why in str(info.value), (bad, info.value)


def test_the_coarsest_exact_tier_that_covers_the_start_answers() -> None:
    """Raw for 10 s steps; 1 min tier for minute steps; coarser only when finer data expired."""
    now = 100 * DAY
    assert choose_tier(DEFAULT_TIERS, now, now - HOUR, 10_000) == 0
    assert choose_tier(DEFAULT_TIERS, now, now - HOUR, 60_000) == 1
    assert choose_tier(DEFAULT_TIERS, now, now - HOUR, 7_200_000) == 2
    assert choose_tier(DEFAULT_TIERS, now, now - HOUR + 1, 60_000) == 0  # unaligned start
    assert choose_tier(DEFAULT_TIERS, now, now - 2 * DAY, 10_000) == 1  # raw has expired
    assert choose_tier(DEFAULT_TIERS, now, now - 30 * DAY, 60_000) == 2
    assert choose_tier(DEFAULT_TIERS, now, now - 365 * DAY, 60_000) == 2  # nothing covers it
