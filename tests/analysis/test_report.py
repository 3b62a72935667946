"""generate_report on a recorded 24 h scenario: the expected findings and suggestions."""

from __future__ import annotations

import math

import pytest

from paca_otel.analysis._memory_source import MemorySeriesSource
from paca_otel.analysis._red import Period
from paca_otel.analysis._report_model import Report, Suggestion
from paca_otel.analysis._report_steps import nice_step
from paca_otel.analysis.report import generate_report
from paca_otel.analysis.slo import SLO
from paca_otel.analysis.suggestions import RULES
from paca_otel.errors import ConfigError
from tests.analysis import scenario


@pytest.fixture(scope="module")
def report() -> Report:
    source, alerts = scenario.build()
    slos = [
        SLO("api", 0.999),
        SLO(
            "search_fast",
            0.99,
            kind="latency",
            threshold=0.3,
            percentile=95,
            route="/search",
            method="GET",
        ),
    ]
    return generate_report(source, 86_400, now=scenario.END, alerts=alerts, slos=slos)


def by_rule(report: Report, rule: str) -> list[Suggestion]:
    return [s for s in report.suggestions if s.rule == rule]


def test_summary_and_period(report: Report) -> None:
    """The summary states the period, traffic, error share, SLO verdicts and the soonest risk."""
    assert report.start == scenario.START
    assert report.end == scenario.END
    text = " ".join(report.summary)
    assert "24 h" in text
    assert "requests" in text
    assert "SLO api MISSED" in text
    assert "disk_usage reaches 90 % in ~14 h" in text


def test_disk_filling_is_forecast_with_interval(report: Report) -> None:
    """Disk at ~76 % rising 1 %/h: full to 90 % in ~14 h, suggestion with evidence."""
    [forecast] = [f for f in report.forecasts if f.metric == "disk_usage"]
    assert forecast.seconds / 3600 == pytest.approx(14, abs=1)
    assert forecast.earliest <= forecast.seconds <= forecast.latest
    [suggestion] = by_rule(report, "disk_filling")
    ev = suggestion.evidence
    assert (ev.metric, ev.threshold, ev.unit) == ("disk_usage", 90.0, "%")
    assert ev.value == pytest.approx(76, abs=1)
    assert (ev.start, ev.end) == (scenario.START, scenario.END)


def test_cpu_creep_is_a_trend_and_a_suggestion(report: Report) -> None:
    """CPU creeping +0.8 %/h is a significant trend, forecast to reach 80 % in ~38 h."""
    [trend] = [t for t in report.trends if t.metric == "cpu_usage"]
    assert trend.significant
    assert trend.per_hour == pytest.approx(0.8, abs=0.05)
    [suggestion] = by_rule(report, "cpu_saturation")
    assert suggestion.evidence.threshold == 80.0
    memory = [t for t in report.trends if t.metric == "memory_usage"]
    assert not memory[0].significant  # flat memory is not a trend


def test_route_regression_after_deploy(report: Report) -> None:
    """GET /search got ~3x slower at the 14:00 deploy: a finding and a suggestion naming it."""
    [suggestion] = by_rule(report, "route_regression")
    ev = suggestion.evidence
    assert dict(ev.labels) == {"route": "/search", "method": "GET"}
    assert abs(ev.start - scenario.DEPLOY) <= 600
    assert ev.threshold == pytest.approx(0.12, rel=0.1)
    assert ev.value == pytest.approx(0.40, rel=0.1)
    assert "14:00" in suggestion.title


def test_error_burst_anomaly_and_alert(report: Report) -> None:
    """The 09:00 burst is an anomaly with its timestamp; the alert fired is listed."""
    bursts = [a for a in report.anomalies if a.metric == "error_rate"]
    assert len(bursts) == 1
    assert scenario.BURST[0] <= bursts[0].timestamp < scenario.BURST[1]
    [suggestion] = by_rule(report, "error_burst")
    assert suggestion.evidence.start == bursts[0].timestamp
    assert [(a.rule, a.state) for a in report.alerts] == [
        ("HighErrorRate", "firing"),
        ("HighErrorRate", "resolved"),
    ]


def test_error_hotspot_and_slo(report: Report) -> None:
    """POST /pay is the error hot spot; the availability and latency SLOs are missed."""
    [spot] = by_rule(report, "error_hotspot")
    assert spot.evidence.labels["route"] == "/pay"
    assert spot.evidence.value == pytest.approx(0.03, rel=0.05)
    slos = {s.name: s for s in report.slos}
    assert slos["api"].met is False
    assert (slos["api"].burn_rate or 0.0) > 1
    assert slos["search_fast"].met is False
    assert slos["search_fast"].sli == pytest.approx(14 / 24, abs=0.02)
    assert {s.evidence.metric for s in by_rule(report, "slo_budget")} == {
        "slo:api",
        "slo:search_fast",
    }


def test_custom_metrics(report: Report) -> None:
    """The gauge's spike is an anomaly; the counter is analysed as a rate, not a trend."""
    spikes = [a for a in report.anomalies if a.metric == "queue_depth"]
    assert len(spikes) == 1
    assert spikes[0].timestamp == pytest.approx(scenario.START + 18 * 3600, abs=300)
    [orders] = [t for t in report.trends if t.metric == "rate(orders.processed)"]
    assert not orders.significant
    assert orders.end_value == pytest.approx(3.0, rel=0.1)


def test_every_suggestion_carries_evidence(report: Report) -> None:
    """No advice without data: every suggestion has a metric, a finite value and a period."""
    assert report.suggestions
    for s in report.suggestions:
        assert s.rule in RULES
        assert s.evidence.metric
        assert math.isfinite(s.evidence.value)
        assert s.evidence.start <= s.evidence.end
    assert {f.area for f in report.findings} >= {"system", "requests", "errors", "latency"}


def test_healthy_service_gets_no_suggestions() -> None:
    """Flat system metrics and clean traffic produce findings but no suggestions."""
    source = MemorySeriesSource()
    end = 1_780_000_000.0
    times = [end - 86_400 + i * 60 for i in range(1440)]
    source.add("cpu_usage", {}, [(t, 20.0 + (i % 7) * 0.1) for i, t in enumerate(times)])
    source.add("request_rate", {}, [(t, 5.0) for t in times])
    source.add("request_count", {}, [(t, 300.0) for t in times])
    source.add("error_count", {}, [(t, 0.0) for t in times])
    report = generate_report(source, 86_400, now=end)
    assert report.suggestions == ()
    assert report.anomalies == ()


def test_empty_source_and_bad_period() -> None:
    """An empty source gives a report with a summary only; a bad period is a clear error."""
    report = generate_report(MemorySeriesSource(), 3600, now=10_000.0)
    assert report.findings == ()
    assert report.summary
    with pytest.raises(ConfigError, match="period"):
        generate_report(MemorySeriesSource(), 0, now=10_000.0)
    with pytest.raises(ConfigError, match="period"):
        generate_report(MemorySeriesSource(), Period(10, 5), now=10_000.0)


def test_scrub_hook_reaches_every_string() -> None:
    """A scrubber given to generate_report is applied to labels, titles and alert text."""
    source, alerts = scenario.build()
    report = generate_report(
        source, 86_400, now=scenario.END, alerts=alerts, scrub=lambda s: s.replace("/pay", "/***")
    )
    text = repr(report.to_dict())
    assert "/pay" not in text
    assert "/***" in text


def test_nice_step() -> None:
    """Steps are round numbers."""
    assert nice_step(300) == 300
    assert nice_step(301) == 600
    assert nice_step(7 * 86_400 / 288) == 3600
    assert nice_step(1e6) == 12 * 86_400
