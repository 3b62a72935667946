"""Markdown, JSON and offline HTML renderings of a report."""

from __future__ import annotations

import json
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from paca_otel.analysis._report_html import svg_chart
from paca_otel.analysis._report_model import Chart, Report
from paca_otel.analysis.report import generate_report
from paca_otel.analysis.report_render import format_value, render
from paca_otel.errors import ConfigError
from tests.analysis import scenario
from tests.peers import require_binary


@pytest.fixture(scope="module")
def report() -> Report:
    source, alerts = scenario.build()
    return generate_report(source, 86_400, now=scenario.END, alerts=alerts)


class Tags(HTMLParser):
    """Collects tag names and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]


def test_markdown_sections(report: Report) -> None:
    """Markdown has every section, suggestions with evidence, and the burst's time."""
    text = render(report, "md")
    for heading in (
        "## Summary",
        "## Suggestions",
        "## Findings",
        "## Forecasts",
        "## Trends",
        "## Routes",
        "## Anomalies",
        "## Alerts",
    ):
        assert heading in text
    assert "evidence: `disk_usage = " in text
    assert "Thu 09:00 UTC" in text
    assert "HighErrorRate" in text


def test_json_round_trips(report: Report) -> None:
    """JSON parses back, with suggestions' evidence as objects and no NaN/Infinity."""
    data = json.loads(render(report, "json"))
    assert data["start"] == scenario.START
    rules = [s["rule"] for s in data["suggestions"]]
    assert "disk_filling" in rules
    assert data["suggestions"][0]["evidence"]["metric"]
    assert "NaN" not in render(report, "json")


def test_html_is_offline_single_file_with_svg(report: Report) -> None:
    """HTML holds inline SVG charts, no script, no external URL."""
    text = render(report, "html")
    parser = Tags()
    parser.feed(text)
    assert "script" not in parser.tags
    assert "link" not in parser.tags
    assert parser.urls == []
    assert parser.tags.count("svg") >= 6
    assert "polyline" in parser.tags
    assert "circle" in parser.tags  # anomaly markers
    assert "polygon" in parser.tags  # the disk forecast band
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_html_escapes_text() -> None:
    """Markup in labels and titles is escaped, never interpreted."""
    bad = Report(
        title="<script>alert(1)</script>", generated_at=0, start=0, end=60, summary=("<b>x</b>",)
    )
    text = render(bad, "html")
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert "&lt;b&gt;" in text


def test_svg_chart_breaks_at_gaps_and_draws_threshold() -> None:
    """A gap splits the line; the threshold is a dashed line."""
    points = ((0.0, 1.0), (60.0, 2.0), (120.0, 3.0), (3600.0, 2.0), (3660.0, 1.0))
    svg = svg_chart(Chart("x", "%", points, threshold=5.0), start=0.0, end=3660.0)
    assert svg.count("<polyline") == 2
    assert "stroke-dasharray" in svg


def test_unknown_format_and_values() -> None:
    """An unknown format is a clear error; values print with their units."""
    with pytest.raises(ConfigError, match="md, json, html"):
        render(Report(title="t", generated_at=0, start=0, end=1, summary=()), "pdf")
    assert format_value(0.394, "s") == "394 ms"
    assert format_value(0.0052, "ratio") == "0.52 %"
    assert format_value(None, "s") == "n/a"
    assert format_value(12.0, "/s") == "12/s"


def test_html_report_renders_offline_in_chromium(report: Report, tmp_path: Path) -> None:
    """Headless Chromium with every network request refused opens the file and draws charts."""
    chromium = require_binary("chromium")
    page = tmp_path / "report.html"
    page.write_text(render(report, "html"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={profile}",
                "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                "--dump-dom", page.as_uri(),
            ],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
    dom = result.stdout
    assert "<h2>Suggestions</h2>" in dom, result.stderr[-2000:]
    assert dom.count("<svg") >= 6
    assert "<polyline" in dom
