"""Tests for the friendly alias series."""

from __future__ import annotations

import pytest

from paca_otel.pipeline._aliases import ALIASES, red_labels, write_red, write_system
from paca_otel.pipeline._spans import REDStats
from paca_otel.pipeline._store import Matcher, SeriesStore, labels_of
from paca_otel.signals._system_aliases import cpu_percent, disk_percent, memory_percent


def test_aliases_table_lists_every_alias() -> None:
    """ALIASES documents each name the pipeline writes, one line each."""
    assert set(ALIASES) == {
        "cpu_usage",
        "memory_usage",
        "disk_usage",
        "request_rate",
        "error_rate",
        "request_count",
        "error_count",
        "latency_p50",
        "latency_p95",
        "latency_p99",
    }
    assert all("\n" not in text and text for text in ALIASES.values())


def test_cpu_percent_from_idle_mean_over_cpus() -> None:
    """cpu_usage is 100 x (1 - mean idle), whether per CPU or aggregated."""
    per_cpu = [
        ({"cpu.mode": "idle", "cpu.logical_number": 0}, 0.8),
        ({"cpu.mode": "user", "cpu.logical_number": 0}, 0.2),
        ({"cpu.mode": "idle", "cpu.logical_number": 1}, 0.4),
    ]
    assert cpu_percent(per_cpu) == pytest.approx(40.0)
    assert cpu_percent([({"state": "idle"}, 0.25)]) == pytest.approx(75.0)
    assert cpu_percent([({}, 0.3)]) == pytest.approx(30.0)
    assert cpu_percent([]) is None


def test_memory_and_disk_percent() -> None:
    """memory_usage is the used state; disk_usage is used / (used + free) of / (as df)."""
    memory = [({"system.memory.state": "free"}, 0.3), ({"system.memory.state": "used"}, 0.6)]
    assert memory_percent(memory) == pytest.approx(60.0)
    boot, root = "/boot", "/"
    fs = [
        ({"system.filesystem.mountpoint": boot, "system.filesystem.state": "used"}, 90.0),
        ({"system.filesystem.mountpoint": boot, "system.filesystem.state": "free"}, 10.0),
        ({"system.filesystem.mountpoint": root, "system.filesystem.state": "free"}, 50.0),
        ({"system.filesystem.mountpoint": root, "system.filesystem.state": "used"}, 45.0),
        ({"system.filesystem.mountpoint": root, "system.filesystem.state": "reserved"}, 5.0),
    ]
    assert disk_percent(fs) == pytest.approx(100 * 45 / 95)
    assert disk_percent(fs, boot) == pytest.approx(90.0)
    assert disk_percent(fs[:2]) == pytest.approx(90.0)  # no /: the largest filesystem
    assert disk_percent([]) is None


def test_write_system_uses_only_this_collection() -> None:
    """System aliases derive from points written at `now`; stale sources write nothing."""
    store = SeriesStore()
    store.append("system.cpu.utilization", labels_of({"cpu.mode": "idle"}), 0.9, 10.0)
    store.append("system.memory.utilization", labels_of({"system.memory.state": "used"}), 0.5, 5.0)
    assert write_system(store, 10.0) == 1
    [(labels, value)] = store.latest("cpu_usage", at=10.0)
    assert labels == ()
    assert value == pytest.approx(10.0)
    assert store.latest("memory_usage", at=10.0) == []


def test_write_red_labels_and_values() -> None:
    """RED figures become the request/error/latency aliases with route and method labels."""
    per_route = REDStats("/a", "GET", 10, 2, 0.5, 0.2, 0.01, 0.02, 0.03)
    overall = REDStats(None, None, 10, 2, 0.5, 0.2, None, None, None)
    store = SeriesStore()
    assert write_red(store, [per_route, overall], 7.0) == 7 + 4
    route = [Matcher("route", "=", "/a")]
    assert store.latest("error_rate", route, at=7.0) == [(red_labels(per_route), 0.2)]
    assert store.latest("latency_p99", route, at=7.0)[0][1] == 0.03
    assert store.latest("request_count", [Matcher("route", "=", "")], at=7.0) == [((), 10.0)]
    assert store.latest("latency_p50", [Matcher("route", "=", "")], at=7.0) == []
    assert red_labels(per_route) == labels_of({"route": "/a", "method": "GET"})
    assert red_labels(overall) == ()
