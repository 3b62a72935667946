"""Tests for paca_otel.signals._labels: the label rules, the cache and its bounds."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest

from paca_otel import _internal
from paca_otel.errors import ConfigError
from paca_otel.signals import _labels as labels_mod
from paca_otel.signals._labels import (
    DEFAULT_LABEL_VALUE_MAX_LENGTH,
    KEY_MAX_LENGTH,
    LabelCleaner,
    label_value_max_length,
    safe_text,
    set_label_value_max_length,
)


class Color(str, enum.Enum):
    """A str-mixin enum, whose ``str()`` is ``Color.RED`` rather than its value."""

    RED = "red"


class Level(enum.IntEnum):
    """An int enum used as a label value."""

    HIGH = 3


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    _internal.reset_warnings()
    yield
    _internal.reset_warnings()


@pytest.fixture(autouse=True)
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The reasons passed to the ``paca_otel.dropped`` self-metric, in order (never global)."""
    seen: list[str] = []
    monkeypatch.setattr(_internal.drops, "add", lambda reason, amount=1: seen.append(reason))
    return seen


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("caf\u00e9 \u2603", "caf\u00e9 \u2603"),
        ("a\udcffb", "a\ufffdb"),
        ("\ud800", "\ufffd"),
        ("\ud83d\ude00", "\U0001f600"),  # a valid pair is joined, not replaced
        (Color.RED, "red"),
        (True, True),
        (1.5, 1.5),
        (7, 7),
        (Level.HIGH, 3),
        (2**63 - 1, 2**63 - 1),
        (-(2**63), -(2**63)),
        (2**63, str(2**63)),
        (["a", "b\udcff"], ("a", "b\ufffd")),
        ((1, 2), (1, 2)),
        ([True, False], (True, False)),
        (enum.Enum("E", "X")["X"], "E.X"),
    ],
)
def test_value_rules(value: object, expected: object) -> None:
    """Each value type is kept, normalised or stringified by the documented rule."""
    cleaned = LabelCleaner(max_length=100).clean({"k": value}, "m")
    assert cleaned == {"k": expected}
    assert type(cleaned["k"]) is type(expected)


@pytest.mark.parametrize(
    "value", [None, [1, "a"], [[1]], [2**64], pytest.param(10**5000, id="10**5000")]
)
def test_unusable_values_drop_the_label(value: object, counted: list[str]) -> None:
    """None, mixed or nested sequences and unprintable ints leave the label out, counted."""
    assert LabelCleaner().clean({"k": value, "ok": "1"}, "m") == {"ok": "1"}
    assert counted == ["invalid_label"]


@pytest.mark.parametrize("key", [5, None, "", "k" * (KEY_MAX_LENGTH + 1)])
def test_bad_keys_drop_the_label(key: Any, counted: list[str]) -> None:
    """Non-str, empty and over-long keys are left out, as OTel drops invalid attributes."""
    assert LabelCleaner().clean({key: "v", "ok": "1"}, "m") == {"ok": "1"}
    assert counted == ["invalid_label"]


def test_keys_are_repaired_not_cut(counted: list[str]) -> None:
    """A key with a lone surrogate is repaired; a long key within bounds is kept whole."""
    key = "k" * KEY_MAX_LENGTH
    assert LabelCleaner(max_length=2).clean({"a\udcff": "v", key: "v"}, "m") == {
        "a\ufffd": "v",
        key: "v",
    }
    assert counted == ["label_value_unencodable"]


def test_values_are_cut_at_the_limit_without_splitting_a_pair(counted: list[str]) -> None:
    """A value is cut to the limit; a surrogate pair on the edge is not split in half."""
    cleaner = LabelCleaner(max_length=3)
    assert cleaner.clean({"k": "abcdef"}, "m") == {"k": "abc"}
    assert cleaner.clean({"k": "ab\ud83d\ude00"}, "m") == {"k": "ab"}
    assert cleaner.clean({"k": ["abcd", "x"]}, "m") == {"k": ("abc", "x")}
    assert counted == ["label_value_truncated"] * 3


def test_a_seen_label_set_is_served_from_the_cache(counted: list[str]) -> None:
    """A repaired label set is cleaned and counted once; later uses hit the cache."""
    cleaner = LabelCleaner()
    first = cleaner.clean({"k": "\udcff"}, "m")
    assert cleaner.clean({"k": "\udcff"}, "m") is first
    assert counted == ["label_value_unencodable"]


def test_truncated_and_unhashable_sets_are_not_cached() -> None:
    """The cache never pins an oversized original value, and skips unhashable ones."""
    cleaner = LabelCleaner(max_length=4)
    cleaner.clean({"k": "x" * 1000}, "m")
    cleaner.clean({"k": ["a"]}, "m")
    assert cleaner.cache == {}


def test_cache_is_bounded() -> None:
    """Beyond ``max_entries`` distinct label sets the cache starts over."""
    cleaner = LabelCleaner(max_entries=3)
    for i in range(10):
        cleaner.clean({"i": i}, "m")
        assert len(cleaner.cache) <= 3


@pytest.mark.parametrize("labels", [[("a", "b")], "ab", 5, {1, 2}])
def test_non_mappings_are_refused(labels: object) -> None:
    """Anything without mapping-like ``items()`` gives None (the caller drops it)."""
    assert LabelCleaner().clean(labels, "m") is None


def test_any_mapping_is_accepted() -> None:
    """Read-only and custom mappings work like dicts."""
    assert LabelCleaner().clean(MappingProxyType({"k": "v"}), "m") == {"k": "v"}


def test_repairs_warn_once_per_metric_and_reason(
    caplog: pytest.LogCaptureFixture, counted: list[str]
) -> None:
    """One warning per (reason, metric), naming the metric and the setting for truncation."""
    cleaner = LabelCleaner(max_length=2)
    with caplog.at_level("WARNING", logger="paca_otel"):
        for i in range(3):
            cleaner.clean({"k": f"long{i}"}, "m")
    assert counted == ["label_value_truncated"] * 3
    messages = [r.getMessage() for r in caplog.records if r.name == "paca_otel.signals.metrics"]
    assert len(messages) == 1
    assert "'m'" in messages[0]
    assert "PACA_OTEL_LABEL_VALUE_MAX_LENGTH" in messages[0]


def test_process_default_and_its_validation() -> None:
    """The process-wide limit feeds new cleaners; a bad limit is a ConfigError."""
    assert label_value_max_length() == DEFAULT_LABEL_VALUE_MAX_LENGTH
    try:
        set_label_value_max_length(10)
        assert LabelCleaner().max_length == 10
    finally:
        set_label_value_max_length(DEFAULT_LABEL_VALUE_MAX_LENGTH)
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ConfigError, match="label_value_max_length"):
            set_label_value_max_length(bad)  # type: ignore[arg-type]  # the bad type is the test
        with pytest.raises(ConfigError, match="label_value_max_length"):
            LabelCleaner(max_length=bad)  # type: ignore[arg-type]  # the bad type is the test


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("ok", None, "ok"),
        ("a\udcff", None, "a\ufffd"),
        ("abcdef", 2, "ab"),
        ("\u00e9", 5, "\u00e9"),
    ],
)
def test_safe_text(text: str, limit: int | None, expected: str) -> None:
    """The safety net replaces unencodable code points and optionally cuts."""
    assert safe_text(text, limit) == expected
    safe_text(text, limit).encode("utf-8")


def test_module_exports() -> None:
    """The documented names are exported."""
    assert set(labels_mod.__all__) <= set(dir(labels_mod))
