"""Evaluating a parsed rule condition against the series store, with PromQL's semantics.

Every node yields either a scalar (``float``) or an instant vector (``dict[Labels, float]``,
one value per label set), so a rule is multi-dimensional: ``error_rate{route=~".*"} > 0.05``
fires once per route. The rules, all as in PromQL:

- a plain selector takes each series' latest point, ignoring points older than 5 minutes;
- arithmetic between a vector and a scalar maps the vector; between two vectors it pairs
  samples with equal label sets and drops the rest; division by zero gives ±Inf or NaN;
- a comparison filters, keeping the left-hand value (``1 < x`` keeps ``x``'s value); a
  comparison of two scalars yields one label-less sample when true, nothing when false;
- ``and`` / ``or`` / ``unless`` match on label sets; scalars take part as a label-less sample;
- ``rate`` and ``increase`` correct counter resets and extrapolate to the window's edges the
  way Prometheus' ``extrapolatedRate`` does, so an exported rule behaves the same there;
- ``p50``/``p95``/``p99`` interpolate between the sorted raw values like
  ``quantile_over_time``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from paca_otel.pipeline._store import Labels, Matcher, Series, SeriesStore
from paca_otel.rules._expr import (
    Absent,
    BinOp,
    EvalResult,
    Expr,
    Neg,
    Number,
    Selector,
    WindowCall,
)

LOOKBACK = 300.0
"""Seconds a plain selector looks back for a series' latest point (PromQL's staleness delta)."""

Vector = dict[Labels, float]
Value = float | Vector


@lru_cache(maxsize=4096)
def store_matchers(selector: Selector) -> tuple[Matcher, ...]:
    """The store's (regex-compiled) matchers for a selector, built once per selector.

    Cached because the store caches its selections by the matcher tuple: handing it the same
    objects each tick makes a repeated selector one dict lookup.
    """
    return tuple(Matcher(m.name, m.op, m.value) for m in selector.matchers)


class CycleView:
    """The store as one evaluation cycle sees it: each distinct selector is read once.

    Many rules share a selector (``error_rate{route="/x"}`` with a warning and a critical
    threshold, a condition and its ``clear``); memoising ``latest``/``select`` by their
    arguments for the length of one cycle reads each once, and gives every rule of the cycle
    the same snapshot. The evaluator passes the same cached matcher tuples every time, so
    the keys hash cheaply.
    """

    __slots__ = ("_latest", "_select", "_store")

    def __init__(self, store: SeriesStore) -> None:
        self._store = store
        self._latest: dict[tuple[Any, ...], list[tuple[Labels, float]]] = {}
        self._select: dict[tuple[Any, ...], list[Series]] = {}

    def latest(
        self, name: str, matchers: Sequence[Matcher] = (), *, at: float, lookback: float = 300.0
    ) -> list[tuple[Labels, float]]:
        key = (name, tuple(matchers), at, lookback)
        hit = self._latest.get(key)
        if hit is None:
            hit = self._latest[key] = self._store.latest(name, matchers, at=at, lookback=lookback)
        return hit

    def select(
        self, name: str, matchers: Sequence[Matcher] = (), *, start: float, end: float
    ) -> list[Series]:
        key = (name, tuple(matchers), start, end)
        hit = self._select.get(key)
        if hit is None:
            hit = self._select[key] = self._store.select(name, matchers, start=start, end=end)
        return hit

    def names(self) -> list[str]:
        return self._store.names()


class _Context:
    """Per-evaluation bookkeeping for the ``no_data`` verdict."""

    __slots__ = ("measured", "now", "seen", "selected", "store")

    def __init__(self, store: SeriesStore, now: float, measured: set[Labels] | None) -> None:
        self.store = store
        self.now = now
        self.selected = 0  # selectors (outside absent()) evaluated
        self.seen = 0  # ... of which matched at least one series
        self.measured = measured  # ... and the label sets they returned, when asked for


def evaluate(expr: Expr, store: SeriesStore, now: float, *, measured: bool = False) -> EvalResult:
    """Evaluate ``expr`` at time ``now``; see the module docstring for the semantics.

    With ``measured``, the result also lists every label set the selectors returned (the
    engine's hysteresis uses it to tell "still above ``clear``" from "no longer reported").
    """
    ctx = _Context(store, now, set() if measured else None)
    value = _eval(expr, ctx)
    samples: Vector = value if isinstance(value, dict) else {(): value}
    return EvalResult(
        samples=samples,
        no_data=ctx.selected > 0 and ctx.seen == 0,
        measured=frozenset(ctx.measured or ()),
    )


def _eval(node: Expr, ctx: _Context) -> Value:
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Selector):
        points = ctx.store.latest(node.name, store_matchers(node), at=ctx.now, lookback=LOOKBACK)
        ctx.selected += 1
        if points:
            ctx.seen += 1
            if ctx.measured is not None:
                ctx.measured.update(labels for labels, _ in points)
        return dict(points)
    if isinstance(node, WindowCall):
        return _window(node, ctx)
    if isinstance(node, Absent):
        sel = node.selector
        if ctx.store.latest(sel.name, store_matchers(sel), at=ctx.now, lookback=LOOKBACK):
            return {}
        labels = tuple(sorted({(m.name, m.value) for m in sel.matchers if m.op == "=" and m.value}))
        return {labels: 1.0}
    if isinstance(node, Neg):
        inner = _eval(node.operand, ctx)
        if isinstance(inner, dict):
            return {labels: -v for labels, v in inner.items()}
        return -inner
    return _binop(node, _eval(node.left, ctx), _eval(node.right, ctx))


# ------------------------------------------------------------------------- windowed functions


def _window(node: WindowCall, ctx: _Context) -> Vector:
    sel = node.selector
    series = ctx.store.select(
        sel.name, store_matchers(sel), start=ctx.now - node.window, end=ctx.now
    )
    ctx.selected += 1
    if series:
        ctx.seen += 1
        if ctx.measured is not None:
            ctx.measured.update(s.labels for s in series)
    out: Vector = {}
    func = node.func
    if func in ("rate", "increase"):
        for s in series:
            value = extrapolated_delta(
                s.timestamps, s.values, ctx.now - node.window, ctx.now, is_rate=func == "rate"
            )
            if value is not None:
                out[s.labels] = value
        return out
    reduce = _REDUCERS[func]
    for s in series:
        out[s.labels] = reduce(s.values)
    return out


def quantile(q: float, values: Sequence[float]) -> float:
    """``quantile_over_time``: linear interpolation between the two nearest ranks."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    lower = max(0, math.floor(rank))
    upper = min(len(ordered) - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


_REDUCERS: dict[str, Callable[[Sequence[float]], float]] = {
    "avg": lambda vs: math.fsum(vs) / len(vs),
    "min": min,
    "max": max,
    "sum": math.fsum,
    "count": lambda vs: float(len(vs)),
    "last": lambda vs: vs[-1],
    "p50": lambda vs: quantile(0.5, vs),
    "p95": lambda vs: quantile(0.95, vs),
    "p99": lambda vs: quantile(0.99, vs),
}


def extrapolated_delta(
    times: Sequence[float],
    values: Sequence[float],
    range_start: float,
    range_end: float,
    *,
    is_rate: bool,
) -> float | None:
    """Prometheus' ``extrapolatedRate`` for counters: ``increase`` or, per second, ``rate``.

    A drop in value is a counter reset: the new value counts in full. The observed increase is
    then extrapolated towards the window's edges — all the way if the first/last sample is
    within 1.1 average sample intervals of the edge, else by half an interval — and never
    below zero at the start. Returns None with fewer than two samples (no rate is knowable).
    """
    if len(values) < 2:
        return None
    first, last = values[0], values[-1]
    delta = last - first
    prev = first
    for v in values[1:]:
        if v < prev:
            delta += prev
        prev = v
    sampled = times[-1] - times[0]
    if sampled <= 0:
        return None
    to_start = times[0] - range_start
    to_end = range_end - times[-1]
    average = sampled / (len(values) - 1)
    if delta > 0 and first >= 0:
        to_zero = sampled * (first / delta)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    delta *= interval / sampled
    if is_rate:
        delta /= range_end - range_start
    return delta


# ---------------------------------------------------------------------------- binary operators


def _divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _divide,
}

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _as_vector(value: Value) -> Vector:
    return value if isinstance(value, dict) else {(): value}


def _binop(node: BinOp, left: Value, right: Value) -> Value:
    op = node.op
    if op in ("and", "or", "unless"):
        lv, rv = _as_vector(left), _as_vector(right)
        if op == "and":
            return {k: v for k, v in lv.items() if k in rv}
        if op == "unless":
            return {k: v for k, v in lv.items() if k not in rv}
        merged = dict(lv)
        for k, v in rv.items():
            merged.setdefault(k, v)
        return merged
    arith = _ARITH.get(op)
    if arith is not None:
        if isinstance(left, dict):
            if isinstance(right, dict):
                return {k: arith(v, right[k]) for k, v in left.items() if k in right}
            return {k: arith(v, right) for k, v in left.items()}
        if isinstance(right, dict):
            return {k: arith(left, v) for k, v in right.items()}
        return arith(left, right)
    cmp = _COMPARE[op]
    if isinstance(left, dict):
        if isinstance(right, dict):
            return {k: v for k, v in left.items() if k in right and cmp(v, right[k])}
        return {k: v for k, v in left.items() if cmp(v, right)}
    if isinstance(right, dict):  # "1 < x" filters x and keeps x's values, as in PromQL
        return {k: v for k, v in right.items() if cmp(left, v)}
    return {(): left} if cmp(left, right) else {}
