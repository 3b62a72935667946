"""Time from a threshold breach to the webhook delivered, through the whole in-process pipeline.

The path measured: ``MetricsCollector.set_gauge`` -> the pipeline's metric reader (next
evaluation) -> rule engine -> SQLite outbox -> dispatcher thread -> HTTP POST received by a
local webhook receiver. Goal: at most one evaluation interval + 100 ms. The anchor printed next
to it is the evaluation interval itself, measured in the same run (the engine's own tick), so
the ratio says how much of the budget delivery adds.

Run: python benchmarks/bench_alert_latency.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from paca_otel import AlertManager, MetricsCollector, MonitoringManager

INTERVAL = 1.0  # seconds; the smallest evaluation interval the settings allow


class _Receiver(BaseHTTPRequestHandler):
    arrivals: list[tuple[float, str]] = []  # noqa: RUF012  # class-level sink for the server's handlers
    event = threading.Event()

    def do_POST(self) -> None:  # http.server's hook name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).arrivals.append((time.perf_counter(), body["status"]))
        type(self).event.set()
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # stdlib signature
        return


def _wait_for(status: str, timeout: float = 10.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        for arrived, got in _Receiver.arrivals:
            if got == status:
                _Receiver.arrivals.clear()
                return arrived
        _Receiver.event.wait(0.01)
        _Receiver.event.clear()
    msg = f"no {status} notification within {timeout} s"
    raise TimeoutError(msg)


async def main(rounds: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    monitor = MonitoringManager(
        metrics_exporter="none", system_metrics=False, webhook_url=url,
        evaluation_interval=INTERVAL,
    )  # fmt: skip
    await monitor.start_monitoring()
    alerts = AlertManager()
    collector = MetricsCollector()
    engine = alerts.runtime.engine
    latencies: list[float] = []
    ticks: list[float] = []
    for i in range(rounds):
        # A fresh rule per round: re-breaching one rule every few seconds is what the flap
        # detector exists to summarise, which is not what this measures.
        metric = f"queue_depth_{i}"
        collector.set_gauge(metric, 5)
        alerts.add_rule_sync(f"queue_breach_{i}", f"{metric} > 100", "webhook", cooldown=300)
        await asyncio.sleep(INTERVAL * 1.5)
        cycles, started = engine.cycles, time.perf_counter()
        collector.set_gauge(metric, 500)
        breach = time.perf_counter()
        while engine.cycles == cycles:  # anchor: the engine's own next tick, same run
            await asyncio.sleep(0.001)
        ticks.append(time.perf_counter() - started)
        arrived = await asyncio.to_thread(_wait_for, "firing")
        latencies.append(arrived - breach)
    await monitor.stop()
    server.shutdown()
    goal = INTERVAL + 0.1
    print(f"evaluation interval {INTERVAL:.1f} s, {rounds} breaches")
    print(
        f"breach -> webhook delivered: median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms (goal <= {goal * 1000:.0f} ms)"
    )
    print(
        f"anchor, breach -> end of the next engine tick: median "
        f"{statistics.median(ticks) * 1000:.0f} ms"
    )
    overhead = [lat - tick for lat, tick in zip(latencies, ticks, strict=True)]
    print(
        f"delivery after that tick (outbox -> dispatcher -> HTTP): median "
        f"{statistics.median(overhead) * 1000:.1f} ms, max {max(overhead) * 1000:.1f} ms"
    )
    print(f"ratio max latency / goal: {max(latencies) / goal:.2f}x")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
