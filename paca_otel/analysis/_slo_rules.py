"""Multi-window, multi-burn-rate alert rules for availability SLOs (the SRE workbook's).

From "Alerting on SLOs" (The Site Reliability Workbook, ch. 5), for a 30-day budget:

======== ============ ============ ========= ==============================================
preset   burn rate    long window  short     meaning
======== ============ ============ ========= ==============================================
fast     14.4x        1 h          5 m       2 % of the monthly budget in an hour: page
slow     6x           6 h          30 m      5 % of it in six hours: page
ticket   1x           3 d          6 h       on course to spend it all: ticket
======== ============ ============ ========= ==============================================

Each preset becomes one :class:`~paca_otel.rules._rule.Rule` of the ordinary rule
language, so the same rules run in the in-process engine and, through ``rules export``, in
Prometheus. For an SLO with error budget ``b`` over the series selected by ``sel``::

    burn(W)  = sum(error_count{sel}[W]) / sum(request_count{sel}[W]) / b
    alert    = burn(long) > F and burn(short) > F
               and avg(request_rate{sel}[long]) * long_seconds >= min_requests

- *Why sums of the windowed counts*: ``error_count``/``request_count`` count the requests of
  the RED window at each sample, so a window's sum counts each request several times, but
  the same number of times in both sums: their ratio is the window's error ratio.
- *The minimum-traffic guard*: at least ``min_requests`` requests in the long window
  (estimated from the average rate), so three failed requests at 4 a.m. do not page anyone.
- *Lower-severity suppression*: the slow page adds ``unless <fast condition>`` and the
  ticket ``unless (<fast> or <slow>)``, so while a page fires the ticket neither fires nor
  notifies, and one incident pages once. Written into the expressions (not an engine
  feature), it means the same in Prometheus.
- The value of a firing alert is the long window's burn rate (annotations show it).

The in-process series store keeps ``max_window`` seconds (1 h by default) of
``max_points`` points per series: the 6 h and 3 d windows need a larger store (e.g.
``max_window=3d`` and enough points for 3 days at the collection interval), or Prometheus.
:func:`required_window` says how long the store must keep history for a set of rules.
Latency SLOs have no preset: a burn rate needs the count of slow requests, which the
in-process series do not keep (see :mod:`paca_otel.analysis.slo`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from paca_otel.analysis.slo import SLO
from paca_otel.errors import ConfigError
from paca_otel.rules._expr import LabelMatcher as ExprMatcher
from paca_otel.rules._expr import Selector, format_duration, format_number, format_selector
from paca_otel.rules._models import Severity
from paca_otel.rules._rule import Rule

__all__ = ["PRESETS", "BurnRateWindow", "burn_rate_rules", "required_window", "rules_yaml"]


@dataclass(frozen=True, slots=True)
class BurnRateWindow:
    """One preset: alert when both windows burn faster than ``factor`` x the budget."""

    name: str
    factor: float
    long: float
    short: float
    severity: Severity


PRESETS: tuple[BurnRateWindow, ...] = (
    BurnRateWindow("fast", 14.4, 3600.0, 300.0, Severity.CRITICAL),
    BurnRateWindow("slow", 6.0, 21_600.0, 1800.0, Severity.CRITICAL),
    BurnRateWindow("ticket", 1.0, 259_200.0, 21_600.0, Severity.WARNING),
)
"""The SRE workbook's recommended presets for a 30-day SLO, most urgent first."""


def _selector(name: str, slo: SLO) -> str:
    matchers = tuple(ExprMatcher(m.name, m.op, m.value) for m in slo.matchers())
    return format_selector(Selector(name, matchers))


def _burn(slo: SLO, window: float) -> str:
    w = format_duration(window)
    errors = f"sum({_selector('error_count', slo)}[{w}])"
    requests = f"sum({_selector('request_count', slo)}[{w}])"
    return f"{errors} / {requests} / {format_number(slo.budget)}"


def _condition(slo: SLO, preset: BurnRateWindow, min_requests: float) -> str:
    factor = format_number(preset.factor)
    long_w = format_duration(preset.long)
    guard = (
        f"avg({_selector('request_rate', slo)}[{long_w}]) * {format_number(preset.long)}"
        f" >= {format_number(min_requests)}"
    )
    return (
        f"{_burn(slo, preset.long)} > {factor}"
        f" and {_burn(slo, preset.short)} > {factor}"
        f" and {guard}"
    )


def burn_rate_rules(
    slo: SLO,
    *,
    presets: Sequence[BurnRateWindow] = PRESETS,
    min_requests: float = 100.0,
    page_channels: Sequence[str] = (),
    ticket_channels: Sequence[str] = (),
    labels: dict[str, str] | None = None,
) -> list[Rule]:
    """The burn-rate alert rules of one availability SLO, most urgent first.

    Args:
        slo: an availability objective.
        presets: the windows (default :data:`PRESETS`); each suppresses the ones after it.
        min_requests: least requests in the long window for an alert (traffic guard).
        page_channels: channels of the critical presets (default: the engine's).
        ticket_channels: channels of the warning presets (default: the engine's).
        labels: extra labels on every rule (``team``...).

    Raises:
        ConfigError: a latency SLO, or ``min_requests`` < 0.
    """
    if slo.kind != "availability":
        msg = (
            f"SLO {slo.name}: burn-rate presets exist for availability SLOs only (a latency"
            " burn rate needs the count of slow requests, which the series do not keep)"
        )
        raise ConfigError(msg)
    if not min_requests >= 0 or min_requests == float("inf"):
        msg = f"min_requests must be a number of requests >= 0, got {min_requests!r}"
        raise ConfigError(msg)
    min_requests = float(min_requests)
    rules: list[Rule] = []
    conditions: list[str] = []
    for preset in presets:
        condition = _condition(slo, preset, min_requests)
        text = condition
        if conditions:
            text = f"({condition}) unless ({' or '.join(f'({c})' for c in conditions)})"
        conditions.append(condition)
        page = preset.severity is Severity.CRITICAL
        window = f"{format_duration(preset.long)}/{format_duration(preset.short)}"
        rules.append(
            Rule(
                name=f"{slo.name}_burn_{preset.name}",
                condition=text,
                severity=preset.severity,
                group=f"slo_{slo.name}",
                labels={
                    **(labels or {}),
                    "slo": slo.name,
                    "burn_window": window,
                },
                annotations={
                    "summary": (
                        f"SLO {slo.name} ({slo.describe()}): error budget burning at"
                        " {{ $value | humanize }}x over "
                        f"{format_duration(preset.long)} (alert at {format_number(preset.factor)}x)"
                    ),
                },
                channels=list(page_channels if page else ticket_channels),
            )
        )
    return rules


def required_window(rules: Sequence[Rule]) -> float:
    """Longest window in seconds the rules read: the history the series store must keep."""
    from paca_otel.rules._expr import BinOp, Expr, Neg, WindowCall

    def walk(node: Expr) -> float:
        if isinstance(node, WindowCall):
            return node.window
        if isinstance(node, Neg):
            return walk(node.operand)
        if isinstance(node, BinOp):
            return max(walk(node.left), walk(node.right))
        return 0.0

    return max((walk(rule.expr) for rule in rules), default=0.0)


def rules_yaml(rules: Sequence[Rule]) -> str:
    """The rules as a paca-otel rule file (groups kept), for ``rules check/test/export``.

    Generated presets can then be reviewed, versioned and exported like hand-written rules:
    ``paca-otel rules export slo.yaml`` writes them for Prometheus.
    """
    groups: dict[str, dict[str, Any]] = {}
    for rule in rules:
        group = groups.setdefault(rule.group, {"name": rule.group, "rules": []})
        entry: dict[str, Any] = {"alert": rule.name, "expr": rule.condition}
        if rule.for_:
            entry["for"] = format_duration(rule.for_)
        entry["severity"] = rule.severity.value
        if rule.labels:
            entry["labels"] = dict(rule.labels)
        if rule.annotations:
            entry["annotations"] = dict(rule.annotations)
        if rule.channels:
            entry["channels"] = list(rule.channels)
        group["rules"].append(entry)
    header = "# SLO burn-rate alert rules generated by paca_otel.analysis._slo_rules\n"
    body = yaml.safe_dump(
        {"groups": list(groups.values())}, sort_keys=False, allow_unicode=True, width=1_000_000
    )
    return header + body
