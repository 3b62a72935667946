"""Render a report as one self-contained HTML file with inline SVG line charts.

The file must open offline, from an e-mail attachment or a CI artefact, years later: so no
JavaScript, no CDN, no web fonts, no external image; styles inline in one ``<style>``
element, and each chart a small hand-written ``<svg>`` (a polyline per unbroken stretch,
a dashed threshold line, a shaded forecast band, red dots at anomalies). A charting
library would bring JavaScript or a renderer dependency for what is a few dozen lines of
coordinates. Every text goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence

from paca_otel.analysis._report_model import Chart, Report
from paca_otel.analysis._report_text import evidence_text, format_value
from paca_otel.analysis.suggestions import format_eta, format_span, format_time

__all__ = ["render_html", "svg_chart"]

WIDTH, HEIGHT = 460, 160
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 24

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1000px;color:#1d2330;padding:0 1em}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:1px solid #dde;padding-bottom:.2em;
margin-top:1.6em}
.muted{color:#667}.ev{font:12px ui-monospace,Menlo,Consolas,monospace;color:#445}
table{border-collapse:collapse;width:100%;margin:.5em 0}td,th{border-bottom:1px solid #eef;
padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f5f6fa}
.critical{color:#b3261e}.warning{color:#a15c00}.info{color:#445}
ol.sug li{margin-bottom:.6em}.charts{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;border:1px solid #e4e6ee;border-radius:6px;padding:6px}
figcaption{font-size:12px;color:#445}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _segments(points: Sequence[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Split at gaps longer than three typical steps, so a gap is drawn as a gap."""
    if len(points) < 2:
        return [list(points)] if points else []
    steps = sorted(b[0] - a[0] for a, b in itertools.pairwise(points))
    typical = steps[len(steps) // 2] or 1.0
    out: list[list[tuple[float, float]]] = [[points[0]]]
    for prev, cur in itertools.pairwise(points):
        if cur[0] - prev[0] > 3 * typical:
            out.append([])
        out[-1].append(cur)
    return out


def svg_chart(chart: Chart, *, start: float, end: float) -> str:
    """One chart as an inline ``<svg>`` element (the x axis spans the report and its forecast)."""
    values = [v for _, v in chart.points]
    values += [x for _, low, high in chart.band for x in (low, high)]
    if chart.threshold is not None:
        values.append(chart.threshold)
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        high, low = high + 1.0, low - 1.0
    pad = (high - low) * 0.05
    low, high = (low - pad if low < 0 or low - pad >= 0 else 0.0), high + pad
    x_end = max([end, *(t for t, _, _ in chart.band)])
    x_span = (x_end - start) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - start) / x_span * plot_w

    def y(v: float) -> float:
        return TOP + (high - v) / (high - low) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{_e(chart.title)}">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafbfe"'
        ' stroke="#e4e6ee"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 10}" font-size="10" text-anchor="end" fill="#667">'
        f"{_e(format_value(high, chart.unit))}</text>",
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" font-size="10" text-anchor="end" fill="#667">'
        f"{_e(format_value(low, chart.unit))}</text>",
        f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="10" fill="#667">'
        f"{_e(format_time(start))}</text>",
        f'<text x="{x(end)}" y="{HEIGHT - 6}" font-size="10" text-anchor="end" fill="#667">'
        f"{_e(format_time(end))}</text>",
    ]
    if chart.band:
        upper = " ".join(f"{x(t):.1f},{y(h):.1f}" for t, _, h in chart.band)
        lower = " ".join(f"{x(t):.1f},{y(lo):.1f}" for t, lo, _ in reversed(chart.band))
        parts.append(f'<polygon points="{upper} {lower}" fill="#3d6fd1" fill-opacity="0.15"/>')
    if chart.threshold is not None:
        ty = y(chart.threshold)
        parts.append(
            f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{LEFT + plot_w}" y2="{ty:.1f}" stroke="#b3261e"'
            ' stroke-dasharray="4 3" stroke-width="1"/>'
        )
    for segment in _segments(chart.points):
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in segment)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="#3d6fd1" stroke-width="1.4"/>'
        )
    by_time = dict(chart.points)
    for mark in chart.marks:
        nearest = min(chart.points, key=lambda p: abs(p[0] - mark), default=None)
        if nearest is None:
            continue
        value = by_time.get(mark, nearest[1])
        parts.append(
            f'<circle cx="{x(mark):.1f}" cy="{y(value):.1f}" r="3.5" fill="#b3261e">'
            f"<title>{_e(format_time(mark))}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: Report) -> str:
    """The report as one offline HTML document (inline CSS and SVG, no scripts)."""
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(report.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(report.title)}</h1>",
        f'<p class="muted">{_e(format_time(report.start))} to {_e(format_time(report.end))}</p>',
        "<h2>Summary</h2><ul>",
        *(f"<li>{_e(line)}</li>" for line in report.summary),
        "</ul><h2>Suggestions</h2>",
    ]
    if report.suggestions:
        out.append('<ol class="sug">')
        for s in report.suggestions:
            out.append(
                f"<li><strong>{_e(s.title)}</strong><br>{_e(s.why)}<br>"
                f'<span class="ev">evidence: {_e(evidence_text(s.evidence))}'
                f" (rule {_e(s.rule)})</span></li>"
            )
        out.append("</ol>")
    else:
        out.append("<p>No suggestions: nothing measured crossed a threshold.</p>")
    if report.charts:
        out.append('<h2>Charts</h2><div class="charts">')
        for chart in report.charts:
            svg = svg_chart(chart, start=report.start, end=report.end)
            if svg:
                out.append(f"<figure>{svg}<figcaption>{_e(chart.title)}</figcaption></figure>")
        out.append("</div>")
    out.append("<h2>Findings</h2><table><tr><th>area</th><th>finding</th><th>evidence</th></tr>")
    for f in report.findings:
        out.append(
            f'<tr><td>{_e(f.area)}</td><td class="{_e(f.level)}">{_e(f.title)}</td>'
            f'<td class="ev">{_e(evidence_text(f.evidence))}</td></tr>'
        )
    out.append("</table>")
    if report.slos:
        out.append(
            "<h2>SLOs</h2><table><tr><th>SLO</th><th>achieved</th><th>budget left</th>"
            "<th>burn rate</th><th>status</th></tr>"
        )
        for row in report.slos:
            achieved = "n/a" if row.sli is None else f"{row.sli * 100:.3f} %"
            left = "n/a" if row.budget_remaining is None else f"{row.budget_remaining * 100:.0f} %"
            burn = "n/a" if row.burn_rate is None else f"{row.burn_rate:.2f}x"
            status = {True: "met", False: "missed", None: "no traffic"}[row.met]
            css = "critical" if row.met is False else "info"
            out.append(
                f"<tr><td>{_e(row.name)}: {_e(row.description)}</td><td>{achieved}</td>"
                f'<td>{left}</td><td>{burn}</td><td class="{css}">{status}</td></tr>'
            )
        out.append("</table>")
    if report.forecasts:
        out.append(
            "<h2>Forecasts</h2><table><tr><th>metric</th><th>now</th><th>threshold</th>"
            "<th>reached in</th><th>range</th></tr>"
        )
        for fc in report.forecasts:
            out.append(
                f"<tr><td>{_e(fc.metric)}</td><td>{_e(format_value(fc.level, fc.unit))}</td>"
                f"<td>{_e(format_value(fc.threshold, fc.unit))}</td>"
                f"<td>{_e(format_eta(fc.seconds))} ({_e(format_time(fc.at))})</td>"
                f"<td>{_e(format_span(fc.earliest, fc.latest))}</td></tr>"
            )
        out.append("</table>")
    if report.routes:
        out.append(
            "<h2>Routes</h2><table><tr><th>route</th><th>requests</th><th>error ratio</th>"
            "<th>p95</th><th>worst p95</th></tr>"
        )
        for r in report.routes:
            out.append(
                f"<tr><td>{_e(f'{r.method} {r.route}'.strip())}</td><td>{r.requests:,.0f}</td>"
                f"<td>{r.error_ratio * 100:.2f} %</td><td>{_e(format_value(r.p95, 's'))}</td>"
                f"<td>{_e(format_value(r.p95_max, 's'))}</td></tr>"
            )
        out.append("</table>")
    out.append("<h2>Anomalies</h2>")
    if report.anomalies:
        out.append("<table><tr><th>time</th><th>metric</th><th>value</th><th>score</th></tr>")
        for a in report.anomalies:
            out.append(
                f"<tr><td>{_e(format_time(a.timestamp))}</td><td>{_e(a.metric)}</td>"
                f"<td>{a.value:.4g}</td><td>{a.score:.2f}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p>None flagged.</p>")
    out.append("<h2>Alerts</h2>")
    if report.alerts:
        out.append("<table><tr><th>time</th><th>rule</th><th>state</th><th>summary</th></tr>")
        for al in report.alerts:
            out.append(
                f"<tr><td>{_e(format_time(al.timestamp))}</td><td>{_e(al.rule)}</td>"
                f'<td class="{"critical" if al.state == "firing" else "info"}">{_e(al.state)}</td>'
                f"<td>{_e(al.summary)}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p>No alerts fired.</p>")
    out.append("</body></html>")
    return "\n".join(out)
