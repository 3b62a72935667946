"""The metrics snapshot: every alias a key, a short str(), a complete repr()."""

from __future__ import annotations

import math

from paca_otel._snapshot import MetricPoint, MetricsSnapshot, snapshot_from
from paca_otel.pipeline._aliases import ALIASES


def test_empty_snapshot_has_every_alias_without_a_value() -> None:
    """No collection yet: each alias is a key (NaN) and a None field; str says n/a."""
    snapshot = snapshot_from(None)
    assert list(snapshot)[: len(ALIASES)] == list(ALIASES)
    assert all(math.isnan(snapshot[alias]) for alias in ALIASES)
    assert snapshot.error_rate is None
    text = str(snapshot)
    assert text.count("n/a") == len(ALIASES)
    assert text.endswith("0 data points: none")


def test_alias_wins_over_a_metric_of_the_same_name() -> None:
    """A user metric named like an alias stays in points(); the mapping answers the alias."""
    point = MetricPoint(name="request_count", value=7.0, kind="counter")
    snapshot = MetricsSnapshot(timestamp=0.0, request_count=2.0, metrics=[point])
    assert snapshot["request_count"] == 2.0
    assert snapshot.points("request_count") == [point]


def test_str_counts_points_per_family_with_units() -> None:
    """Families are the first dotted part, largest first; alias values carry their unit."""
    points = [
        MetricPoint(name="system.cpu.time", labels={"cpu.mode": m}, value=1.0, kind="counter")
        for m in ("user", "idle")
    ] + [MetricPoint(name="jobs", value=3.0, kind="gauge")]
    snapshot = MetricsSnapshot(timestamp=0.0, cpu_usage=12.5, latency_p95=0.25, metrics=points)
    lines = str(snapshot).splitlines()
    assert lines[0] == "MetricsSnapshot at 1970-01-01 00:00:00 UTC"
    assert lines[1].split() == ["cpu_usage", "12.5", "%"]
    assert "latency_p95    0.25 s" in str(snapshot)
    assert lines[-1] == "  3 data points: system 2 (1 metric), jobs 1 (1 metric)"
    assert "MetricPoint(name='jobs'" in repr(snapshot)
