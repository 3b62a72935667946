"""A recorded 24 h scenario in a MemorySeriesSource, shared by the report tests.

CPU creeps up, the disk fills, ``GET /search`` gets slower after a deploy at 14:00, an error
burst on ``GET /items`` at 09:00-09:20 fires one alert, ``POST /pay`` fails more than the
rest, and two custom metrics (a counter and a gauge with a spike) ride along.
"""

from __future__ import annotations

import random
from functools import lru_cache

from paca_otel.analysis._memory_source import MemorySeriesSource
from paca_otel.rules._models import AlertEvent, AlertState, Severity

DAY = 86_400
END = 1_780_012_800.0  # a Sunday at 00:00 UTC (2026-05-29)... any fixed epoch will do
START = END - DAY
DEPLOY = START + 14 * 3600
BURST = (START + 9 * 3600, START + 9 * 3600 + 1200)
STEP = 60


@lru_cache(maxsize=1)
def build() -> tuple[MemorySeriesSource, list[AlertEvent]]:
    """The scenario's source and alert events (built once; callers must not add to them)."""
    rng = random.Random(42)
    source = MemorySeriesSource()
    times = [START - DAY + i * STEP for i in range(2 * DAY // STEP)]  # a day of lead-in too
    today = [t for t in times if t >= START]

    def hours(t: float) -> float:
        return (t - START) / 3600

    source.add(
        "cpu_usage", {}, [(t, 30 + 0.8 * max(hours(t), 0) + rng.gauss(0, 1.5)) for t in times]
    )
    source.add("memory_usage", {}, [(t, 55 + rng.gauss(0, 0.5)) for t in times])
    source.add(
        "disk_usage", {}, [(t, 52 + 1.0 * max(hours(t), 0) + rng.gauss(0, 0.2)) for t in times]
    )

    routes = {
        ("/items", "GET"): (20.0, 0.001, 0.05),
        ("/search", "GET"): (5.0, 0.001, 0.12),
        ("/pay", "POST"): (2.0, 0.03, 0.30),
    }
    totals: dict[float, list[float]] = {t: [0.0, 0.0, 0.0] for t in times}
    for (route, method), (rate, ratio, p95) in routes.items():
        labels = {"route": route, "method": method}
        rates, counts, errors, latency, error_rates = [], [], [], [], []
        for t in times:
            r = rate * rng.uniform(0.95, 1.05)
            bad = ratio
            if route == "/items" and BURST[0] <= t < BURST[1]:
                bad = 0.2
            slow = p95 * (3.3 if route == "/search" and t >= DEPLOY else 1.0)
            rates.append((t, r))
            counts.append((t, r * 60))
            errors.append((t, r * 60 * bad))
            error_rates.append((t, bad))
            latency.append((t, slow * rng.uniform(0.9, 1.1)))
            totals[t][0] += r
            totals[t][1] += r * 60 * bad
            totals[t][2] = max(totals[t][2], slow)
        source.add("request_rate", labels, rates)
        source.add("request_count", labels, counts)
        source.add("error_count", labels, errors)
        source.add("error_rate", labels, error_rates)
        source.add("latency_p95", labels, latency)
    source.add("request_rate", {}, [(t, v[0]) for t, v in totals.items()])
    source.add("request_count", {}, [(t, v[0] * 60) for t, v in totals.items()])
    source.add("error_count", {}, [(t, v[1]) for t, v in totals.items()])
    source.add("error_rate", {}, [(t, v[1] / (v[0] * 60)) for t, v in totals.items()])
    source.add("latency_p95", {}, [(t, v[2] * rng.uniform(0.95, 1.0)) for t, v in totals.items()])

    orders = 0.0
    counter = []
    for t in times:
        orders += rng.uniform(2, 4) * STEP
        counter.append((t, orders))
    source.add("orders.processed", {"shop": "eu"}, counter)
    source.add(
        "queue_depth",
        {},
        [
            (
                t,
                (400.0 if START + 18 * 3600 <= t < START + 18 * 3600 + 300 else 20.0)
                + rng.gauss(0, 2),
            )
            for t in times
        ],
    )
    del today
    alerts = [
        AlertEvent(
            "HighErrorRate",
            AlertState.FIRING,
            {"route": "/items"},
            {"summary": "error_rate of /items at 20 %"},
            0.2,
            Severity.CRITICAL,
            BURST[0] + 300,
        ),
        AlertEvent(
            "HighErrorRate",
            AlertState.RESOLVED,
            {"route": "/items"},
            {"summary": "error_rate of /items at 20 %"},
            0.001,
            Severity.CRITICAL,
            BURST[0] + 300,
            BURST[1] + 300,
        ),
    ]
    return source, alerts
