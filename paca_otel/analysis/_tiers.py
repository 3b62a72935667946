"""The history store's retention and downsampling tiers, and which one answers a query.

A tier is a resolution and how long it is kept: raw samples for 24 h, 1 min points for 7 days
and 1 h points for 90 days by default (``history_tiers="raw:24h,1m:7d,1h:90d"``). Each
coarser tier is rolled up from the one before it, keeping min, max, sum and count per point
(:mod:`paca_otel.analysis._rollup`), so means and extremes survive. A query is answered by
the coarsest tier that still covers its start and whose resolution divides its step (the same
answer as a finer tier, from fewer points), else by the finest tier that covers its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from paca_otel.errors import ConfigError, RuleError
from paca_otel.rules._rule import parse_duration

__all__ = ["DEFAULT_TIERS", "Tier", "choose_tier", "parse_tiers"]


@dataclass(frozen=True, slots=True)
class Tier:
    """One resolution of the history and how long its points are kept.

    Attributes:
        resolution_ms: Bucket width in milliseconds; 0 for raw samples.
        retention_ms: Milliseconds points are kept after their timestamp.
    """

    resolution_ms: int
    retention_ms: int

    @property
    def raw(self) -> bool:
        """Whether this tier holds raw samples."""
        return self.resolution_ms == 0


DEFAULT_TIERS_TEXT = "raw:24h,1m:7d,1h:90d"
"""The default of the ``history_tiers`` setting."""


def parse_tiers(text: str, setting: str = "history_tiers") -> tuple[Tier, ...]:
    """Tiers from ``"raw:24h,1m:7d,1h:90d"``: ``resolution:retention`` pairs, finest first.

    Raises:
        ConfigError: not that form; the first is not ``raw``; resolutions do not grow, or a
            coarser one is not a multiple of the finer; or retentions shrink.
    """
    tiers: list[Tier] = []
    allowed = f"expected comma-separated resolution:retention pairs like {DEFAULT_TIERS_TEXT!r}"
    for index, item in enumerate(part.strip() for part in text.split(",")):
        resolution, sep, retention = item.partition(":")
        if not sep:
            msg = f"{setting}={text!r}: {item!r} has no ':'; {allowed}"
            raise ConfigError(msg)
        try:
            keep = round(parse_duration(retention.strip(), setting) * 1000)
            width = (
                0
                if resolution.strip() == "raw"
                else round(parse_duration(resolution.strip(), setting) * 1000)
            )
        except RuleError as exc:
            msg = f"{setting}={text!r}: {exc}; {allowed}"
            raise ConfigError(msg) from None
        if (index == 0) != (width == 0):
            msg = f"{setting}={text!r}: the first tier, and only it, must be 'raw'; {allowed}"
            raise ConfigError(msg)
        if keep <= 0:
            msg = f"{setting}={text!r}: retention of {item!r} must be more than 0"
            raise ConfigError(msg)
        if tiers:
            before = tiers[-1]
            if width <= before.resolution_ms or (
                before.resolution_ms and width % before.resolution_ms
            ):
                msg = (
                    f"{setting}={text!r}: resolution of {item!r} must be coarser than, and a "
                    "multiple of, the tier before it"
                )
                raise ConfigError(msg)
            if keep < before.retention_ms:
                msg = (
                    f"{setting}={text!r}: {item!r} must be kept at least as long as the tier before"
                )
                raise ConfigError(msg)
        tiers.append(Tier(width, keep))
    return tuple(tiers)


DEFAULT_TIERS = parse_tiers(DEFAULT_TIERS_TEXT)


def choose_tier(tiers: Sequence[Tier], now_ms: int, start_ms: int, step_ms: int) -> int:
    """Index of the tier that answers a query from ``start_ms`` at ``step_ms``.

    The coarsest tier that covers ``start_ms`` and whose buckets nest in the query's (its
    resolution divides the step and the start): exact, and the fewest points to read. Else
    the finest tier covering ``start_ms``; else the longest-kept one.
    """
    covering = [i for i, tier in enumerate(tiers) if now_ms - tier.retention_ms <= start_ms]
    if not covering:
        return len(tiers) - 1
    exact = [
        i
        for i in covering
        if tiers[i].raw
        or (step_ms % tiers[i].resolution_ms == 0 and start_ms % tiers[i].resolution_ms == 0)
    ]
    return exact[-1] if exact else covering[0]
