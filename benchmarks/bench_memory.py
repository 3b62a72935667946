"""Memory per series: paca-otel's full stack vs the raw OTel SDK with one reader.

Each variant runs in a fresh interpreter (so one variant's garbage cannot hide in another's
RSS): it records 60 counters x 2,000 attribute sets, collects once, and reports the growth of
its resident set size. Goal (issue "one pipeline"): paca-otel <= 1.2x the raw SDK.

Usage: python benchmarks/bench_memory.py [--instruments 60] [--sets 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

_CHILD = r"""
import gc, json, os, sys
import psutil

variant, instruments, sets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
proc = psutil.Process()
if variant == "raw":
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("bench")
    collect = reader.get_metrics_data
    def counter(name):
        return meter.create_counter(name).add
else:
    import paca_otel
    tel = paca_otel.configure(system_metrics=False, prometheus_port=0, service_name="bench")
    collector = paca_otel.MetricsCollector()
    def collect():
        # every consumer reads the one collection: scrape, snapshot and alerting store
        tel.collection.collect_now()
        tel.pipeline.collect()
        return None
    def counter(name):
        return lambda value, attrs: collector.increment(name, value, attrs)
adders = [counter(f"bench_counter_{i}") for i in range(instruments)]
labels = [{"route": f"/r{j}", "method": "GET"} for j in range(sets)]
gc.collect()
before = proc.memory_info().rss
for add in adders:
    for attrs in labels:
        add(1, attrs)
collect()
gc.collect()
after = proc.memory_info().rss
print(json.dumps({"growth": after - before}))
"""


def _run(variant: str, instruments: int, sets: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, variant, str(instruments), str(sets)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["growth"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=60)
    parser.add_argument("--sets", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[int]] = {"raw": [], "paca": []}
    for _ in range(args.repeat):  # interleaved, so machine load hits both alike
        for variant, growths in results.items():
            growths.append(_run(variant, args.instruments, args.sets))
    raw = statistics.median(results["raw"])
    paca = statistics.median(results["paca"])
    print(f"{args.instruments} instruments x {args.sets} attribute sets, median of {args.repeat}")
    print(f"  raw SDK, one reader : {raw / 2**20:8.1f} MiB")
    print(f"  paca-otel full stack: {paca / 2**20:8.1f} MiB  ({paca / raw:.2f}x, goal <= 1.2x)")


if __name__ == "__main__":
    main()
