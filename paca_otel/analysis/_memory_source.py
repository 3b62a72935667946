"""An in-memory :class:`~paca_otel.analysis.source.SeriesSource`, for tests and notebooks.

Analysers, SLOs and reports read history only through the ``SeriesSource`` protocol. This
module holds series as plain lists so users' own tests (and ours) can build a scenario —
"CPU creeping up, disk filling, one route slower after a deploy" — point by point and hand
it to :func:`~paca_otel.analysis.report.generate_report` without a history store or a
Prometheus server. Range queries aggregate the raw samples of each step as the history
store does (``value`` is their mean, with min, max, sum and count beside it).

It is deliberately simple (a sorted list per series, a scan per query): it is not a store.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping, Sequence

from paca_otel.analysis.source import LabelMatcher, RangePoint, RangeSeries
from paca_otel.errors import ConfigError
from paca_otel.pipeline._store import Labels, Matcher, labels_of

__all__ = ["MemorySeriesSource"]


class MemorySeriesSource:
    """Series held in memory, answering ``query_range`` like the history store.

    Example::

        source = MemorySeriesSource()
        source.add("cpu_usage", {}, [(t, 40.0 + t / 3600) for t in range(0, 86_400, 60)])
        source.query_range("cpu_usage", start=0, end=86_400, step=300)
    """

    def __init__(self) -> None:
        self._series: dict[str, dict[Labels, tuple[list[float], list[float]]]] = {}

    def add(
        self,
        name: str,
        labels: Mapping[str, str],
        points: Iterable[tuple[float, float]],
    ) -> None:
        """Add ``(timestamp, value)`` points to one series (kept sorted by timestamp).

        Non-finite values are gaps, as in the store: they are not kept.
        """
        if not name:
            msg = "a series needs a non-empty metric name"
            raise ConfigError(msg)
        key = labels_of(labels)
        times, values = self._series.setdefault(name, {}).setdefault(key, ([], []))
        for ts, value in points:
            if not math.isfinite(value):
                continue
            if not times or ts >= times[-1]:
                times.append(float(ts))
                values.append(float(value))
            else:
                index = bisect_right(times, ts)
                insort(times, float(ts))
                values.insert(index, float(value))

    def query_range(
        self,
        name: str,
        matchers: Sequence[LabelMatcher] = (),
        *,
        start: float,
        end: float,
        step: float,
    ) -> list[RangeSeries]:
        """Every matching series' points in ``[start, end]``, one per non-empty step.

        Step ``k`` covers ``[start + k*step, start + (k+1)*step)`` and is stamped with its
        start; steps without samples are left out (a gap stays a gap).
        """
        if not step > 0 or not math.isfinite(step):
            msg = f"step must be a positive number of seconds, got {step!r}"
            raise ConfigError(msg)
        if end < start:
            msg = f"end ({end}) is before start ({start})"
            raise ConfigError(msg)
        compiled = [Matcher(m.name, m.op, m.value) for m in matchers]
        out: list[RangeSeries] = []
        for labels, (times, values) in sorted(self._series.get(name, {}).items()):
            if not all(m.matches(labels) for m in compiled):
                continue
            lo, hi = bisect_left(times, start), bisect_right(times, end)
            buckets: dict[int, list[float]] = {}
            for index in range(lo, hi):
                buckets.setdefault(int((times[index] - start) // step), []).append(values[index])
            points = [
                RangePoint(
                    timestamp=start + k * step,
                    value=math.fsum(vs) / len(vs),
                    min=min(vs),
                    max=max(vs),
                    sum=math.fsum(vs),
                    count=len(vs),
                )
                for k, vs in sorted(buckets.items())
            ]
            if points:
                out.append(RangeSeries(name=name, labels=dict(labels), points=tuple(points)))
        return out

    def names(self) -> list[str]:
        """The metric names held, sorted."""
        return sorted(name for name, series in self._series.items() if series)
