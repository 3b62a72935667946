"""The windowed series store: bounded in-memory time series the rule engine queries.

The pipeline writes one point per series per collection; the rule engine (and the API) read
them back by metric name, label matchers and time window, with PromQL's semantics for
windows (``start < ts <= end``) and for staleness (an instant query looks back at most
``lookback`` seconds). Everything is bounded: points per series (a ring), the age of points
(``max_window``) and the number of series; what does not fit is dropped and counted, never
raised, because the writer runs on the collection path.

Reads are the hot path here: the rule-engine budget is 1,000 rules over 10,000 series in
50 ms per cycle. So series are indexed by name, and the set of series a ``(name, matchers)``
pair selects is cached and kept up to date incrementally as series appear, which makes a
repeated selector cost O(matched series) instead of O(series under the name).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import isnan

from paca_otel._internal import drops
from paca_otel._labelregex import (
    LabelRegex,
    RegexSyntaxError,
    compile_label_regex,
    regex_fullmatch,
)
from paca_otel.errors import ConfigError, RuleError
from paca_otel.signals._labels import safe_text

Labels = tuple[tuple[str, str], ...]
"""A label set: ``(key, value)`` pairs sorted by key, hashable so it can index a dict."""

MATCH_OPS = ("=", "!=", "=~", "!~")

# Past this many cached selectors the cache is dropped wholesale rather than tracked per
# entry: rules are few and stable, so only ad-hoc API queries ever get here.
_MAX_CACHED_SELECTORS = 50_000


def labels_of(mapping: Mapping[str, object]) -> Labels:
    """Turn an attribute/label mapping into a :data:`Labels` key (sorted, values as ``str``).

    Empty values are left out, as in Prometheus, where an empty label equals a missing one.
    Code points UTF-8 cannot encode become U+FFFD, so no series from the raw OTel API can
    break the JSON API or a notification.
    """
    return tuple(
        sorted(
            (safe_text(str(k)), safe_text(str(v)))
            for k, v in mapping.items()
            if v is not None and v != ""
        )
    )


def label_value(labels: Labels, name: str) -> str:
    """The value of label ``name`` in ``labels``, or ``""`` when it is absent (PromQL)."""
    for key, value in labels:
        if key == name:
            return value
    return ""


@dataclass(frozen=True, slots=True)
class Matcher:
    """One PromQL label matcher such as ``route="/x"`` or ``method!~"GET|HEAD"``.

    Regexes are fully anchored like PromQL's, in RE2 syntax and linear time (see
    :mod:`paca_otel._labelregex`), and compiled once here, so matching in the evaluation loop
    costs one ``fullmatch``. A missing label matches as the empty string.

    Raises:
        RuleError: ``op`` is not one of ``=``, ``!=``, ``=~``, ``!~``, or the regex is invalid.
    """

    name: str
    op: str
    value: str
    _regex: LabelRegex | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.op not in MATCH_OPS:
            msg = f"label matcher operator {self.op!r} is not allowed; use one of {MATCH_OPS}"
            raise RuleError(msg)
        if self.op in ("=~", "!~"):
            try:
                compiled = compile_label_regex(self.value)
            except RegexSyntaxError as exc:
                msg = f"label matcher regex {self.value!r} for {self.name!r} is invalid: {exc}"
                raise RuleError(msg) from exc
            object.__setattr__(self, "_regex", compiled)

    def matches(self, labels: Labels) -> bool:
        """Whether ``labels`` satisfy this matcher."""
        actual = label_value(labels, self.name)
        op = self.op
        if op == "=":
            return actual == self.value
        if op == "!=":
            return actual != self.value
        assert self._regex is not None  # compiled in __post_init__ for both regex ops
        found = regex_fullmatch(self._regex, actual)
        return found if op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


@dataclass(frozen=True, slots=True)
class Series:
    """The points of one series inside a queried window, oldest first."""

    name: str
    labels: Labels
    timestamps: Sequence[float]
    values: Sequence[float]


_STALE = float("nan")
"""The staleness marker's value (appended only by :meth:`SeriesStore.mark_stale`)."""


class _Ring:
    """A series' points: two parallel lists plus a head offset, sorted by timestamp.

    Lists rather than ``deque`` so that window reads are a C-level ``bisect`` plus a slice
    (``deque`` indexing walks blocks and ``islice`` starts from the left end). Evicting moves
    ``head``; the dead prefix is deleted once it is as long as the live part, so memory
    stays within about twice ``max_points`` and eviction is amortised O(1).
    """

    __slots__ = ("head", "stale", "ts", "vals")

    def __init__(self) -> None:
        self.ts: list[float] = []
        self.vals: list[float] = []
        self.head = 0
        self.stale = False  # holds a staleness marker (NaN) somewhere: reads filter them

    def add(self, ts: float, value: float, max_points: int, max_window: float) -> int:
        """Insert one point; return how many points fell out because the ring was full."""
        times = self.ts
        if not times or ts > times[-1]:
            times.append(ts)
            self.vals.append(value)
        elif ts == times[-1]:
            self.vals[-1] = value  # a re-collection at the same instant replaces the point
        else:  # out of order (a late writer): keep the lists sorted
            index = bisect_right(times, ts, lo=self.head)
            if index > self.head and times[index - 1] == ts:
                self.vals[index - 1] = value
            else:
                insort(times, ts, lo=self.head)
                self.vals.insert(index, value)
        evicted = 0
        head = self.head
        if len(times) - head > max_points:
            evicted = len(times) - head - max_points
            head += evicted
        horizon = times[-1] - max_window
        while head < len(times) - 1 and times[head] < horizon:
            head += 1
        if head >= 32 and head * 2 >= len(times):
            del times[:head]
            del self.vals[:head]
            head = 0
        self.head = head
        return evicted

    def __len__(self) -> int:
        return len(self.ts) - self.head


class SeriesStore:
    """Bounded, windowed time series indexed by name, then by label set.

    Thread-safety: one writer (the collection/evaluation thread) and any number of readers
    (the API); every method holds one store-wide lock for a short, bounded time and never
    does I/O under it.

    Args:
        max_series: Series beyond this many are refused (counted in ``overflow_series``).
        max_points: Points kept per series; older ones are evicted (``overflow_points``).
        max_window: Seconds of history kept per series, measured from its newest point;
            :meth:`prune` also forgets series whose newest point is older than this.
    """

    def __init__(
        self, *, max_series: int = 10_000, max_points: int = 1_000, max_window: float = 3600.0
    ) -> None:
        if max_series < 1:
            msg = f"max_series must be at least 1, got {max_series!r}"
            raise ConfigError(msg)
        if max_points < 2:
            msg = f"max_points must be at least 2 (rate needs two points), got {max_points!r}"
            raise ConfigError(msg)
        if not max_window > 0 or not math.isfinite(max_window):
            msg = f"max_window must be a positive number of seconds, got {max_window!r}"
            raise ConfigError(msg)
        self.max_series = max_series
        self.max_points = max_points
        self.max_window = float(max_window)
        self.overflow_series = 0
        self.overflow_points = 0
        self.dropped_nonfinite = 0
        self._lock = threading.Lock()
        self._series: dict[str, dict[Labels, _Ring]] = {}
        self._count = 0
        # name -> matchers -> the selected (labels, ring) pairs, maintained on series birth.
        self._selected: dict[str, dict[tuple[Matcher, ...], list[tuple[Labels, _Ring]]]] = {}
        self._cached = 0

    # ----------------------------------------------------------------- writing

    def append(self, name: str, labels: Labels, value: float, ts: float) -> None:
        """Record one point. Never raises: bad or excess data is dropped and counted."""
        if not (math.isfinite(value) and math.isfinite(ts)):
            self.dropped_nonfinite += 1
            drops.add("non_finite_value")
            return
        refused = False
        with self._lock:
            by_labels = self._series.get(name)
            ring = None if by_labels is None else by_labels.get(labels)
            if ring is None:
                if self._count >= self.max_series:
                    self.overflow_series += 1
                    refused = True
                else:
                    ring = self._new_series(name, labels, by_labels)
            if ring is not None:
                evicted = ring.add(float(ts), float(value), self.max_points, self.max_window)
                if evicted:
                    self.overflow_points += evicted
        if refused:
            drops.add("series_overflow")

    def mark_stale(self, name: str, labels: Labels, ts: float) -> None:
        """End an existing series now, as Prometheus' staleness marker does.

        A figure that has no value this collection (a latency with no requests in the window)
        must not keep answering with its last value for the whole lookback: after the marker,
        :meth:`latest` gives nothing for the series and window reads skip the marker. No-op
        for a series that does not exist or already ends in a marker.
        """
        if not math.isfinite(ts):
            return
        with self._lock:
            by_labels = self._series.get(name)
            ring = None if by_labels is None else by_labels.get(labels)
            if ring is None or len(ring) == 0 or isnan(ring.vals[-1]):
                return
            ring.stale = True
            evicted = ring.add(float(ts), _STALE, self.max_points, self.max_window)
            if evicted:
                self.overflow_points += evicted

    def _new_series(
        self, name: str, labels: Labels, by_labels: dict[Labels, _Ring] | None
    ) -> _Ring:
        """Create a series (lock held) and add it to every cached selector it satisfies."""
        if by_labels is None:
            by_labels = self._series[name] = {}
        ring = by_labels[labels] = _Ring()
        self._count += 1
        for matchers, selected in self._selected.get(name, {}).items():
            if all(m.matches(labels) for m in matchers):
                selected.append((labels, ring))
        return ring

    def prune(self, now: float) -> int:
        """Forget series with no point in the last ``max_window`` seconds; return how many.

        Frees room under ``max_series`` for new label sets (a route that went away).
        """
        horizon = now - self.max_window
        removed = 0
        with self._lock:
            for name in list(self._series):
                by_labels = self._series[name]
                dead = [lb for lb, ring in by_labels.items() if not ring or ring.ts[-1] < horizon]
                if not dead:
                    continue
                for lb in dead:
                    del by_labels[lb]
                removed += len(dead)
                if not by_labels:
                    del self._series[name]
                cache = self._selected.pop(name, None)  # rebuilt lazily on the next select
                if cache:
                    self._cached -= len(cache)
            self._count -= removed
        return removed

    def clear(self) -> None:
        """Drop every series and counter (for tests and ``reset``)."""
        with self._lock:
            self._series.clear()
            self._selected.clear()
            self._count = self._cached = 0
            self.overflow_series = self.overflow_points = self.dropped_nonfinite = 0

    # ----------------------------------------------------------------- reading

    def _select_rings(self, name: str, matchers: Sequence[Matcher]) -> list[tuple[Labels, _Ring]]:
        """The series under ``name`` that ``matchers`` select (lock held), cached."""
        key = tuple(matchers)
        per_name = self._selected.get(name)
        if per_name is not None:
            hit = per_name.get(key)
            if hit is not None:
                return hit
        by_labels = self._series.get(name)
        if by_labels is None:
            return []  # not cached: a name that does not exist yet costs one dict lookup
        if key:
            selected = [
                (lb, ring) for lb, ring in by_labels.items() if all(m.matches(lb) for m in key)
            ]
        else:
            selected = list(by_labels.items())
        if self._cached >= _MAX_CACHED_SELECTORS:
            self._selected.clear()
            self._cached = 0
        self._selected.setdefault(name, {})[key] = selected
        self._cached += 1
        return selected

    def select(
        self, name: str, matchers: Sequence[Matcher] = (), *, start: float, end: float
    ) -> list[Series]:
        """Points with ``start < ts <= end`` of every matching series that has any."""
        out: list[Series] = []
        with self._lock:
            for labels, ring in self._select_rings(name, matchers):
                times = ring.ts
                head = ring.head
                if len(times) <= head or times[-1] <= start or times[head] > end:
                    continue
                lo = bisect_right(times, start, lo=head)
                hi = len(times) if times[-1] <= end else bisect_right(times, end, lo=lo)
                if hi > lo:
                    ts_slice, vals = times[lo:hi], ring.vals[lo:hi]
                    if ring.stale:
                        kept = [(t, v) for t, v in zip(ts_slice, vals, strict=True) if not isnan(v)]
                        if not kept:
                            continue
                        ts_slice, vals = [t for t, _ in kept], [v for _, v in kept]
                    out.append(Series(name, labels, ts_slice, vals))
        return out

    def latest(
        self, name: str, matchers: Sequence[Matcher] = (), *, at: float, lookback: float = 300.0
    ) -> list[tuple[Labels, float]]:
        """Each matching series' newest point at or before ``at``, if not older than ``lookback``.

        This is PromQL's instant-vector selection: a series that stopped reporting more than
        ``lookback`` seconds ago is stale and absent from the result.
        """
        oldest = at - lookback
        out: list[tuple[Labels, float]] = []
        with self._lock:
            for labels, ring in self._select_rings(name, matchers):
                times = ring.ts
                if len(times) <= ring.head:
                    continue
                index = len(times) - 1
                if times[index] > at:
                    index = bisect_right(times, at, lo=ring.head) - 1
                    if index < ring.head:
                        continue
                value = ring.vals[index]
                if times[index] >= oldest and not isnan(value):  # NaN: a staleness marker
                    out.append((labels, value))
        return out

    def names(self) -> list[str]:
        """The metric names that currently have series, sorted."""
        with self._lock:
            return sorted(self._series)

    def label_sets(self, name: str) -> list[Labels]:
        """The label sets stored under ``name`` (for the API's series browser)."""
        with self._lock:
            return list(self._series.get(name, {}))

    def __len__(self) -> int:
        """The number of series held."""
        return self._count

    def __contains__(self, name: object) -> bool:
        return name in self._series
