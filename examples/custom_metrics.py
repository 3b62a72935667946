"""Counters, histograms, gauges and timers through MetricsCollector, printed from a snapshot.

Run: python examples/custom_metrics.py
"""

from __future__ import annotations

import asyncio
import random

from paca_otel import MetricsCollector, MonitoringManager, traced


@traced
async def handle_order(collector: MetricsCollector, shop: str) -> None:
    with collector.timer("orders.processing.duration", {"shop": shop}):
        await asyncio.sleep(random.uniform(0.001, 0.01))  # example latency
    collector.increment("orders.processed", labels={"shop": shop})


async def main() -> None:
    monitor = MonitoringManager(service_name="custom-metrics", prometheus_port=0)
    await monitor.start()
    collector = MetricsCollector()
    for i in range(20):
        await handle_order(collector, shop="north" if i % 2 else "south")
    collector.set_gauge("orders.backlog", 3, {"shop": "north"})
    collector.observe("orders.basket.size", 4.5)
    collector.record("orders.bad", float("nan"))  # dropped and counted, never raised

    snapshot = await monitor.get_current_metrics()
    for point in snapshot.metrics:
        if point.name.startswith("orders."):
            print(f"{point.name:32} {point.labels} {point.value:.4g}")
    await monitor.stop()


if __name__ == "__main__":
    asyncio.run(main())
