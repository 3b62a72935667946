"""Which measurement values an instrument takes, and why a refused one was refused.

The OTel SDK and the OTLP encoder only know plain ``int`` and ``float``: ``10**400`` raises
``OverflowError`` inside the SDK, and one ``True`` or int beyond the signed 64-bit ``as_int``
makes the encoder reject the whole batch. :class:`~paca_otel.signals._metrics.MetricsCollector`
keeps plain in-range ints and finite floats on its hot path (a class-identity check and a
chained comparison); everything else comes here, off the hot path, to be normalised
(``IntEnum``, ``Decimal``, ``Fraction``, numpy scalars) or refused with a reason for the
``paca_otel.dropped`` self-metric.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from decimal import Decimal

__all__ = ["INT_MAX", "INT_MIN", "number", "rejection"]

INT_MIN = -(2**63)
"""The lowest integer OTLP's signed 64-bit ``as_int`` carries."""
INT_MAX = 2**63 - 1
"""The highest integer OTLP's signed 64-bit ``as_int`` carries."""


def number(value: object, *, non_negative: bool) -> int | float | None:
    """``value`` as a plain int (inside int64) or finite float the instrument takes, or None.

    ``non_negative`` is true for counters and histograms, which take no negative values.

    Subclasses and other numeric types (``IntEnum``, numpy scalars, ``Decimal``,
    ``Fraction``) become a plain ``int`` or ``float``: the OTLP encoder only knows those.
    Booleans are refused although they are ints: ``True`` is a flag, not a measurement, and
    OTLP's ``as_int`` rejects it, losing the whole batch.
    """
    result: int | float
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        result = int(value)
        if not INT_MIN <= result <= INT_MAX:
            return None
    elif isinstance(value, numbers.Real | Decimal):
        try:
            result = float(value)
        except (OverflowError, ValueError):
            return None
        if not -math.inf < result < math.inf:
            return None
    else:
        return None
    if result < 0 and non_negative:
        return None
    return result


def rejection(value: object, kind: str, *, non_negative: bool, labels: object) -> tuple[str, str]:
    """The ``paca_otel.dropped`` reason and a readable detail for a refused measurement.

    ``kind`` names the instrument kind in the detail.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        shown = reprlib.repr(value)  # bounded: the value may be a 1 MB string
        return "invalid_value_type", f"value {shown} is a {type(value).__name__}, not a number"
    if isinstance(value, numbers.Integral):
        big = int(value)
        if not INT_MIN <= big <= INT_MAX:
            return "out_of_range_value", (
                f"an integer of {big.bit_length()} bits does not fit the signed 64-bit range "
                "OTLP carries"
            )
    else:
        try:
            as_float = float(value)
        except (OverflowError, ValueError):
            return "out_of_range_value", "the value does not fit a 64-bit float"
        if not math.isfinite(as_float):
            return "non_finite_value", f"value {value!r} is not finite"
    if value < 0 and non_negative:
        return "negative_value", f"value {value!r} is negative, which a {kind} cannot take"
    # The value was fine, so the labels were not a mapping.
    return "invalid_labels", (
        f"labels of type {type(labels).__name__} are not a mapping of str to str, int, float "
        "or bool"
    )
