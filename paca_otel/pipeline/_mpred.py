"""Service-wide RED figures: each worker's window, published and merged.

The RED span processor (:mod:`paca_otel.pipeline._spans`) keeps each worker's last
``window`` seconds of requests. Under ``uvicorn --workers N`` every worker sees about 1/N of
the traffic, so ``error_rate`` judged on one worker is judged on a sample. Counts add up across
workers, and so do rates (each over its own worker's span); percentiles do not. Each worker
therefore publishes, per (route, method), its request and error counts and a *latency
sketch*: durations bucketed on a log scale with :data:`RELATIVE_ACCURACY` (the DDSketch
idea: bucket ``i`` holds ``(g^(i-1), g^i]`` for ``g = 1.01 / 0.99``, so any value read back
from it is within 1 % of the truth, and two sketches merge by adding bucket weights). A sketch
of 10,000 durations between 1 ms and 10 s has at most ~460 buckets: the section stays small.

Hand-written because it is a few dozen lines: the sketch libraries on PyPI (``ddsketch``)
bring protobuf-based serialisation we would not use, and the merge must read untrusted JSON
with the same checks as :mod:`paca_otel.pipeline._mpfile`.

In multiprocess mode the latency figures come from the merged sketch for every worker,
the local one included, so they are within 1 % of the exact percentiles the processor
computes in a single process.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from paca_otel.pipeline._mpfile import FileFormatError
from paca_otel.pipeline._spans import REDStats, REDWindow

RELATIVE_ACCURACY: Final = 0.01
"""Largest relative error of a percentile read from a sketch."""
_GAMMA: Final = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA: Final = math.log(_GAMMA)
_SMALLEST: Final = 1e-9
"""Durations at or below this many seconds share the zero bucket."""
ZERO_BUCKET: Final = -(2**31)

Sketch = dict[int, float]
"""Bucket index -> weight (requests the bucket stands for)."""


def sketch_of(durations: Sequence[float], weight: float = 1.0) -> Sketch:
    """Bucket ``durations``, each standing for ``weight`` requests (thinned samples)."""
    out: Sketch = {}
    log, ceil = math.log, math.ceil
    for value in durations:
        index = ceil(log(value) / _LOG_GAMMA) if value > _SMALLEST else ZERO_BUCKET
        out[index] = out.get(index, 0.0) + weight
    return out


def bucket_value(index: int) -> float:
    """The value a bucket stands for: within :data:`RELATIVE_ACCURACY` of all it holds."""
    if index == ZERO_BUCKET:
        return 0.0
    return 2.0 * _GAMMA**index / (_GAMMA + 1.0)


def quantile(sketch: Sketch, q: float) -> float | None:
    """The ``q`` quantile of a sketch, interpolating between ranks as ``spans.percentile`` does."""
    total = sum(sketch.values())
    if total <= 0:
        return None
    items = sorted(sketch.items())
    position = q * max(total - 1.0, 0.0)
    lower = math.floor(position)

    def at(rank: float) -> float:
        seen = 0.0
        for index, weight in items:
            seen += weight
            if seen > rank:
                return bucket_value(index)
        return bucket_value(items[-1][0])

    low = at(lower)
    high = at(lower + 1) if position > lower else low
    return low + (high - low) * (position - lower)


@dataclass(slots=True)
class _Pair:
    requests: int = 0
    errors: int = 0
    rate: float = 0.0
    sketch: Sketch = field(default_factory=dict)

    def add(self, requests: int, errors: int, rate: float, sketch: Sketch) -> None:
        self.requests += requests
        self.errors += errors
        self.rate += rate
        for index, weight in sketch.items():
            self.sketch[index] = self.sketch.get(index, 0.0) + weight


PairKey = tuple[str, str | None]
Section = tuple[float, list[tuple[str, str | None, int, int, Sketch]]]
"""One worker's RED section: seconds its window spans, and per pair its counts and sketch."""


def section_of(windows: Iterable[REDWindow], span_s: float) -> Section:
    """A worker's windows as a section (sketched, so it merges)."""
    pairs = []
    for w in windows:
        weight = w.requests / len(w.durations) if w.durations else 0.0
        pairs.append((w.route, w.method, w.requests, w.errors, sketch_of(w.durations, weight)))
    return span_s, pairs


def encode_section(section: Section) -> bytes:
    """The section's JSON (bucket indexes and weights as ``[index, weight]`` pairs)."""
    span_s, pairs = section
    doc = {
        "span": span_s,
        "pairs": [[r, m, n, e, sorted(s.items())] for r, m, n, e, s in pairs],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise FileFormatError("not a valid RED section: count")
    return value


def decode_section(raw: bytes) -> Section:
    """Check and decode a RED section.

    Raises:
        FileFormatError: It is not a valid section.
    """
    try:
        doc = json.loads(raw)
        span_s = float(doc["span"])
        pairs = []
        for route, method, requests, errors, buckets in doc["pairs"]:
            if not isinstance(route, str) or not (method is None or isinstance(method, str)):
                raise FileFormatError("not a valid RED section: route")
            sketch: Sketch = {}
            for index, weight in buckets:
                if type(index) is not int or not isinstance(weight, (int, float)) or weight < 0:
                    raise FileFormatError("not a valid RED section: bucket")
                sketch[index] = float(weight)
            pairs.append((route, method, _count(requests), _count(errors), sketch))
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        if isinstance(exc, FileFormatError):
            raise
        msg = f"not a valid RED section ({type(exc).__name__})"
        raise FileFormatError(msg) from None
    if not (span_s > 0 and math.isfinite(span_s)):
        raise FileFormatError("not a valid RED section: span")
    return span_s, pairs


def merge_sections(sections: Iterable[Section]) -> list[REDStats]:
    """The service's figures: per (route, method), then all routes (as ``drain`` orders them)."""
    by_pair: dict[PairKey, _Pair] = {}
    overall = _Pair()
    for span_s, pairs in sections:
        for route, method, requests, errors, sketch in pairs:
            rate = requests / span_s
            by_pair.setdefault((route, method), _Pair()).add(requests, errors, rate, sketch)
            overall.add(requests, errors, rate, sketch)
    out = [
        _stats(route, method, pair)
        for (route, method), pair in sorted(by_pair.items(), key=lambda i: (i[0][0], i[0][1] or ""))
    ]
    if out:
        out.append(_stats(None, None, overall))
    return out


def _stats(route: str | None, method: str | None, pair: _Pair) -> REDStats:
    return REDStats(
        route=route,
        method=method,
        requests=pair.requests,
        errors=pair.errors,
        rate=pair.rate,
        error_ratio=pair.errors / pair.requests if pair.requests else 0.0,
        p50=quantile(pair.sketch, 0.50),
        p95=quantile(pair.sketch, 0.95),
        p99=quantile(pair.sketch, 0.99),
    )
