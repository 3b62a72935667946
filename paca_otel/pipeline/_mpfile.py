"""One worker's published collection: the multiprocess file format, written and read.

Each worker of a service writes its cumulative collection to a file of its own in the shared
``multiprocess_dir`` (:mod:`paca_otel.pipeline._multiprocess` decides when, and merges). This
module is only the format: a collection flattened into a *schema* (which series exist: scope,
metric, kind, unit, bucket bounds, attribute sets) and a flat array of float64 *values* in the
schema's order, plus the worker's RED window section (:mod:`paca_otel.pipeline._mpred`).

Why this shape:

* **Data, never code.** The directory may be writable by other users, so nothing here can
  run what it reads (no pickle, no ``eval``): JSON for the schema, raw float64 for values, and
  every field is type-checked on the way in. A file that fails a check raises
  :class:`FileFormatError`, which the reader counts and skips.
* **Cheap to re-read.** Workers rewrite their file every second, but the series they have
  rarely change, so the schema is cached by its digest (one decode per new schema) and only
  the values are read again: ``array.frombytes`` is a memory copy, where JSON numbers would
  cost a parse per value. The writer keeps its previous schema too and reuses its bytes.
* **Detectably whole.** Writers rename a complete temporary file over the old one (readers
  never see a half-written file), and a CRC32 trailer plus the declared lengths catch a torn
  or tampered one anyway (a crash before the data reached the disk, a foreign writer).
* **Bounded.** :data:`MAX_FILE_BYTES` on both sides; the SDK's cardinality limit bounds the
  schema long before that.

Layout: ``MAGIC | <III lengths of header, schema, red> | header JSON | schema JSON | red JSON |
values (float64, little-endian) | <I crc32 of everything before>``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import sys
import tempfile
import zlib
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    MetricsData,
    NumberDataPoint,
    Sum,
)

MAGIC: Final = b"PACAMP1\n"
MAX_FILE_BYTES: Final = 64 * 1024 * 1024
"""Largest file written or read (a 10k-series collection is about 1 MB)."""

_LENGTHS = struct.Struct("<III")
_CRC = struct.Struct("<I")

# Metric kinds as written in the schema.
COUNTER: Final = 0
"""A monotonic sum."""
UPDOWN: Final = 1
"""A non-monotonic cumulative sum (an up-down counter)."""
GAUGE: Final = 2
HISTOGRAM: Final = 3
"""An explicit-bucket histogram; values are ``count, sum, min, max, *bucket_counts``."""
_KINDS = frozenset({COUNTER, UPDOWN, GAUGE, HISTOGRAM})

# How a metric is merged across workers (see paca_otel.pipeline._multiprocess).
SUMMED: Final = 0
"""Added up over every worker that ever published, dead ones included (counters, histograms)."""
LIVE_SUMMED: Final = 1
"""Added up over live workers only (up-down counters: in-flight requests...)."""
HOST: Final = 2
"""Host-wide (``system.*``, ``container.*``): taken once, from the freshest live worker."""
PER_PID: Final = 3
"""Per process (``process.*``, ``cpython.*``, gauges): each live worker's, with a ``pid`` label."""

HOST_PREFIXES: Final = ("system.", "container.")
"""Semantic-convention namespaces that describe the host (or container), not a process."""
PROCESS_PREFIXES: Final = ("process.", "cpython.")
"""Namespaces that describe one process: reported per worker."""

AttrValue = str | bool | int | float | tuple[str | bool | int | float, ...]
AttrKey = tuple[tuple[str, AttrValue], ...]
"""An attribute set as sorted (key, value) pairs: hashable, and the same for any key order."""
ScopeKey = tuple[str, str | None, str | None, AttrKey]
"""An instrumentation scope: name, version, schema URL, attributes."""
SchemaEntry = tuple[ScopeKey, str, str, str, int, tuple[float, ...], tuple[AttrKey, ...]]
"""One metric: scope, name, description, unit, kind, bucket bounds, attribute sets."""
Schema = tuple[SchemaEntry, ...]


class FileFormatError(ValueError):
    """A file is not a whole, valid multiprocess file (torn, foreign or tampered)."""


def category(name: str, kind: int) -> int:
    """How metric ``name`` of ``kind`` merges across workers (by semconv namespace, then kind)."""
    if name.startswith(HOST_PREFIXES):
        return HOST
    if kind == GAUGE or name.startswith(PROCESS_PREFIXES):
        return PER_PID
    if kind == UPDOWN:
        return LIVE_SUMMED
    return SUMMED


@dataclass(frozen=True, slots=True)
class Block:
    """One metric of a decoded schema and where its values sit in the value array."""

    scope: ScopeKey
    name: str
    description: str
    unit: str
    kind: int
    bounds: tuple[float, ...]
    series: tuple[AttrKey, ...]
    offset: int
    width: int
    category: int

    @property
    def key(self) -> tuple[ScopeKey, str, int]:
        """What identifies the metric across workers: scope, name and kind."""
        return self.scope, self.name, self.kind


@dataclass(frozen=True, slots=True)
class Template:
    """A decoded schema: its blocks and how many values a matching value array holds."""

    blocks: tuple[Block, ...]
    size: int


def template_of(schema: Schema) -> Template:
    """Lay ``schema`` out over one flat value array."""
    blocks: list[Block] = []
    offset = 0
    for scope, name, description, unit, kind, bounds, series in schema:
        width = 4 + len(bounds) + 1 if kind == HISTOGRAM else 1
        blocks.append(
            Block(
                scope, name, description, unit, kind, bounds, series, offset, width,
                category(name, kind),
            )
        )  # fmt: skip
        offset += width * len(series)
    return Template(tuple(blocks), offset)


@dataclass(frozen=True, slots=True)
class Header:
    """Who wrote a file and when.

    ``proc_start`` is the writer's process start time (``psutil``'s ``create_time``): with the
    pid it tells a live writer from another process that reuses a dead writer's pid.
    ``absorbed`` (archives only) lists the ids of dead workers' files folded into it.
    """

    id: str
    pid: int
    proc_start: float
    host: str
    written: float
    closed: bool
    start_ns: int
    absorbed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The header as a JSON object."""
        return {
            "id": self.id, "pid": self.pid, "proc_start": self.proc_start, "host": self.host,
            "written": self.written, "closed": self.closed, "start_ns": self.start_ns,
            "absorbed": list(self.absorbed),
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Source:
    """One worker's collection as the merge reads it (from a file, or the live local one)."""

    header: Header
    template: Template
    values: Sequence[float]
    red: bytes = b""
    """The RED section, JSON (decoded by :mod:`paca_otel.pipeline._mpred` when needed)."""


# ----------------------------------------------------------------------------- local side


def _freeze(value: Any) -> AttrValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    return tuple(value)  # the OTel API allows sequences of primitives only


def attr_key(attributes: Mapping[str, Any] | None) -> AttrKey:
    """``attributes`` as an :data:`AttrKey` (keys are unique, so values are never compared)."""
    if not attributes:
        return ()
    return tuple(sorted((k, _freeze(v)) for k, v in attributes.items()))


_Point = NumberDataPoint | HistogramDataPoint


class Flattener:
    """Flattens the local collection into a canonical schema and its values, cheaply each time.

    Canonical: metrics sorted by (scope, name, kind) and series by attribute set, so workers
    that have the same series publish the same schema bytes, share one decoded
    :class:`Template` in a reader, and merge as whole vectors
    (:mod:`paca_otel.pipeline._mpmerge`). Cheap: the SDK hands out the same attribute dict
    for a series at every collection, so its sorted key is cached by identity, and a metric's
    sort order is reused while its series stay the same: a collection whose series did not
    change costs one pass over its points.
    """

    def __init__(self) -> None:
        self._keys: dict[int, tuple[object, AttrKey]] = {}
        self._orders: dict[tuple[ScopeKey, str, int], tuple[list[AttrKey], list[int]]] = {}

    def _key(self, attributes: Mapping[str, Any] | None) -> AttrKey:
        hit = self._keys.get(id(attributes))
        if hit is not None and hit[0] is attributes:
            return hit[1]
        key = attr_key(attributes)
        self._keys[id(attributes)] = (attributes, key)
        return key

    def _order(self, metric: tuple[ScopeKey, str, int], keys: list[AttrKey]) -> list[int]:
        previous = self._orders.get(metric)
        if previous is not None and previous[0] == keys:
            return previous[1]
        try:
            order = sorted(range(len(keys)), key=keys.__getitem__)
        except TypeError:  # one key's value is an int in a series and a str in another
            order = sorted(range(len(keys)), key=lambda i: repr(keys[i]))
        self._orders[metric] = (keys, order)
        return order

    def flatten(self, data: MetricsData) -> tuple[Schema, list[float], int, int]:
        """Flatten a collection into its schema and values.

        Returns:
            The schema, the values, the earliest point start time (ns, 0 without points) and
            how many points were left out: exponential histograms (which paca-otel's views
            never produce) and histogram points whose bounds differ from their metric's first.
        """
        entries: list[tuple[tuple[ScopeKey, str, int], str, str, tuple[float, ...], list[_Point]]]
        entries = []
        start = 0
        skipped = 0
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                s = scope_metrics.scope
                scope: ScopeKey = (s.name, s.version, s.schema_url, attr_key(s.attributes))
                for metric in scope_metrics.metrics:
                    payload = metric.data
                    points: list[_Point]
                    bounds: tuple[float, ...] = ()
                    if isinstance(payload, Sum):
                        temporality = payload.aggregation_temporality
                        cumulative = temporality is AggregationTemporality.CUMULATIVE
                        kind = UPDOWN if cumulative and not payload.is_monotonic else COUNTER
                        points = list(payload.data_points)
                    elif isinstance(payload, Gauge):
                        kind, points = GAUGE, list(payload.data_points)
                    elif isinstance(payload, Histogram):
                        histogram_points = payload.data_points
                        if histogram_points:
                            bounds = tuple(map(float, histogram_points[0].explicit_bounds))
                        kind = HISTOGRAM
                        points = [p for p in histogram_points if _fits(p, bounds)]
                        skipped += len(histogram_points) - len(points)
                    else:
                        skipped += len(payload.data_points)
                        continue
                    for point in points:
                        begin = point.start_time_unix_nano
                        if begin and (not start or begin < start):
                            start = begin
                    key = (scope, metric.name, kind)
                    desc, unit = metric.description or "", metric.unit or ""
                    entries.append((key, desc, unit, bounds, points))
        entries.sort(key=lambda entry: repr(entry[0]))
        schema: list[SchemaEntry] = []
        values: list[float] = []
        for (scope, name, kind), desc, unit, bounds, points in entries:
            keys = [self._key(point.attributes) for point in points]
            order = self._order((scope, name, kind), keys)
            if kind == HISTOGRAM:
                for i in order:
                    h: Any = points[i]
                    values += (h.count, h.sum, h.min, h.max)
                    values.extend(h.bucket_counts)
            else:
                values.extend([points[i].value for i in order])  # type: ignore[union-attr]  # number points
            series = tuple([keys[i] for i in order])
            schema.append((scope, name, desc, unit, kind, bounds, series))
        if len(self._keys) > 2 * len(values) + 1024:  # series came and went: start afresh
            self._keys.clear()
            self._orders.clear()
        return tuple(schema), values, start, skipped


def _fits(point: object, bounds: tuple[float, ...]) -> bool:
    return (
        isinstance(point, HistogramDataPoint)
        and len(point.bucket_counts) == len(bounds) + 1
        and tuple(point.explicit_bounds) == bounds
    )


def schema_json(schema: Schema) -> bytes:
    """The schema's JSON form (tuples become lists; :func:`decode` turns them back)."""
    return json.dumps(schema, separators=(",", ":"), allow_nan=True).encode()


def encode(header: Header, schema: bytes, red: bytes, values: Iterable[float]) -> bytes:
    """One file's bytes (see the module docstring for the layout)."""
    head = json.dumps(header.to_json(), separators=(",", ":")).encode()
    packed = array("d", values)
    if sys.byteorder == "big":  # pragma: no cover  # little-endian on disk, whatever the host
        packed.byteswap()
    body = b"".join(
        (MAGIC, _LENGTHS.pack(len(head), len(schema), len(red)), head, schema, red,
         packed.tobytes())
    )  # fmt: skip
    return body + _CRC.pack(zlib.crc32(body))


def write_atomic(directory: Path, name: str, payload: bytes) -> None:
    """Write ``payload`` to ``directory/name`` so that readers see the old file or the new one.

    The file is created ``0600`` (``mkstemp``): only the service's user reads its workers' data.
    """
    if len(payload) > MAX_FILE_BYTES:
        msg = f"{len(payload)} bytes is more than the {MAX_FILE_BYTES} a file may hold"
        raise FileFormatError(msg)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pamp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------ read side


def _fail(what: str) -> FileFormatError:
    return FileFormatError(f"not a valid multiprocess file: {what}")


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise _fail(what)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _attr_value(value: object) -> AttrValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    if not isinstance(value, list):
        raise _fail("attribute value")
    items = tuple(value)
    _check(all(isinstance(v, (str, bool, int, float)) for v in items), "attribute value")
    return items


def _attrs(raw: object) -> AttrKey:
    if not isinstance(raw, list):
        raise _fail("attribute set")
    pairs: list[tuple[str, AttrValue]] = []
    for pair in raw:
        _check(isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str), "attribute")
        pairs.append((pair[0], _attr_value(pair[1])))
    key = tuple(pairs)
    _check(all(a[0] < b[0] for a, b in pairwise(key)), "attribute order")
    return key


def _optional_str(value: object) -> str | None:
    _check(value is None or isinstance(value, str), "scope field")
    return value  # type: ignore[return-value]  # checked just above


def parse_schema(raw: bytes) -> Schema:
    """Decode and check a schema section (every field's type, sorted attribute sets)."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _fail(f"schema is not JSON ({exc})") from None
    _check(isinstance(doc, list), "schema")
    entries: list[SchemaEntry] = []
    for entry in doc:
        _check(isinstance(entry, list) and len(entry) == 7, "schema entry")
        scope_raw, name, description, unit, kind, bounds, series = entry
        _check(isinstance(scope_raw, list) and len(scope_raw) == 4, "scope")
        _check(isinstance(scope_raw[0], str), "scope name")
        scope: ScopeKey = (
            scope_raw[0], _optional_str(scope_raw[1]), _optional_str(scope_raw[2]),
            _attrs(scope_raw[3]),
        )  # fmt: skip
        _check(isinstance(name, str) and isinstance(description, str), "metric name")
        _check(isinstance(unit, str) and kind in _KINDS and type(kind) is int, "metric kind")
        _check(isinstance(bounds, list) and all(map(_is_number, bounds)), "bucket bounds")
        _check(kind == HISTOGRAM or not bounds, "bounds of a non-histogram")
        _check(isinstance(series, list), "series")
        keys = tuple(map(_attrs, series))
        _check(len(set(keys)) == len(keys), "duplicate series")
        entries.append((scope, name, description, unit, kind, tuple(map(float, bounds)), keys))
    return tuple(entries)


def _header(raw: bytes) -> Header:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise _fail("header is not JSON") from None
    _check(isinstance(doc, dict), "header")
    try:
        header = Header(
            id=doc["id"], pid=doc["pid"], proc_start=doc["proc_start"], host=doc["host"],
            written=doc["written"], closed=doc["closed"], start_ns=doc["start_ns"],
            absorbed=tuple(doc.get("absorbed", ())),
        )  # fmt: skip
    except (KeyError, TypeError):
        raise _fail("header fields") from None
    _check(isinstance(header.id, str) and isinstance(header.host, str), "header id/host")
    _check(type(header.pid) is int and type(header.start_ns) is int, "header pid/start")
    _check(_is_number(header.proc_start) and _is_number(header.written), "header times")
    _check(math.isfinite(header.written), "header times")
    _check(isinstance(header.closed, bool), "header closed")
    _check(all(isinstance(a, str) for a in header.absorbed), "header absorbed")
    return header


def cached_template(
    raw: bytes, templates: dict[bytes, Template], schema: Schema | None = None
) -> Template:
    """The template of schema bytes ``raw``, decoded once per distinct schema.

    Args:
        raw: The schema section.
        templates: Decoded schemas by digest, reused and filled. The cache is keyed by what
            the bytes hash to, never by what a file claims, so a foreign file cannot poison it.
        schema: ``raw`` already decoded (the local worker's own), to skip parsing it.
    """
    digest = hashlib.blake2b(raw, digest_size=16).digest()
    template = templates.get(digest)
    if template is None:
        template = templates[digest] = template_of(parse_schema(raw) if schema is None else schema)
    return template


def decode(blob: bytes, templates: dict[bytes, Template] | None = None) -> Source:
    """Check and decode one file's bytes.

    Args:
        blob: The whole file.
        templates: Decoded schemas by digest, reused and filled (the reader's cache).

    Raises:
        FileFormatError: The bytes are not a whole, valid file.
    """
    fixed = len(MAGIC) + _LENGTHS.size
    _check(len(blob) <= MAX_FILE_BYTES, "too large")
    _check(len(blob) >= fixed + _CRC.size and blob.startswith(MAGIC), "magic")
    (crc,) = _CRC.unpack_from(blob, len(blob) - _CRC.size)
    body = memoryview(blob)[: len(blob) - _CRC.size]
    _check(zlib.crc32(body) == crc, "checksum")
    head_len, schema_len, red_len = _LENGTHS.unpack_from(blob, len(MAGIC))
    values_at = fixed + head_len + schema_len + red_len
    _check(values_at <= len(body) and (len(body) - values_at) % 8 == 0, "section lengths")
    header = _header(bytes(body[fixed : fixed + head_len]))
    schema_raw = bytes(body[fixed + head_len : fixed + head_len + schema_len])
    template = cached_template(schema_raw, {} if templates is None else templates)
    values = array("d")
    values.frombytes(body[values_at:])
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    _check(len(values) == template.size, "value count")
    red = bytes(body[values_at - red_len : values_at])
    return Source(header, template, values, red)
