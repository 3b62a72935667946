"""Child process for the end-to-end durability test: fire an alert, then wait to be killed.

Run as ``python fire_child.py STATE_PATH WEBHOOK_URL`` while nothing listens at the URL. It
configures paca-otel with that state file, makes memory_usage 95 %, fires the seed's
high_memory_usage rule through the public API, prints ``fired`` and waits for SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys

from paca_otel import AlertManager, MonitoringManager, configure
from paca_otel.signals._system_source import StaticSource
from paca_otel.signals._system_stats import MemoryStats


async def main(state_path: str, url: str) -> None:
    source = StaticSource()
    source.mem = MemoryStats(total=1000, states={"used": 950, "free": 50})
    configure(
        system_source=source, metrics_exporter="none", state_path=state_path,
        webhook_url=url, evaluation_interval=3600,
    )  # fmt: skip
    monitor = MonitoringManager()
    await monitor.start_monitoring()
    alerts = AlertManager()
    alerts.add_rule_sync("high_memory_usage", "memory_usage > 90", "webhook", 300)
    # The runtime's own thread may be mid-cycle and fire it first; an evaluate() returning
    # after the alert shows firing means the cycle that fired it has finished (enqueued).
    for _ in range(50):
        await alerts.evaluate()
        if [a.state.value for a in alerts.get_active_alerts()] == ["firing"]:
            break
    else:
        raise AssertionError(alerts.get_active_alerts())
    print("fired", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
