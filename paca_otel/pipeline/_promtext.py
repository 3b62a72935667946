"""The Prometheus text formats, written by hand for paca-otel's own families.

Why by hand: with 10k series, prometheus_client's encoders took half of a ``/metrics`` scrape
(OpenMetrics more than half). They take only a collector of ``Metric`` objects, so every scrape
builds a ``Sample`` and a label dict per series, then sorts, checks and escapes every label
name and value of every sample again (about 25 regex matches and string operations per
series), although the series and their labels rarely change between scrapes. No well-kept
library renders either format from pre-escaped labels: prometheus_client is the reference
encoder, and the others we know (aioprometheus, pytheus) are metric registries of their own
with the same per-sample work. So this module writes only the one loop that costs, over label
strings that :mod:`paca_otel.pipeline._prometheus` renders once per series and caches:

* **Only our families, only the common formats.** :class:`PreparedFamily` (what
  ``CollectionCollector`` yields) is written here for the text format (0.0.4, and 1.0.0) and
  OpenMetrics 1.0.0, the formats ``curl`` and every Prometheus negotiate. Any other family in
  the registry (``target_info``, a user's collector), any other negotiated format, and any of
  our families whose names the negotiated escaping would change, go through the encoder
  prometheus_client chose, in registry order.
* **prometheus_client still decides.** It negotiates (``choose_encoder``), escapes names
  (``escape_metric_name``/``escape_label_name``, called once per name to check that the
  escaping leaves it as is) and formats values (``floatToGoString``, remembered per value:
  most values are the same at the next scrape). The hand-written part is the HELP/TYPE/UNIT
  header and the sample line, as its encoders write them.
* **Same content.** A test renders rich data both ways and compares the parsed samples; the
  families still carry their samples (built when first read) for every other consumer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, cast

from prometheus_client import exposition as text_format
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

TEXT: Final = "text"
OPENMETRICS: Final = "openmetrics"
_EOF: Final = "# EOF\n"
_go = cast(Callable[[float], str], floatToGoString)  # untyped in prometheus_client
_formatted: dict[float, str] = {}
_FORMATTED_MAX: Final = 1 << 17
_LEGACY_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")  # prometheus_client's legacy rule


def format_value(value: float) -> str:
    """``floatToGoString(value)``, remembered: most values repeat from one scrape to the next.

    Zeros (``0.0`` equals ``-0.0`` but they are written apart) and NaN (unequal to itself)
    are not remembered.
    """
    text = _go(value)
    if value and not math.isnan(value):
        if len(_formatted) >= _FORMATTED_MAX:
            _formatted.clear()
        _formatted[value] = text
    return text


def escape_value(value: str) -> str:
    """A label value as both text formats quote it (backslash, newline, double quote)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a part, rendered once for the part's label keys and reused per scrape.

    Attributes:
        labels: Label name -> value (unescaped); keys of the part missing here read ``""``.
        label_keys: The part's label keys it was rendered for.
        prefix: A number series' sample line up to its value (``name{labels} ``); for a
            histogram, its ``_count`` line's.
        buckets: A histogram's ``_bucket`` line prefixes, one per bound and ``+Inf``.
        bounds: The histogram bounds ``buckets`` were rendered for.
        sum_prefix: A histogram's ``_sum`` line prefix.
        with_sum: Whether a histogram shows ``_count`` and ``_sum`` (not when its first
            bucket bound is negative, as prometheus_client's histogram family decides).
    """

    labels: dict[str, str]
    label_keys: tuple[str, ...]
    prefix: str
    buckets: tuple[str, ...] = ()
    bounds: Sequence[float] = ()
    sum_prefix: str = ""
    with_sum: bool = True


def render_series(
    kind: str, base: str, labels: dict[str, str], label_keys: tuple[str, ...],
    bounds: Sequence[float] = (),
) -> Series:  # fmt: skip
    """Render one series of a ``kind`` family whose samples are named from ``base``."""
    items = [f'{k}="{escape_value(labels.get(k, ""))}"' for k in label_keys]
    braced = "{" + ",".join(items) + "}" if items else ""
    if kind == "counter":
        return Series(labels, label_keys, f"{base}_total{braced} ")
    if kind != "histogram":
        return Series(labels, label_keys, f"{base}{braced} ")
    head = "".join(f"{item}," for k, item in zip(label_keys, items, strict=True) if k < "le")
    tail = "".join(f",{item}" for k, item in zip(label_keys, items, strict=True) if k > "le")
    les = [f"{bound}" for bound in bounds]
    les.append("+Inf")
    buckets = tuple(f'{base}_bucket{{{head}le="{escape_value(le)}"{tail}}} ' for le in les)
    return Series(
        labels, label_keys, f"{base}_count{braced} ", buckets, bounds, f"{base}_sum{braced} ",
        float(les[0]) >= 0,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Part:
    """One OTel metric's points in a family: its label keys, series and data points."""

    label_keys: tuple[str, ...]
    series: Sequence[Series]
    points: Sequence[Any]
    """``NumberDataPoint`` or ``HistogramDataPoint`` objects (``value``, or ``bucket_counts``
    and ``sum``), in the order of ``series``."""


class PreparedFamily(Metric):
    """A family translated from the collection: written here, or sampled on demand.

    ``samples`` is built on first read (prometheus_client's encoders, its standalone server,
    tests), the way the families it replaces held them; the hand-written formats never read it.

    Args:
        name: The family name (prometheus_client's rules, unit suffix included).
        documentation: The HELP text.
        typ: ``counter``, ``gauge`` or ``histogram``.
        unit: The unit suffix (shown by OpenMetrics).
        sample_base: What sample names start with (``name``, unless the ``*_count`` rename
            met a unit suffix; then only prometheus_client writes the family).
    """

    def __init__(
        self, name: str, documentation: str, typ: str, unit: str, sample_base: str
    ) -> None:
        self.parts: list[Part] = []
        self._built: list[Sample] | None = None
        super().__init__(name, documentation, typ, unit)
        self.sample_base = sample_base

    @property
    def samples(self) -> list[Sample]:
        """The family's samples, as prometheus_client's family classes would hold them."""
        if self._built is None:
            self._built = list(self._sampled())
        return self._built

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._built = value or None  # Metric.__init__ sets [] before any part exists

    def _sampled(self) -> Iterator[Sample]:
        base, kind = self.sample_base, self.type
        for part in self.parts:
            keys = part.label_keys
            for series, point in zip(part.series, part.points, strict=True):
                labels = {k: series.labels.get(k, "") for k in keys}
                if kind == "counter":
                    yield Sample(f"{base}_total", labels, point.value, None)
                elif kind != "histogram":
                    yield Sample(base, labels, point.value, None)
                else:
                    yield from _histogram_samples(base, labels, series.bounds, point)

    def writable(self, escaping: str) -> bool:
        """Whether this module writes the family exactly as prometheus_client would."""
        names = (self.name, f"{self.name}_total") if self.type == "counter" else (self.name,)
        if self.sample_base != self.name or not all(_name_kept(n, escaping) for n in names):
            return False
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        samples = [self.name + suffix for suffix in suffixes.get(self.type, ("",))]
        if not all(_name_kept(n, escaping) for n in samples):
            return False
        return all(_labels_kept(part.label_keys, escaping) for part in self.parts)

    def write(self, out: list[str], form: str) -> None:
        """Append the family's header and sample lines in ``form`` (TEXT or OPENMETRICS)."""
        name, doc = self.name, self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        if form == OPENMETRICS:
            doc = doc.replace('"', r"\"")
            out.append(f"# HELP {name} {doc}\n# TYPE {name} {self.type}\n")
            if self.unit:
                out.append(f"# UNIT {name} {self.unit}\n")
        else:
            shown = f"{name}_total" if self.type == "counter" else name
            out.append(f"# HELP {shown} {doc}\n# TYPE {shown} {self.type}\n")
        known, fmt = _formatted.get, format_value
        for part in self.parts:
            if self.type != "histogram":
                out += [
                    f"{s.prefix}{known(p.value) or fmt(p.value)}\n"
                    for s, p in zip(part.series, part.points, strict=True)
                ]
                continue
            for s, p in zip(part.series, part.points, strict=True):
                total = 0.0
                for prefix, count in zip(s.buckets, p.bucket_counts, strict=False):
                    total += count
                    out.append(f"{prefix}{known(total) or fmt(total)}\n")
                if s.with_sum and p.sum is not None:
                    count_text, sum_text = known(total) or fmt(total), fmt(p.sum)
                    out.append(f"{s.prefix}{count_text}\n{s.sum_prefix}{sum_text}\n")


def _histogram_samples(
    base: str, labels: dict[str, str], bounds: Sequence[float], point: Any
) -> Iterator[Sample]:
    """A histogram point's samples, as ``HistogramMetricFamily.add_metric`` makes them."""
    total = 0.0
    les = [f"{bound}" for bound in bounds]
    les.append("+Inf")
    for le, count in zip(les, point.bucket_counts, strict=False):
        total += count
        yield Sample(f"{base}_bucket", {**labels, "le": le}, total, None)
    if float(les[0]) >= 0 and point.sum is not None:
        yield Sample(f"{base}_count", labels, total, None)
        yield Sample(f"{base}_sum", labels, point.sum, None)


_kept_names: dict[tuple[str, str], bool] = {}
_kept_labels: dict[tuple[tuple[str, ...], str], bool] = {}


def _name_kept(name: str, escaping: str) -> bool:
    """A legacy metric name that ``escaping`` leaves as it is (memoised: names repeat)."""
    key = (name, escaping)
    kept = _kept_names.get(key)
    if kept is None:
        kept = bool(_LEGACY_NAME.match(name)) and (
            openmetrics.escape_metric_name(name, escaping) == name
        )
        if len(_kept_names) > 65_536:
            _kept_names.clear()
        _kept_names[key] = kept
    return kept


def _labels_kept(keys: tuple[str, ...], escaping: str) -> bool:
    """Label names that ``escaping`` leaves as they are (memoised per label-key tuple)."""
    key = (keys, escaping)
    kept = _kept_labels.get(key)
    if kept is None:
        kept = all(openmetrics.escape_label_name(k, escaping) == k for k in keys)
        if len(_kept_labels) > 65_536:
            _kept_labels.clear()
        _kept_labels[key] = kept
    return kept


class _Families(Collector):
    """A collector of given families: how the others reach prometheus_client's encoder."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def _form(encoder: Callable[..., bytes]) -> tuple[str, str] | None:
    """The format and escaping of a ``choose_encoder`` pick this module writes, else None."""
    func = encoder.func if isinstance(encoder, partial) else encoder
    keywords = encoder.keywords if isinstance(encoder, partial) else {}
    escaping = keywords.get("escaping", openmetrics.UNDERSCORES)
    if func is text_format.generate_latest:
        return TEXT, escaping
    if func is openmetrics.generate_latest and keywords.get("version") == "1.0.0":
        return OPENMETRICS, escaping
    return None


def exposition(registry: Collector, accept: str | None) -> tuple[bytes, str]:
    """The registry's exposition for an ``Accept`` header, and its content type.

    What prometheus_client's ``choose_encoder(accept)`` encoder returns for the registry, with
    paca-otel's families written by this module (see the module docstring).
    """
    encoder, content_type = text_format.choose_encoder(accept or "")
    form = _form(encoder)
    if form is None:
        return encoder(registry), content_type
    fmt, escaping = form
    out: list[str] = []
    others: list[Metric] = []
    for family in registry.collect():
        if isinstance(family, PreparedFamily) and family.writable(escaping):
            if others:
                out.append(_by_encoder(encoder, others, fmt))
                others = []
            family.write(out, fmt)
        else:
            others.append(family)
    if others:
        out.append(_by_encoder(encoder, others, fmt))
    if fmt == OPENMETRICS:
        out.append(_EOF)
    return "".join(out).encode("utf-8"), content_type


def _by_encoder(encoder: Callable[[Collector], bytes], families: list[Metric], fmt: str) -> str:
    text = encoder(_Families(families)).decode("utf-8")
    return text.removesuffix(_EOF) if fmt == OPENMETRICS else text
