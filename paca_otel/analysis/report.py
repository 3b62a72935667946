"""Build an analysis report of one period from any SeriesSource: ``generate_report``.

The report a team reads on Monday morning: what happened (anomalies, alerts), where things
are heading (trends, forecasts, time to a threshold), how the service did against its
objectives (SLOs), which routes are slow or failing (and which got slower, when), and what
to do about it, each suggestion tied to its evidence
(:mod:`paca_otel.analysis.suggestions`).

It reads history only through :class:`~paca_otel.analysis.source.SeriesSource` (the history
store, a Prometheus server, or :class:`~paca_otel.analysis._memory_source.MemorySeriesSource`
in tests), and only the series the pipeline writes:

- system: ``cpu_usage``, ``memory_usage``, ``disk_usage`` (percent, no labels);
- requests, errors, latency: the RED aliases per ``route``/``method`` or the HTTP server
  histogram (:mod:`paca_otel.analysis._red`);
- custom metrics: every other name the source lists (up to ``max_custom``), with the
  pipeline's own and histogram-derived series left out. A series that never decreases is
  read as a cumulative counter and analysed as its per-second rate.

Anomalies come from the default ensemble detector (:mod:`paca_otel.analysis.detectors`)
run over the period at a finer step, warmed up on the period before it when the source
has it. Everything is computed on the caller's thread; it is meant for a CLI, a scheduled
job or ``asyncio.to_thread``, never the request path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from paca_otel.analysis._red import Period, RouteStats
from paca_otel.analysis._report_model import (
    AlertEntry,
    Chart,
    Evidence,
    Finding,
    Report,
    RouteEntry,
    SLOEntry,
    scrub_report,
)
from paca_otel.analysis._report_steps import ReportBuilder
from paca_otel.analysis.routes import error_hotspots, latency_shifts, slowest_routes
from paca_otel.analysis.slo import SLO, SLOStatus, slo_status
from paca_otel.analysis.source import SeriesSource
from paca_otel.analysis.suggestions import (
    Observations,
    Thresholds,
    format_eta,
    format_time,
    suggest,
)
from paca_otel.errors import ConfigError
from paca_otel.rules._models import AlertEvent

__all__ = ["generate_report"]


def _alert_entries(alerts: Iterable[AlertEvent], period: Period) -> list[AlertEntry]:
    out: list[AlertEntry] = []
    for event in alerts:
        when = (
            event.starts_at if event.state.value == "firing" else (event.ends_at or event.starts_at)
        )
        if not period.start <= when <= period.end:
            continue
        summary = event.annotations.get("summary") or event.annotations.get("description", "")
        out.append(
            AlertEntry(
                event.rule,
                event.state.value,
                event.severity.value,
                when,
                event.value,
                dict(event.labels),
                summary,
            )
        )
    out.sort(key=lambda a: a.timestamp)
    return out


def _slo_entry(status: SLOStatus) -> SLOEntry:
    slo = status.slo
    return SLOEntry(
        slo.name,
        slo.describe(),
        slo.objective,
        status.sli,
        status.budget_remaining,
        status.burn_rate,
        status.met,
    )


def generate_report(
    source: SeriesSource,
    period: float | Period,
    *,
    now: float,
    alerts: Iterable[AlertEvent] | None = None,
    slos: Sequence[SLO] | None = None,
    thresholds: Thresholds | None = None,
    scrub: Callable[[str], str] | None = None,
    title: str = "Service report",
    max_custom: int = 20,
) -> Report:
    """Analyse ``period`` (seconds back from ``now``, or an explicit :class:`Period`).

    Args:
        source: where history is read from.
        period: the length of the period ending at ``now``, seconds, or a Period.
        now: the report's reference time (epoch seconds), also its ``generated_at``.
        alerts: alert events (firing/resolved) to list; those outside the period are left out.
        slos: objectives to measure over the period.
        thresholds: levels for findings and suggestions (default :class:`Thresholds`).
        scrub: applied to every string of the finished report (see
            :func:`~paca_otel.analysis._report_model.scrub_report`): the privacy hook.
        title: the report's heading.
        max_custom: custom metric names analysed at most.

    Raises:
        ConfigError: a non-positive or non-finite period.
    """
    if isinstance(period, Period):
        span = period
    else:
        if not period > 0 or not math.isfinite(period):
            msg = f"report period must be a positive number of seconds, got {period!r}"
            raise ConfigError(msg)
        span = Period(now - period, now)
    if not span.seconds > 0:
        msg = f"report period must end after it starts, got {span.start}..{span.end}"
        raise ConfigError(msg)
    limits = thresholds or Thresholds()
    builder = ReportBuilder(source, span, limits, now)
    builder.system()
    total, routes = builder.red()
    regressions = latency_shifts(routes)
    slow = slowest_routes(routes)
    hotspots = error_hotspots([*routes, *([total] if total else [])])
    for reg in regressions:
        builder.findings.append(
            Finding(
                "latency",
                "warning",
                f"{reg.name} p95 {reg.before * 1000:.0f} ms -> {reg.after * 1000:.0f} ms"
                f" since {format_time(reg.after_period.start)}",
                Evidence(
                    "latency_p95",
                    reg.after,
                    reg.before,
                    "s",
                    reg.after_period.start,
                    reg.after_period.end,
                    {"route": reg.route, "method": reg.method},
                    f"Mann-Whitney p={reg.p_value:.1g}",
                ),
            )
        )
        route = next((r for r in routes if (r.route, r.method) == (reg.route, reg.method)), None)
        if route is not None:
            builder.charts.append(
                Chart(
                    f"latency_p95 {reg.name}",
                    "s",
                    route.latency,
                    (reg.after_period.start,),
                    limits.latency,
                )
            )
    for spot in hotspots:
        s = spot.stats
        builder.findings.append(
            Finding(
                "errors",
                "warning",
                f"{s.name} fails {s.error_ratio * 100:.2f} % of requests"
                f" (service: {spot.expected_ratio * 100:.2f} %)",
                builder.evidence(
                    "error_rate",
                    s.error_ratio,
                    spot.expected_ratio,
                    "ratio",
                    {"route": s.route, "method": s.method},
                ),
            )
        )
    for s in slow[:3]:
        if s.p95 is not None:
            builder.findings.append(
                Finding(
                    "latency",
                    "warning" if s.p95 >= limits.latency else "info",
                    f"{s.name}: typical p95 {s.p95 * 1000:.0f} ms",
                    builder.evidence(
                        "latency_p95",
                        s.p95,
                        limits.latency,
                        "s",
                        {"route": s.route, "method": s.method},
                        note="median of the per-step p95",
                    ),
                )
            )
    builder.custom(max_custom)
    statuses = [slo_status(source, slo, span, step=builder.step) for slo in slos or ()]
    alert_entries = _alert_entries(alerts or (), span)
    builder.anomalies.sort(key=lambda a: a.timestamp)
    obs = Observations(
        start=span.start,
        end=span.end,
        thresholds=limits,
        trends=builder.trends,
        forecasts=builder.forecasts,
        p95_levels=builder.p95_levels,
        total=total,
        regressions=regressions,
        slow_routes=slow,
        hotspots=hotspots,
        slos=statuses,
        alerts=alert_entries,
        anomalies=builder.anomalies,
    )
    suggestions = suggest(obs)
    summary = _summary(
        span,
        total=total,
        builder=builder,
        statuses=statuses,
        alerts=alert_entries,
        suggestions=len(suggestions),
    )
    route_rows = sorted(routes, key=lambda r: r.requests, reverse=True)[:15]
    report = Report(
        title=title,
        generated_at=now,
        start=span.start,
        end=span.end,
        summary=tuple(summary),
        findings=tuple(builder.findings),
        anomalies=tuple(builder.anomalies),
        trends=tuple(builder.trends.values()),
        forecasts=tuple(builder.forecasts.values()),
        slos=tuple(_slo_entry(s) for s in statuses),
        alerts=tuple(alert_entries),
        suggestions=tuple(suggestions),
        routes=tuple(
            RouteEntry(r.route, r.method, r.requests, r.errors, r.error_ratio, r.p95, r.p95_max)
            for r in route_rows
        ),
        charts=tuple(builder.charts),
    )
    return scrub_report(report, scrub)


def _summary(
    span: Period,
    *,
    total: RouteStats | None,
    builder: ReportBuilder,
    statuses: Sequence[SLOStatus],
    alerts: Sequence[AlertEntry],
    suggestions: int,
) -> list[str]:
    hours = span.seconds / 3600
    lines = [f"{hours:g} h from {format_time(span.start)} to {format_time(span.end)}."]
    if total is not None and total.requests > 0:
        lines.append(
            f"{total.requests:,.0f} requests ({total.requests / span.seconds:.2f}/s),"
            f" {total.error_ratio * 100:.2f} % failed."
        )
    problems = [f for f in builder.findings if f.level != "info"]
    lines.append(
        f"{len(problems)} finding{'s' if len(problems) != 1 else ''} to look at,"
        f" {len(builder.anomalies)} anomal{'y' if len(builder.anomalies) == 1 else 'ies'},"
        f" {sum(1 for a in alerts if a.state == 'firing')} alert(s) fired."
    )
    for status in statuses:
        if status.met is not None:
            verdict = "met" if status.met else "MISSED"
            lines.append(f"SLO {status.slo.name} {verdict}: {100 * (status.sli or 0):.3f} %.")
    soonest = min(builder.forecasts.values(), key=lambda f: f.seconds, default=None)
    if soonest is not None:
        lines.append(
            f"{soonest.metric} reaches {soonest.threshold:g} {soonest.unit} in"
            f" {format_eta(soonest.seconds)}."
        )
    lines.append(f"{suggestions} suggestion{'s' if suggestions != 1 else ''}.")
    return lines
