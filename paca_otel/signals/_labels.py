"""Make metric labels safe to store, scrape and export, once per distinct label set.

Why this exists: the OTel SDK does not check metric attributes (the spec exempts metrics from
attribute limits), yet one bad label breaks far more than its own series:

- a string UTF-8 cannot encode (a lone surrogate such as ``"\\udcff"``, which Python makes when
  it decodes bytes with ``surrogateescape``) fails every Prometheus scrape, every JSON snapshot
  and every OTLP batch that carries it;
- an int beyond 64 bits, ``None`` or an arbitrary object makes the OTLP encoder reject the whole
  batch;
- a 1 MB value is kept and re-exported on every collection.

The rules, OTel's attribute rules plus Prometheus' "an empty label is a missing label":

- keys must be non-empty ``str`` of at most 255 characters (OTel's instrument-name bound;
  subclasses such as ``StrEnum`` become plain ``str``); other keys are dropped, as the OTel
  SDK drops invalid span attributes. Keys are identifiers chosen by code, so they are never
  cut: a cut key would silently become another label;
- ``str`` keys and values keep their text; code points UTF-8 cannot encode become U+FFFD (a
  valid surrogate *pair* is joined into its character first);
- ``str`` values longer than the limit are cut to it (OTel's attribute-value length limit
  semantics: strings, and each string in a sequence);
- ``bool`` and ``float`` stay; ``int`` stays inside the signed 64-bit range OTLP carries and
  becomes its decimal text beyond it; ``int``/``float`` subclasses become the plain type;
- ``None`` drops the label (Prometheus treats an empty label as absent);
- lists and tuples of one primitive type become tuples (OTel's homogeneous arrays); other
  sequences are dropped;
- any other object becomes ``str(value)`` (what prometheus_client does with label values).

Every repair is counted in ``paca_otel.dropped`` (reasons ``label_value_truncated``,
``label_value_unencodable``, ``invalid_label``) and warned about once per metric.

Hot path: the cleaned label set is cached by :func:`cache_key` (keys then values, one flat
tuple), so a label set seen before costs one tuple build and one dict lookup. The cache is
bounded (cleared when full) and never holds a truncated set, whose key would pin the
oversized original value in memory; those are cleaned, and counted, on every use. Written
by hand because neither the OTel SDK nor prometheus_client offers label validation for
metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from paca_otel import _internal

__all__ = [
    "DEFAULT_LABEL_VALUE_MAX_LENGTH",
    "AttributeValue",
    "LabelCleaner",
    "Labels",
    "cache_key",
    "label_value_max_length",
    "safe_text",
    "set_label_scrubber",
    "set_label_value_max_length",
]

_logger = logging.getLogger("paca_otel.signals.metrics")

DEFAULT_LABEL_VALUE_MAX_LENGTH = 2048
"""Characters kept of a label value: Grafana Mimir and Cortex reject longer values by default
(``-validation.max-length-label-value``), so a longer one would be lost downstream anyway."""

CACHE_ENTRIES = 4096
"""Distinct label sets cached per :class:`LabelCleaner` before the cache is cleared."""

KEY_MAX_LENGTH = 255
"""Longest label key kept (OTel's instrument-name length bound); longer keys are dropped."""

_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1

Labels = Mapping[str, str | int | float | bool]
"""Metric attributes: string keys, primitive values (what OTel metric attributes allow)."""

AttributeValue = str | bool | int | float | tuple[str, ...] | tuple[bool, ...] | tuple[int, ...]
"""What a cleaned label value is (OTel's attribute value types)."""

_default_max_length = DEFAULT_LABEL_VALUE_MAX_LENGTH
_scrub: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None


def set_label_scrubber(scrub: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None) -> None:
    """Scrub every new label set with ``scrub`` (``configure()`` passes the privacy scrubber).

    It runs once per distinct label set, when the set is first cleaned; the cached result is
    what the hot path reuses, so scrubbing costs nothing per measurement.
    """
    global _scrub  # noqa: PLW0603  # a process default, set once at set-up
    _scrub = scrub


def set_label_value_max_length(max_length: int) -> None:
    """Set the process-wide limit used by collectors not given one (``configure()`` calls it)."""
    global _default_max_length  # noqa: PLW0603  # a process default, set once at set-up
    _default_max_length = _checked_limit(max_length)


def label_value_max_length() -> int:
    """The process-wide label value length limit (see :func:`set_label_value_max_length`)."""
    return _default_max_length


def _checked_limit(max_length: int) -> int:
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        from paca_otel.errors import ConfigError

        msg = (
            f"label_value_max_length must be a whole number of characters >= 1, got {max_length!r}"
        )
        raise ConfigError(msg)
    return max_length


def safe_text(text: str, max_length: int | None = None) -> str:
    """``text`` with unencodable code points replaced, cut to ``max_length`` characters.

    Cheap when there is nothing to do (an ASCII check and a length check, both in C). Used
    as the safety net where text from outside paca-otel's recording path is served
    (exposition, snapshots, the RED figures); it counts nothing.
    """
    if max_length is not None and len(text) > max_length:
        text = _cut(text, max_length)
    if text.isascii():
        return text
    return _repair(text)


def _cut(text: str, max_length: int) -> str:
    """The first ``max_length`` characters, not splitting a surrogate pair."""
    if "\ud800" <= text[max_length - 1] <= "\udbff":
        return text[: max_length - 1]
    return text[:max_length]


def _repair(text: str) -> str:
    """Replace what UTF-8 cannot encode with U+FFFD, joining valid surrogate pairs first."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def cache_key(labels: Mapping[Any, Any]) -> tuple[Any, ...]:
    """The cache key of a label mapping: its keys, then its values, in one flat tuple.

    One tuple instead of a tuple of ``(key, value)`` pairs saves allocating a pair per label
    (~10 % of the lookup). Two mappings give equal keys only with the same keys in the same
    order and equal values. The hot path in :mod:`paca_otel.signals._metrics` builds the same
    expression inline, to save a call.
    """
    return (*labels, *labels.values())


class LabelCleaner:
    """Cleans label mappings by the module's rules and caches the result per label set.

    Args:
        max_length: Characters kept of a key or string value; ``None`` means the process-wide
            limit at construction (:func:`label_value_max_length`).
        max_entries: Distinct label sets cached before the cache is cleared.
    """

    __slots__ = ("cache", "max_entries", "max_length")

    def __init__(self, max_length: int | None = None, max_entries: int = CACHE_ENTRIES) -> None:
        self.max_length = _default_max_length if max_length is None else _checked_limit(max_length)
        self.max_entries = max_entries
        self.cache: dict[tuple[Any, ...], dict[str, AttributeValue]] = {}
        """:func:`cache_key` -> cleaned labels; read directly by the hot path."""

    def clean(self, labels: object, metric: str) -> dict[str, AttributeValue] | None:
        """The safe form of ``labels``, or ``None`` when it is not a mapping at all.

        Note that ``{"ok": True}``, ``{"ok": 1}`` and ``{"ok": 1.0}`` share a cache entry
        (equal keys): the first one seen wins, exactly as the SDK itself merges them into
        one series.
        """
        try:
            items: tuple[Any, ...] = (*labels.items(),)  # type: ignore[attr-defined]  # duck-typed
            key = cache_key(labels)  # type: ignore[arg-type]  # a mapping, as items() showed
        except Exception:
            return None
        cache: dict[tuple[Any, ...], dict[str, AttributeValue]] | None = self.cache
        try:
            return self.cache[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value (a list): clean it every time, uncached
            cache = None
        cleaned: dict[str, AttributeValue] = {}
        repairs: set[str] = set()
        try:
            for pair in items:
                name, value = pair
                self._add(cleaned, name, value, repairs)
        except (TypeError, ValueError):  # items() that are not pairs: not a mapping after all
            return None
        for reason in sorted(repairs):
            _count(reason, metric, self.max_length)
        scrub = _scrub
        if scrub is not None:
            cleaned = dict(scrub(cleaned))
        if cache is not None and "label_value_truncated" not in repairs:
            if len(cache) >= self.max_entries:
                cache.clear()
            cache[key] = cleaned
        return cleaned

    def _add(
        self, cleaned: dict[str, AttributeValue], key: object, value: object, repairs: set[str]
    ) -> None:
        if not isinstance(key, str) or not key or len(key) > KEY_MAX_LENGTH:
            repairs.add("invalid_label")
            return
        name = str.__str__(key)
        if not name.isascii():
            name = self._repaired(name, repairs)
        if value is None:
            repairs.add("invalid_label")
            return
        safe = self._value(value, repairs)
        if safe is None:
            repairs.add("invalid_label")
            return
        cleaned[name] = safe

    def _value(self, value: object, repairs: set[str]) -> AttributeValue | None:
        if isinstance(value, str):
            return self._text(str.__str__(value), repairs)
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            number = int(value)
            if _INT_MIN <= number <= _INT_MAX:
                return number
            try:
                return self._text(str(number), repairs)
            except ValueError:  # more digits than int -> str allows (sys.int_info)
                return None
        if isinstance(value, float):
            return float(value)
        if isinstance(value, list | tuple):
            return self._sequence(value, repairs)
        try:
            text = str(value)
        except Exception:
            return None
        return self._text(text, repairs)

    def _sequence(
        self, values: list[Any] | tuple[Any, ...], repairs: set[str]
    ) -> AttributeValue | None:
        """A homogeneous tuple of ``str``, ``bool``, ``int`` or ``float``; else ``None``."""
        kinds = {type(v) for v in values}
        if len(kinds) > 1 or not kinds <= {str, bool, int, float}:
            return None
        if kinds == {str}:
            return tuple(self._text(v, repairs) for v in values)
        if kinds == {int} and not all(_INT_MIN <= v <= _INT_MAX for v in values):
            return None
        return tuple(values)

    def _text(self, text: str, repairs: set[str]) -> str:
        if len(text) > self.max_length:
            text = _cut(text, self.max_length)
            repairs.add("label_value_truncated")
        if text.isascii():
            return text
        return self._repaired(text, repairs)

    @staticmethod
    def _repaired(text: str, repairs: set[str]) -> str:
        repaired = _repair(text)
        if repaired is not text:
            repairs.add("label_value_unencodable")
        return repaired


_DETAILS = {
    "label_value_truncated": "a label value longer than %d characters was cut to it "
    "(the limit is the label_value_max_length setting, PACA_OTEL_LABEL_VALUE_MAX_LENGTH)",
    "label_value_unencodable": "a label held code points UTF-8 cannot encode; they became U+FFFD",
    "invalid_label": "a label with a non-str, empty or over-long key, a None value or an "
    "unusable value was left out",
}


def _count(reason: str, metric: str, max_length: int) -> None:
    _internal.drops.add(reason)
    detail = _DETAILS[reason]
    if "%d" in detail:
        detail = detail % max_length
    _internal.warn_once(
        _logger,
        f"metrics:{reason}:{metric}",
        "paca-otel repaired the labels of metric %r: %s. Further ones for this metric are "
        "only counted in paca_otel.dropped{reason=%s}.",
        metric,
        detail,
        reason,
    )
