"""Milliseconds per rule-engine evaluation cycle, and how it grows with rules x series.

Series: 10 metrics x N label sets (``host`` unique, ``shard`` = host mod 100, ``zone`` one of
four). Rules: each selects one metric by matchers, cycling through the shapes rules take in
practice (an equality on ``shard``, a regex on ``zone``, a ``rate()`` over 5 minutes, a
``clear`` condition), with thresholds set so a few percent of the selected series fire. A
cycle appends one fresh point per series (untimed) and then runs ``evaluate_once`` (timed),
so selection, evaluation, state tracking and notification grouping are all included.

    python benchmarks/bench_rules.py [--cycles N]

Goal: <= 50 ms per cycle for 1,000 rules x 10,000 series. The anchor, measured in the same
run, is one plain ``SeriesStore.latest`` over all series of one metric per rule — the floor
for any engine that reads the store once per rule.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from paca_otel.alerting._engine import RuleEngine
from paca_otel.pipeline._store import Labels, Matcher, SeriesStore
from paca_otel.rules._models import Notification
from paca_otel.rules._rule import Rule

METRICS = 10
ZONES = ("eu-1", "eu-2", "us-1", "us-2")


class _Count:
    """An outbox that only counts (delivery is not what this measures)."""

    def __init__(self) -> None:
        self.count = 0

    def enqueue(self, notification: Notification) -> bool:
        self.count += 1
        return True


def _labels(host: int) -> Labels:
    return (("host", f"h{host}"), ("shard", f"s{host % 100}"), ("zone", ZONES[host % 4]))


def _rule(k: int) -> Rule:
    metric = f"bench_metric_{k % METRICS}"
    shape = k % 4
    if shape == 0:
        condition = f'{metric}{{shard="s{k % 100}"}} > 97'
        return Rule(name=f"r{k}", condition=condition)
    if shape == 1:
        condition = f'{metric}{{zone=~"eu-.*", shard="s{k % 100}"}} > 97'
        return Rule(name=f"r{k}", condition=condition, **{"for": "1m"})
    if shape == 2:
        condition = f'rate({metric}_total{{shard="s{k % 100}"}}[5m]) > 9.9'
        return Rule(name=f"r{k}", condition=condition)
    condition = f'{metric}{{shard="s{k % 100}"}} > 97'
    return Rule(name=f"r{k}", condition=condition, clear=f'{metric}{{shard="s{k % 100}"}} < 90')


def _fill(store: SeriesStore, per_metric: int, t: float, rng: random.Random, step: int) -> None:
    for m in range(METRICS):
        gauge, counter = f"bench_metric_{m}", f"bench_metric_{m}_total"
        for host in range(per_metric):
            labels = _labels(host)
            store.append(gauge, labels, rng.uniform(0, 100), t)
            if host % 10 == 0:  # a tenth of the hosts also export a counter
                store.append(counter, labels, step * 10.0 * 15 + rng.uniform(0, 150), t)


def run(rules: int, series: int, cycles: int) -> tuple[float, float, int]:
    """Median ms per cycle of the engine and of the anchor; notifications enqueued."""
    per_metric = series // METRICS
    rng = random.Random(1)
    store = SeriesStore(max_series=series * 2, max_points=64, max_window=900)
    sink = _Count()
    now = [1_000_000.0]
    engine = RuleEngine(store, outbox=sink, clock=lambda: now[0])
    for k in range(rules):
        engine.add_rule(_rule(k))
    for warm in range(21):  # five minutes of history for rate() before timing
        _fill(store, per_metric, now[0] + warm * 15, rng, warm)
    now[0] += 20 * 15
    engine_ms: list[float] = []
    anchor_ms: list[float] = []
    names = [f"bench_metric_{k % METRICS}" for k in range(rules)]
    matchers = [(Matcher("shard", "=", f"s{k % 100}"),) for k in range(rules)]
    for step in range(cycles):
        now[0] += 15
        _fill(store, per_metric, now[0], rng, 21 + step)
        started = time.perf_counter()
        engine.evaluate_once(now[0])
        engine_ms.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        for name, sel in zip(names, matchers, strict=True):
            store.latest(name, sel, at=now[0])
        anchor_ms.append((time.perf_counter() - started) * 1e3)
    engine.close()
    return statistics.median(engine_ms), statistics.median(anchor_ms), sink.count


def main() -> None:
    """Print the growth table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20, help="timed cycles per size")
    args = parser.parse_args()
    print(f"{'rules x series':<18}{'ms/cycle':>10}{'anchor ms':>11}{'ratio':>8}{'sent':>7}")
    for rules, series in ((100, 1_000), (1_000, 1_000), (1_000, 10_000)):
        ms, anchor, sent = run(rules, series, args.cycles)
        label = f"{rules} x {series // 1000}k"
        print(f"{label:<18}{ms:>10.2f}{anchor:>11.2f}{ms / anchor:>7.1f}x{sent:>7}")
    print("goal: 1000 x 10k <= 50 ms/cycle")


if __name__ == "__main__":
    main()
