"""Where analysis reads metric history from: the seam between stores and analyzers.

Analyzers, SLOs and reports take a :class:`SeriesSource` and never know whether it is the
embedded history store (one process) or a Prometheus server's HTTP API (a fleet that outgrew
one process). Both answer the same range query: a metric name, label matchers, a time range
and a step, returning one :class:`RangeSeries` per label set.

Matchers use the rule language's operators (``=``, ``!=``, ``=~``, ``!~``) so a selector
written in a rule means the same thing in a report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

MatchOp = Literal["=", "!=", "=~", "!~"]

__all__ = ["LabelMatcher", "MatchOp", "RangePoint", "RangeSeries", "SeriesSource"]


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """One label condition, as in ``{route=~"/api/.*"}``."""

    name: str
    op: MatchOp
    value: str


@dataclass(frozen=True, slots=True)
class RangePoint:
    """One step of a range query: the step's aggregate of the raw samples inside it.

    Raw (not downsampled) data has ``count == 1`` and ``min == max == sum == value``.
    Downsampled tiers keep min, max, sum and count so averages and extremes survive.
    """

    timestamp: float
    value: float
    min: float
    max: float
    sum: float
    count: int


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One label set's points over the queried range, oldest first."""

    name: str
    labels: Mapping[str, str]
    points: Sequence[RangePoint] = field(default_factory=tuple)


@runtime_checkable
class SeriesSource(Protocol):
    """Anything analysis can read history from (the history store, a Prometheus server)."""

    def query_range(
        self,
        name: str,
        matchers: Sequence[LabelMatcher] = (),
        *,
        start: float,
        end: float,
        step: float,
    ) -> list[RangeSeries]:
        """Every series of ``name`` matching ``matchers`` between ``start`` and ``end``.

        Args:
            name: Metric name as recorded (``system.cpu.utilization``) or an alias
                (``cpu_usage``).
            matchers: Label conditions, all of which must hold.
            start: Range start, seconds since the epoch (inclusive).
            end: Range end, seconds since the epoch (inclusive).
            step: Seconds between returned points. The history store aggregates the samples
                of each step (``value`` is their mean, with min/max/sum/count beside it); the
                Prometheus source returns PromQL's instant value at each step (count 1).
        """
        ...

    def names(self) -> list[str]:
        """The metric names the source holds, sorted."""
        ...
