"""Service level objectives from the RED figures, and their error budget over a period.

Two kinds, both computed from what the pipeline already records
(:mod:`paca_otel.analysis._red`):

- *Availability*: the share of requests that succeed (not 5xx / span ERROR), e.g. 99.9 %.
  The error budget is the ``1 - objective`` share of requests allowed to fail; budget
  remaining is ``1 - failed / allowed`` (negative once overspent), and the burn rate is the
  observed error ratio over the allowed one (1 = spending the budget exactly by the end).
- *Latency*: the share of time slices (query steps) in which the chosen percentile
  (p50/p95/p99) stays under a threshold, e.g. "p99 under 300 ms in 99 % of minutes". This
  is the *windows-based* SLI of the SRE workbook. A per-request latency SLI needs the count
  of requests under the threshold, which the in-process series do not keep (they keep
  percentiles); a time-slice SLI is honest about what is measured rather than an
  interpolation presented as a count.

Burn-rate alert presets for availability objectives live in
:mod:`paca_otel.analysis._slo_rules`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from paca_otel.analysis._red import Period, read_red
from paca_otel.analysis.source import LabelMatcher, SeriesSource
from paca_otel.errors import ConfigError

__all__ = ["SLO", "SLOStatus", "slo_status"]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PERCENTILES = (50, 95, 99)


@dataclass(frozen=True, slots=True)
class SLO:
    """One objective.

    Attributes:
        name: identifier (letters, digits, ``_``): names the generated alert rules.
        objective: target share of good requests (availability) or good time slices
            (latency), in (0, 1), e.g. ``0.999``.
        kind: ``availability`` or ``latency``.
        threshold: latency objectives: the slowest acceptable percentile, seconds.
        percentile: latency objectives: which percentile (50, 95 or 99).
        route: restrict to one route template (``""``: all routes together).
        method: restrict to one HTTP method (``""``: every method of ``route``; with no
            route either, the all-routes series).
    """

    name: str
    objective: float
    kind: Literal["availability", "latency"] = "availability"
    threshold: float | None = None
    percentile: int = 99
    route: str = ""
    method: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            msg = f"SLO name {self.name!r} is invalid: use letters, digits and '_'"
            raise ConfigError(msg)
        if not (0.0 < self.objective < 1.0) or not math.isfinite(self.objective):
            msg = (
                f"SLO {self.name}: objective must be in (0, 1), e.g. 0.999, got {self.objective!r}"
            )
            raise ConfigError(msg)
        if self.kind not in ("availability", "latency"):
            msg = f"SLO {self.name}: kind must be 'availability' or 'latency', got {self.kind!r}"
            raise ConfigError(msg)
        if self.kind == "latency":
            if self.threshold is None or not self.threshold > 0:
                msg = (
                    f"SLO {self.name}: a latency SLO needs threshold > 0 seconds,"
                    f" got {self.threshold!r}"
                )
                raise ConfigError(msg)
            if self.percentile not in _PERCENTILES:
                msg = (
                    f"SLO {self.name}: percentile must be one of {_PERCENTILES},"
                    f" got {self.percentile!r}"
                )
                raise ConfigError(msg)

    @property
    def budget(self) -> float:
        """The error budget: the share allowed to be bad (``1 - objective``)."""
        return round(1.0 - self.objective, 12)  # 0.001, not 0.0010000000000000009

    def matchers(self) -> tuple[LabelMatcher, ...]:
        """Label matchers of the RED alias series this SLO reads.

        No route and no method: the all-routes series. A route without a method: every
        method of that route (the series are per route and method, so status sums them and
        burn-rate rules alert per method).
        """
        if self.route and not self.method:
            return (LabelMatcher("route", "=", self.route),)
        return (LabelMatcher("route", "=", self.route), LabelMatcher("method", "=", self.method))

    @property
    def target(self) -> str:
        """What the SLO covers, for people: ``all routes`` or ``GET /checkout``."""
        if not self.route and not self.method:
            return "all routes"
        return f"{self.method or 'any method'} {self.route or 'any route'}"

    def describe(self) -> str:
        """``99.9 % of requests succeed (all routes)``."""
        if self.kind == "availability":
            return f"{self.objective * 100:g} % of requests succeed ({self.target})"
        assert self.threshold is not None  # checked in __post_init__
        return (
            f"p{self.percentile} under {self.threshold * 1000:g} ms in"
            f" {self.objective * 100:g} % of time slices ({self.target})"
        )


@dataclass(frozen=True, slots=True)
class SLOStatus:
    """An SLO measured over one period.

    Attributes:
        slo: the objective.
        period: the period measured.
        good: good requests (availability) or good time slices (latency).
        total: all requests or time slices with traffic.
        sli: achieved share, ``good / total`` (None without traffic).
        budget_remaining: share of the period's error budget left, ``1 - bad / allowed``
            (negative: overspent; None without traffic).
        burn_rate: observed bad share over the allowed one (None without traffic).
    """

    slo: SLO
    period: Period
    good: float
    total: float
    sli: float | None
    budget_remaining: float | None
    burn_rate: float | None

    @property
    def met(self) -> bool | None:
        """Whether the objective was met (None without traffic)."""
        return None if self.sli is None else self.sli >= self.slo.objective


def _matching(slo: SLO, route: str, method: str) -> bool:
    if slo.route and not slo.method:
        return route == slo.route
    return route == slo.route and method == slo.method


def slo_status(source: SeriesSource, slo: SLO, period: Period, *, step: float) -> SLOStatus:
    """Measure ``slo`` over ``period`` from the source's RED figures.

    Args:
        source: where the RED figures are read from.
        slo: the objective.
        period: the period measured.
        step: query step, seconds; for latency SLOs, the length of one time slice.
    """
    good = total = 0.0
    if slo.kind == "availability":
        stats = read_red(source, period, step=step)
        for s in stats:
            if _matching(slo, s.route, s.method):
                total += s.requests
                good += s.requests - s.errors
    else:
        name = f"latency_p{slo.percentile}"
        series = source.query_range(
            name, slo.matchers(), start=period.start, end=period.end, step=step
        )
        threshold = slo.threshold or 0.0
        values = [p.value for s in series for p in s.points if math.isfinite(p.value)]
        total = float(len(values))
        good = float(sum(1 for v in values if v <= threshold))
    if total <= 0:
        return SLOStatus(slo, period, good, total, None, None, None)
    sli = good / total
    bad_share = 1.0 - sli
    return SLOStatus(
        slo,
        period,
        good,
        total,
        sli,
        1.0 - bad_share / slo.budget,
        bad_share / slo.budget,
    )
