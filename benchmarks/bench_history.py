"""Bytes per sample, ingest rate and query time of the history store, against naive anchors.

    python benchmarks/bench_history.py [--hours 24] [--cpus 4] [--query-days 7]

Goals (issue 9): <= 2 bytes/sample on the system gauges at 10 s resolution (stretch 1.37,
Gorilla's figure); >= 200k samples/s ingest; one series over 7 days at 10 s steps (60k
points) queried in <= 50 ms.

The series are generated to look like what ``paca_otel.signals._system`` records every 10 s
(no real day of data is at hand; the generators say what they model):

- ``system.cpu.utilization`` per CPU and mode, with two-decimal noise (psutil's percentages
  / 100); idle is the rest; irq, steal and nice are mostly 0;
- ``system.cpu.time`` per CPU and mode: cumulative seconds in clock ticks (1/100 s);
- ``system.memory.usage`` per state: bytes in whole 4 KiB pages, random walks;
- ``system.memory.utilization``: used / total, a full-precision ratio (the hard case);
- ``system.filesystem.usage`` per state: 4 KiB blocks, slowly growing;
- ``system.disk.io`` / ``system.network.io`` per direction: cumulative bytes (disk in 4 KiB
  blocks, network in arbitrary byte counts, in bursts);
- ``process.memory.usage`` (pages) and ``process.cpu.utilization`` (two decimals).

Timestamps are the collection's, every 10 s exactly, and again with +-3 ms of jitter.

Anchors measured in the same run: plain SQLite rows ``(series, ts, value)`` (file bytes,
insert rate, query time), and 16 bytes/sample (a raw int64 + float64 pair).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from paca_otel.analysis._chunks import encode_chunk
from paca_otel.analysis._tiers import parse_tiers
from paca_otel.analysis.history import HistoryStore

Series = tuple[str, dict[str, str], list[float]]
T0 = 1_699_999_200.0
STEP = 10.0
PAGE = 4096
NAIVE_TABLE = (
    "CREATE TABLE s (series INTEGER, ts INTEGER, value REAL,"
    " PRIMARY KEY (series, ts)) WITHOUT ROWID"
)


def _walk(
    rng: random.Random, n: int, start: float, step: float, *, low: float, high: float
) -> list[float]:
    out, value = [], start
    for _ in range(n):
        value = min(high, max(low, value + rng.gauss(0, step)))
        out.append(value)
    return out


def system_gauges(n: int, cpus: int, seed: int = 1) -> list[Series]:
    """The generated system series, ``n`` samples each (see the module docstring)."""
    rng = random.Random(seed)
    series: list[Series] = []
    modes = {"user": 0.2, "system": 0.06, "iowait": 0.01, "irq": 0.0, "softirq": 0.005,
             "steal": 0.0, "nice": 0.0}  # fmt: skip
    for cpu in range(cpus):
        load = _walk(rng, n, 0.3, 0.02, low=0.02, high=0.95)
        shares: dict[str, list[float]] = {}
        for mode, mean in modes.items():
            scale = mean / 0.3
            shares[mode] = [
                round(max(0.0, load[i] * scale + rng.gauss(0, mean / 4 + 0.002)), 2)
                for i in range(n)
            ]
        shares["idle"] = [
            round(max(0.0, 1 - sum(s[i] for s in shares.values())), 2) for i in range(n)
        ]
        for mode, values in shares.items():
            labels = {"cpu.logical_number": str(cpu), "cpu.mode": mode}
            series.append(("system.cpu.utilization", labels, values))
            ticks, total = [], rng.randint(10**5, 10**7)
            for share in values:
                total += round(share * 1000 + rng.randint(0, 2))
                ticks.append(total / 100)
            series.append(("system.cpu.time", labels, ticks))
    total_pages = 16_342_048 // 4  # 16 GB less what the kernel keeps: not a power of two
    used = [
        round(p) for p in _walk(rng, n, total_pages * 0.4, 300, low=1e5, high=total_pages * 0.9)
    ]
    cached = [
        round(p) for p in _walk(rng, n, total_pages * 0.3, 40, low=1e5, high=total_pages * 0.5)
    ]
    buffers = [round(p) for p in _walk(rng, n, 30_000, 3, low=1000, high=10**6)]
    free = [total_pages - u - c - b for u, c, b in zip(used, cached, buffers, strict=True)]
    for state, pages in (("used", used), ("cached", cached), ("buffers", buffers), ("free", free)):
        series.append(("system.memory.usage", {"system.memory.state": state},
                       [float(p * PAGE) for p in pages]))  # fmt: skip
    series.append(("system.memory.utilization", {"system.memory.state": "used"},
                   [u / total_pages for u in used]))  # fmt: skip
    disk_blocks = 500 * 2**30 // PAGE
    fs_used, blocks = [], disk_blocks * 0.6
    for _ in range(n):
        blocks += rng.choice((0, 0, 0, 1, 2, 25)) if rng.random() < 0.3 else 0
        fs_used.append(float(round(blocks) * PAGE))
    series.append(("system.filesystem.usage", {"system.filesystem.state": "used"}, fs_used))
    series.append(("system.filesystem.usage", {"system.filesystem.state": "free"},
                   [disk_blocks * PAGE - u for u in fs_used]))  # fmt: skip
    for direction in ("read", "write"):
        disk, net, disk_total, net_total = (
            [],
            [],
            rng.randint(1, 10**9) * PAGE,
            rng.randint(1, 10**10),
        )
        for _ in range(n):
            disk_total += PAGE * (rng.randint(0, 400) if rng.random() < 0.5 else 0)
            net_total += rng.randint(0, 200_000) if rng.random() < 0.7 else rng.randint(0, 300)
            disk.append(float(disk_total))
            net.append(float(net_total))
        series.append(("system.disk.io", {"disk.io.direction": direction}, disk))
        series.append(("system.network.io", {"network.io.direction": direction}, net))
    rss = [round(p) for p in _walk(rng, n, 50_000, 5, low=10_000, high=200_000)]
    series.append(("process.memory.usage", {}, [float(p * PAGE) for p in rss]))
    series.append(("process.cpu.utilization", {}, [round(max(0.0, rng.gauss(0.05, 0.02)), 2)
                                                   for _ in range(n)]))  # fmt: skip
    return series


def _stamps(n: int, jitter_ms: int, rng: random.Random) -> list[float]:
    return [T0 + STEP * i + (rng.randint(-jitter_ms, jitter_ms) / 1000 if jitter_ms else 0.0)
            for i in range(n)]  # fmt: skip


def _codec_bytes(series: list[Series], stamps: list[float], chunk: int) -> dict[str, list[int]]:
    """Encoded chunk bytes per metric name, and samples."""
    millis = [round(t * 1000) for t in stamps]
    out: dict[str, list[int]] = {}
    for name, _, values in series:
        size = sum(len(encode_chunk(millis[i : i + chunk], [values[i : i + chunk]]))
                   for i in range(0, len(values), chunk))  # fmt: skip
        total = out.setdefault(name, [0, 0])
        total[0] += size
        total[1] += len(values)
    return out


def _file_size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _timed(call: Callable[[], object], repeat: int = 7) -> tuple[float, float]:
    """Median CPU seconds (this process, all threads) and wall seconds of ``repeat`` calls."""
    cpu, wall = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return statistics.median(cpu), statistics.median(wall)


def compression(series: list[Series], stamps: list[float], workdir: Path, chunk: int) -> None:
    samples = sum(len(v) for _, _, v in series)
    per_metric = _codec_bytes(series, stamps, chunk)
    print(
        f"\n## Compression: {len(series)} series x {len(stamps)} samples at 10 s, chunks of {chunk}"
    )
    print(f"{'metric':32} {'B/sample':>9}")
    for name, (size, count) in sorted(per_metric.items()):
        print(f"{name:32} {size / count:9.3f}")
    codec_total = sum(size for size, _ in per_metric.values())
    hard = per_metric["system.memory.utilization"]
    print(f"{'all (chunk bytes)':32} {codec_total / samples:9.3f}")
    print(f"{'all but memory.utilization':32} {(codec_total - hard[0]) / (samples - hard[1]):9.3f}")
    path = workdir / "history.sqlite3"
    store = HistoryStore(path, chunk_samples=chunk, chunk_span=86_400)
    for name, labels, values in series:
        for at, value in zip(stamps, values, strict=True):
            store.append(name, labels, at, value)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
    naive = workdir / "naive.sqlite3"
    with sqlite3.connect(naive) as conn:
        conn.execute(NAIVE_TABLE)
        for index, (_, _, values) in enumerate(series):
            rows = [(index, round(t * 1000), v) for t, v in zip(stamps, values, strict=True)]
            conn.executemany("INSERT INTO s VALUES (?, ?, ?)", rows)
        conn.commit()
        conn.execute("VACUUM")
    ours, theirs = _file_size(path) / samples, _file_size(naive) / samples
    print(f"{'history file (SQLite pages)':32} {ours:9.3f}")
    print(f"{'anchor: naive SQLite rows':32} {theirs:9.3f}   ratio {theirs / ours:.1f}x")
    print(f"{'anchor: raw int64+float64':32} {16:9.3f}   ratio {16 / ours:.1f}x")


def ingest(series: list[Series], stamps: list[float], workdir: Path) -> None:
    samples = sum(len(v) for _, _, v in series)
    path = workdir / "ingest.sqlite3"
    store = HistoryStore(path, chunk_span=86_400)
    start, start_cpu = time.perf_counter(), time.process_time()
    for i, at in enumerate(stamps):  # collection by collection, as the pipeline appends
        for name, labels, values in series:
            store.append(name, labels, at, values[i])
    appended, appended_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    store.flush()
    total, total_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    store.close()
    naive = workdir / "ingest-naive.sqlite3"
    conn = sqlite3.connect(naive)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(NAIVE_TABLE)
    start, start_cpu = time.perf_counter(), time.process_time()
    for i, at in enumerate(stamps):
        ms = round(at * 1000)
        conn.executemany("INSERT INTO s VALUES (?, ?, ?)",
                         [(index, ms, v[i]) for index, (_, _, v) in enumerate(series)])  # fmt: skip
        if i % 100 == 99:
            conn.commit()
    conn.commit()
    naive_time, naive_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    conn.close()
    print(f"\n## Ingest: {samples} samples, {len(series)} series (samples/s: CPU time | wall)")
    rate = f"{samples / appended_cpu:10,.0f} | {samples / appended:10,.0f}"
    print(f"append only (caller's thread)      {rate}")
    rate = f"{samples / total_cpu:10,.0f} | {samples / total:10,.0f}"
    print(f"append + encode + write (flushed)  {rate}")
    rate = f"{samples / naive_cpu:10,.0f} | {samples / naive_time:10,.0f}"
    print(f"anchor: naive SQLite executemany   {rate}   {total_cpu / naive_cpu:.2f}x its CPU time")


def query(days: float, workdir: Path) -> None:
    n = int(days * 86_400 / STEP)
    rng = random.Random(3)
    values = [round(v, 2) for v in _walk(rng, n, 0.3, 0.02, low=0.0, high=1.0)]
    stamps = [T0 + STEP * i for i in range(n)]
    path = workdir / "query.sqlite3"
    clock = [stamps[-1] + 1]
    tiers = parse_tiers(f"raw:{int(days) + 1}d,1m:30d,1h:90d")
    store = HistoryStore(path, tiers=tiers, chunk_span=86_400, clock=lambda: clock[0])
    for at, value in zip(stamps, values, strict=True):
        store.append("system.cpu.utilization", {"cpu.mode": "user"}, at, value)
    store.flush()
    end = stamps[-1]

    def run(step: float) -> int:
        (found,) = store.query_range("system.cpu.utilization", start=T0, end=end, step=step)
        return len(found.points)

    points = run(STEP)
    raw = _timed(lambda: run(STEP))
    store.run_maintenance()
    minute_points = run(60)
    minute = _timed(lambda: run(60))
    hour_points = run(3600)
    hour = _timed(lambda: run(3600))
    store.close()
    naive = workdir / "query-naive.sqlite3"
    conn = sqlite3.connect(naive)
    conn.execute(NAIVE_TABLE)
    rows = [(round(t * 1000), v) for t, v in zip(stamps, values, strict=True)]
    conn.executemany("INSERT INTO s VALUES (0, ?, ?)", rows)
    conn.commit()
    lo, hi = round(T0 * 1000), round(end * 1000)
    select = "SELECT ts, value FROM s WHERE series = 0 AND ts BETWEEN ? AND ?"
    anchor = _timed(lambda: conn.execute(select, (lo, hi)).fetchall())
    conn.close()
    print(
        f"\n## Query: one series, {days:g} days at 10 s ({n} samples); median of 7, ms CPU | wall"
    )
    for label, count, (cpu, wall) in (
        ("step 10 s (raw tier)  ", points, raw),
        ("step 60 s (1 min tier)", minute_points, minute),
        ("step 1 h  (1 h tier)  ", hour_points, hour),
    ):
        print(f"{label}  {count:7} points  {cpu * 1e3:7.1f} | {wall * 1e3:7.1f}")
    timing = f"{anchor[0] * 1e3:7.1f} | {anchor[1] * 1e3:7.1f}"
    ratio = raw[0] / anchor[0]
    print(f"anchor: naive SQLite SELECT of the rows   {timing}   {ratio:.2f}x its CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="hours of system series")
    parser.add_argument("--cpus", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=240, help="samples per chunk")
    parser.add_argument("--query-days", type=float, default=7.0)
    args = parser.parse_args()
    n = int(args.hours * 3600 / STEP)
    series = system_gauges(n, args.cpus)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for jitter in (0, 3):
            print(f"\n# timestamps: every 10 s{f' +-{jitter} ms' if jitter else ' exactly'}")
            here = workdir / f"jitter{jitter}"
            here.mkdir()
            compression(series, _stamps(n, jitter, random.Random(jitter)), here, args.chunk)
        ingest(series, _stamps(n, 0, random.Random(0)), workdir)
        query(args.query_days, workdir)
    load = os.getloadavg()[0]
    print(f"\n(python {platform.python_version()}, {os.cpu_count()} CPUs, load {load:.1f})")


if __name__ == "__main__":
    main()
