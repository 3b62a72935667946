"""The seed's usage example: start monitoring, record a metric, add alerts, read current values.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from paca_otel import AlertManager, MetricsCollector, MonitoringManager


async def main() -> None:
    monitor = MonitoringManager(service_name="quickstart", prometheus_port=0)
    await monitor.start()
    await monitor.start_monitoring()

    collector = MetricsCollector()
    await collector.record_metric("orders_placed", 1, {"endpoint": "/api/users"}, kind="counter")
    await collector.record_metric("queue_depth", 7, {"queue": "emails"})

    alerts = AlertManager()
    await alerts.add_rule(
        name="high_memory_usage",
        condition="memory_usage > 90",
        action="log",
        cooldown=300,
    )
    await monitor.setup_alert("cpu_usage", 95, "log")

    metrics = await monitor.get_current_metrics()
    print(metrics)
    print(
        f"cpu {metrics['cpu_usage']:.1f} %  memory {metrics['memory_usage']:.1f} %  "
        f"disk {metrics['disk_usage']:.1f} %"
    )
    print(f"orders_placed={metrics['orders_placed']} queue_depth={metrics['queue_depth']}")
    print("active alerts:", [a.rule for a in alerts.get_active_alerts()])
    await monitor.stop()


if __name__ == "__main__":
    asyncio.run(main())
