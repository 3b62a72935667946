"""The merge of several workers' collections into one service-wide collection.

Input: :class:`~paca_otel.pipeline._mpfile.Source` parts, freshest first, each marked live or
not. Output: the merged series (:class:`Merged`), which become either the SDK's own
:class:`~opentelemetry.sdk.metrics.export.MetricsData` (what ``/metrics``, the alerting store
and ``get_current_metrics()`` read) or a schema and values again (the archive of dead workers).
The rules per category are in :mod:`paca_otel.pipeline._mpfile` and the reasons in
:mod:`paca_otel.pipeline._multiprocess`.

Cost is one dict operation per series per worker (plus one addition per bucket for
histograms); nothing here allocates per series beyond the merged result itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import add
from typing import Any, cast

from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from paca_otel.pipeline._mpfile import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    HOST,
    LIVE_SUMMED,
    PER_PID,
    SUMMED,
    AttrKey,
    Block,
    Schema,
    SchemaEntry,
    ScopeKey,
    Source,
)

_CUMULATIVE = AggregationTemporality.CUMULATIVE
_NO_EXEMPLARS: tuple[Exemplar, ...] = ()


@dataclass(frozen=True, slots=True)
class Part:
    """One worker's source as the merge sees it."""

    source: Source
    live: bool


@dataclass(slots=True)
class _Acc:
    """One merged metric: the first block seen (its description and unit win) and its points."""

    block: Block
    points: dict[AttrKey, float | list[float]] = field(default_factory=dict)


@dataclass(slots=True)
class Merged:
    """The merged metrics, in first-seen order, and what was left out (reason -> points)."""

    metrics: dict[tuple[ScopeKey, str, int], _Acc] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)
    start_ns: int = 0


PidCache = dict[tuple[int, str], tuple[Block, list[AttrKey]]]
"""(id of a block, pid) -> (the block, its series with the pid label): kept by the caller."""


def _with_pid(block: Block, pid: str, cache: PidCache | None) -> list[AttrKey]:
    """The block's attribute sets with ``pid`` added (replacing an attribute of that name)."""
    if cache is not None:
        hit = cache.get((id(block), pid))
        if hit is not None and hit[0] is block:
            return hit[1]
    out = []
    series = block.series
    for key in series:
        pairs = [pair for pair in key if pair[0] != "pid"]
        pairs.append(("pid", pid))
        pairs.sort(key=lambda pair: pair[0])
        out.append(tuple(pairs))
    if cache is not None:
        cache[(id(block), pid)] = (block, out)
    return out


def merge(
    parts: Iterable[Part],
    *,
    categories: frozenset[int] | None = None,
    pid_cache: PidCache | None = None,
) -> Merged:
    """Merge ``parts`` (freshest first) by category; see the module docstring.

    Sums go template by template: workers with the same series publish the same schema
    (:class:`~paca_otel.pipeline._mpfile.Flattener`) and so share one decoded template, whose
    value arrays add up element-wise before their series are folded in, once per template.

    Args:
        parts: The workers' sources, the live local one first.
        categories: Merge only these categories (the archive keeps :data:`SUMMED` only).
        pid_cache: Where to keep the pid-labelled attribute sets between merges (the
            templates are cached, so the same blocks come back); the caller bounds it.
    """
    merged = Merged()
    parts = list(parts)
    wanted = (SUMMED, LIVE_SUMMED, HOST, PER_PID) if categories is None else categories
    groups: dict[int, list[Part]] = {}
    for part in parts:
        start = part.source.header.start_ns
        if start and (not merged.start_ns or start < merged.start_ns):
            merged.start_ns = start
        groups.setdefault(id(part.source.template), []).append(part)
    for group in groups.values():
        live = [part for part in group if part.live]
        for block in group[0].source.template.blocks:
            kind = block.category
            members = group if kind == SUMMED else live if kind == LIVE_SUMMED else ()
            if not members or kind not in wanted:
                continue
            acc = _accumulator(merged, block)
            if acc is not None:
                vector = _vector_sum([m.source.values for m in members], block)
                _add(acc.points, block.series, vector, 0, block.width)
    host_owner: dict[tuple[ScopeKey, str, int], int] = {}
    for index, part in enumerate(parts):
        if not part.live:
            continue
        pid = str(part.source.header.pid)
        for block in part.source.template.blocks:
            kind = block.category
            if kind not in wanted or kind not in (HOST, PER_PID):
                continue
            if kind == HOST and host_owner.setdefault(block.key, index) != index:
                continue  # host-wide: the freshest live worker's only
            acc = _accumulator(merged, block)
            if acc is not None:
                series = _with_pid(block, pid, pid_cache) if kind == PER_PID else block.series
                _add(acc.points, series, part.source.values, block.offset, block.width)
    return merged


def _accumulator(merged: Merged, block: Block) -> _Acc | None:
    """The metric's accumulator, or None (counted) when its histogram bounds differ."""
    acc = merged.metrics.get(block.key)
    if acc is None:
        acc = merged.metrics[block.key] = _Acc(block)
    elif acc.block.bounds != block.bounds:
        merged.dropped["multiprocess_bounds_mismatch"] += len(block.series)
        return None
    return acc


def _vector_sum(arrays: Sequence[Sequence[float]], block: Block) -> Sequence[float]:
    """The block's values summed over ``arrays`` (min and max of histograms: min and max)."""
    low = block.offset
    high = low + block.width * len(block.series)
    total: Sequence[float] = arrays[0][low:high]
    if len(arrays) == 1:
        return total
    for values in arrays[1:]:
        total = list(map(add, total, values[low:high]))
    if block.kind == HISTOGRAM:
        assert isinstance(total, list)  # built just above
        for j in range(2, high - low, block.width):
            total[j] = min(values[low + j] for values in arrays)
            total[j + 1] = max(values[low + j + 1] for values in arrays)
    return total


def _add(
    points: dict[AttrKey, float | list[float]],
    series: Sequence[AttrKey],
    values: Sequence[float],
    offset: int,
    width: int,
) -> None:
    get = points.get
    if width == 1:
        for key, value in zip(series, values[offset : offset + len(series)], strict=True):
            previous = get(key)
            points[key] = value if previous is None else previous + value  # type: ignore[operator]  # width 1 holds floats
        return
    for key in series:
        chunk = values[offset : offset + width]
        offset += width
        previous = get(key)
        if previous is None:
            points[key] = list(chunk)
            continue
        assert isinstance(previous, list)  # width > 1 holds lists (histograms)
        previous[0] += chunk[0]
        previous[1] += chunk[1]
        previous[2] = min(previous[2], chunk[2])
        previous[3] = max(previous[3], chunk[3])
        for i in range(4, width):
            previous[i] += chunk[i]


def to_schema(merged: Merged) -> tuple[Schema, list[float]]:
    """The merged metrics as a schema and values again (for the archive file)."""
    entries: list[SchemaEntry] = []
    values: list[float] = []
    for acc in merged.metrics.values():
        b = acc.block
        entries.append((b.scope, b.name, b.description, b.unit, b.kind, b.bounds,
                        tuple(acc.points)))  # fmt: skip
        for point in acc.points.values():
            if isinstance(point, list):
                values.extend(point)
            else:
                values.append(point)
    return tuple(entries), values


def _attribute_dicts(
    points: dict[AttrKey, Any], cache: dict[AttrKey, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The attribute dict of every series in ``points``, each built once (kept in ``cache``)."""
    found = list(map(cache.get, points))
    if None in found:
        found = [
            d if d is not None else cache.setdefault(k, dict(k))
            for k, d in zip(points, found, strict=True)
        ]
    return found  # type: ignore[return-value]  # the None entries were replaced


def to_metrics_data(
    merged: Merged,
    resource: Resource,
    time_ns: int,
    attributes: dict[AttrKey, dict[str, Any]] | None = None,
) -> MetricsData:
    """The merged metrics as the SDK's data classes, one resource, scopes in first-seen order.

    Args:
        merged: What :func:`merge` returned.
        resource: The resource of the one ``ResourceMetrics``.
        time_ns: The points' time.
        attributes: Attribute dicts by attribute set, reused and filled, so that a series'
            dict is built once, not per view (the SDK, too, hands out one dict per series).
            The caller bounds it. Consumers must not mutate point attributes.
    """
    start = merged.start_ns or time_ns
    cache: dict[AttrKey, dict[str, Any]] = {} if attributes is None else attributes
    scopes: dict[ScopeKey, list[Metric]] = {}
    for acc in merged.metrics.values():
        b = acc.block
        data: Sum | Gauge | Histogram
        dicts = _attribute_dicts(acc.points, cache)
        # Positional arguments in the data classes' field order, and one shared empty exemplar
        # tuple: half the cost of keywords and a new list per point (10k points per view).
        if b.kind == HISTOGRAM:
            bounds = list(b.bounds)
            histogram_points = [
                HistogramDataPoint(
                    attributes, start, time_ns, int(h[0]), h[1], [int(c) for c in h[4:]], bounds,
                    h[2], h[3], _NO_EXEMPLARS,
                )
                for attributes, h in zip(dicts, acc.points.values(), strict=True)
                if isinstance(h, list)
            ]  # fmt: skip
            data = Histogram(data_points=histogram_points, aggregation_temporality=_CUMULATIVE)
        else:
            n = len(dicts)
            values = cast("Iterable[float]", acc.points.values())  # width 1 holds floats
            number_points = list(
                map(NumberDataPoint, dicts, repeat(start, n), repeat(time_ns, n), values,
                    repeat(_NO_EXEMPLARS, n))
            )  # fmt: skip
            if b.kind == GAUGE:
                data = Gauge(data_points=number_points)
            else:
                data = Sum(
                    data_points=number_points,
                    aggregation_temporality=_CUMULATIVE,
                    is_monotonic=b.kind == COUNTER,
                )
        metric = Metric(name=b.name, description=b.description, unit=b.unit, data=data)
        scopes.setdefault(b.scope, []).append(metric)
    scope_metrics = [
        ScopeMetrics(
            scope=InstrumentationScope(name, version, schema_url, dict(attrs) or None),
            metrics=metrics,
            schema_url=schema_url or "",
        )
        for (name, version, schema_url, attrs), metrics in scopes.items()
    ]
    return MetricsData(
        resource_metrics=[
            ResourceMetrics(
                resource=resource, scope_metrics=scope_metrics, schema_url=resource.schema_url
            )
        ]
    )
