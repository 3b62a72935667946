"""Render a :class:`~paca_otel.analysis._report_model.Report` as Markdown or JSON.

Markdown is what people paste into a ticket or a chat; JSON is for machines (the dashboard,
a scheduled job). Both render exactly what the report holds: scrubbing happened when the
report was built (``generate_report(..., scrub=...)``), so a renderer never sees raw text
the scrubber did not. The HTML form lives in :mod:`paca_otel.analysis._report_html`.
"""

from __future__ import annotations

import json
import math

from paca_otel.analysis._report_model import Report
from paca_otel.analysis._report_text import evidence_text, format_value, labels_text
from paca_otel.analysis.suggestions import format_eta, format_span, format_time
from paca_otel.errors import ConfigError

__all__ = ["FORMATS", "format_value", "render", "render_json", "render_markdown"]

FORMATS = ("md", "json", "html")
"""Report formats ``render`` and ``paca-otel report --format`` accept."""


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or line (pipes and newlines escaped)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _md_tables(report: Report) -> list[str]:
    """The SLO, forecast, trend and route tables (only those with rows)."""
    out: list[str] = []
    if report.slos:
        out += ["## SLOs", "", "| SLO | objective | achieved | budget left | burn rate | status |"]
        out.append("|---|---|---|---|---|---|")
        for row in report.slos:
            achieved = "n/a" if row.sli is None else f"{row.sli * 100:.3f} %"
            left = "n/a" if row.budget_remaining is None else f"{row.budget_remaining * 100:.0f} %"
            burn = "n/a" if row.burn_rate is None else f"{row.burn_rate:.2f}x"
            status = {True: "met", False: "**missed**", None: "no traffic"}[row.met]
            out.append(
                f"| {_md(row.name)}: {_md(row.description)} | {row.objective * 100:g} %"
                f" | {achieved} | {left} | {burn} | {status} |"
            )
        out.append("")
    if report.forecasts:
        out += ["## Forecasts", "", "| metric | now | threshold | reached in | range | at |"]
        out.append("|---|---|---|---|---|---|")
        for fc in report.forecasts:
            out.append(
                f"| {_md(fc.metric + labels_text(fc.labels))} | {format_value(fc.level, fc.unit)}"
                f" | {format_value(fc.threshold, fc.unit)} | {format_eta(fc.seconds)}"
                f" | {format_span(fc.earliest, fc.latest)} | {format_time(fc.at)} |"
            )
        out.append("")
    if report.trends:
        out += [
            "## Trends",
            "",
            "| metric | per hour | 95 % interval | start | end | significant |",
        ]
        out.append("|---|---|---|---|---|---|")
        for t in report.trends:
            out.append(
                f"| {_md(t.metric + labels_text(t.labels))} | {t.per_hour:+.4g} {t.unit}"
                f" | {t.per_hour_low:+.3g} .. {t.per_hour_high:+.3g} | {t.start_value:.4g}"
                f" | {t.end_value:.4g} | {'yes' if t.significant else 'no'} |"
            )
        out.append("")
    if report.routes:
        out += ["## Routes", "", "| route | requests | errors | error ratio | p95 | worst p95 |"]
        out.append("|---|---|---|---|---|---|")
        for r in report.routes:
            out.append(
                f"| {_md(f'{r.method} {r.route}'.strip())} | {r.requests:,.0f} | {r.errors:,.0f}"
                f" | {r.error_ratio * 100:.2f} % | {format_value(r.p95, 's')}"
                f" | {format_value(r.p95_max, 's')} |"
            )
        out.append("")
    return out


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown."""
    out: list[str] = [f"# {_md(report.title)}", ""]
    out += [f"_{format_time(report.start)} to {format_time(report.end)}_", ""]
    out += ["## Summary", ""] + [f"- {_md(line)}" for line in report.summary] + [""]
    out += ["## Suggestions", ""]
    if report.suggestions:
        for i, s in enumerate(report.suggestions, start=1):
            out.append(f"{i}. **{_md(s.title)}** — {_md(s.why)}")
            out.append(f"   - evidence: `{_md(evidence_text(s.evidence))}` (rule `{s.rule}`)")
    else:
        out.append("No suggestions: nothing measured crossed a threshold.")
    out.append("")
    out += ["## Findings", ""]
    for area in ("system", "requests", "errors", "latency", "custom"):
        items = [f for f in report.findings if f.area == area]
        if not items:
            continue
        out.append(f"### {area.capitalize()}")
        out.append("")
        for f in items:
            mark = {"critical": "🔴", "warning": "🟠"}.get(f.level, "⚪")
            out.append(f"- {mark} {_md(f.title)} — `{_md(evidence_text(f.evidence))}`")
        out.append("")
    out += _md_tables(report)
    out += ["## Anomalies", ""]
    if report.anomalies:
        out += ["| time | metric | value | score |", "|---|---|---|---|"]
        for a in report.anomalies:
            out.append(
                f"| {format_time(a.timestamp)} | {_md(a.metric + labels_text(a.labels))}"
                f" | {a.value:.4g} | {a.score:.2f} |"
            )
    else:
        out.append("None flagged.")
    out.append("")
    out += ["## Alerts", ""]
    if report.alerts:
        out += ["| time | rule | state | severity | summary |", "|---|---|---|---|---|"]
        for al in report.alerts:
            out.append(
                f"| {format_time(al.timestamp)} | {_md(al.rule + labels_text(al.labels))}"
                f" | {al.state} | {al.severity} | {_md(al.summary)} |"
            )
    else:
        out.append("No alerts fired.")
    out.append("")
    return "\n".join(out)


def render_json(report: Report) -> str:
    """The report as indented JSON (``Report.to_dict``); non-finite numbers become null."""

    def clean(value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(report.to_dict()), indent=2, ensure_ascii=False, allow_nan=False)


def render(report: Report, fmt: str) -> str:
    """The report in ``fmt`` (``md``, ``json`` or ``html``)."""
    if fmt == "md":
        return render_markdown(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        from paca_otel.analysis._report_html import render_html

        return render_html(report)
    msg = f"report format {fmt!r} is not supported; choose one of: {', '.join(FORMATS)}"
    raise ConfigError(msg)
