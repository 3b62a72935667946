"""Tests for paca_otel.signals._values: which values an instrument takes, and why not."""

from __future__ import annotations

import math
from decimal import Decimal
from enum import IntEnum
from fractions import Fraction

import pytest

from paca_otel.signals._values import INT_MAX, INT_MIN, number, rejection


class Size(IntEnum):
    """An int enum used as a value."""

    BIG = 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        (1.5, 1.5),
        (INT_MAX, INT_MAX),
        (INT_MIN, INT_MIN),
        (Size.BIG, 5),
        (Fraction(1, 4), 0.25),
        (Decimal("2.5"), 2.5),
    ],
)
def test_numbers_become_plain_int_or_float(value: object, expected: float) -> None:
    """In-range numbers of any numeric type come back as a plain int or float."""
    result = number(value, non_negative=False)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "invalid_value_type"),
        ("3", "invalid_value_type"),
        (None, "invalid_value_type"),
        (INT_MAX + 1, "out_of_range_value"),
        (INT_MIN - 1, "out_of_range_value"),
        (10**400, "out_of_range_value"),
        (Fraction(10**400), "out_of_range_value"),
        (math.nan, "non_finite_value"),
        (-math.inf, "non_finite_value"),
        (Decimal("Infinity"), "non_finite_value"),
        (-1, "negative_value"),
    ],
)
def test_refused_values_and_their_reasons(value: object, reason: str) -> None:
    """Booleans, non-numbers, numbers beyond int64 or float, and negatives are refused."""
    assert number(value, non_negative=True) is None
    assert rejection(value, "counter", non_negative=True, labels=None)[0] == reason


def test_negative_values_fit_gauges() -> None:
    """Negative numbers are refused only where the instrument is non-negative."""
    assert number(-1, non_negative=False) == -1


def test_rejection_detail_is_bounded() -> None:
    """A 1 MB string offered as a value does not end up whole in the warning."""
    _reason, detail = rejection("x" * 1_000_000, "gauge", non_negative=False, labels=None)
    assert len(detail) < 200
