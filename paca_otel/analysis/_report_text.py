"""How report values and evidence read as text, shared by the Markdown and HTML renderers."""

from __future__ import annotations

import math
from collections.abc import Mapping

from paca_otel.analysis._report_model import Evidence
from paca_otel.analysis.suggestions import format_time

__all__ = ["evidence_text", "format_value", "labels_text"]


def format_value(value: float | None, unit: str) -> str:
    """A value with its unit, readable: ``394 ms``, ``76.0 %``, ``0.52 %`` (ratio), ``12/s``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if abs(value) < 10 else f"{value:.1f} s"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    if unit == "x":
        return f"{value:.1f}x"
    text = f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return f"{text}{'' if not unit else (unit if unit.startswith('/') else ' ' + unit)}"


def labels_text(labels: Mapping[str, str]) -> str:
    """``{route="/a"}``: a label set as PromQL writes it (empty for none)."""
    if not labels:
        return ""
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def evidence_text(ev: Evidence) -> str:
    """``disk_usage = 76.0 % (threshold 90.0 %, Thu 00:00 UTC to Fri 00:00 UTC; note)``."""
    threshold = (
        f", threshold {format_value(ev.threshold, ev.unit)}" if ev.threshold is not None else ""
    )
    span = (
        format_time(ev.start)
        if ev.start == ev.end
        else f"{format_time(ev.start)} to {format_time(ev.end)}"
    )
    note = f"; {ev.note}" if ev.note else ""
    value = format_value(ev.value, ev.unit)
    return f"{ev.metric}{labels_text(ev.labels)} = {value}{threshold}, {span}{note}"
