"""The storage layer: reads while the state file is busy, enqueue cost, codec cost.

1. **Reads during a busy file.** A second connection holds the state file's write lock for
   ``--hold`` seconds while an evaluation cycle fires an alert. Timed: each
   ``RuleEngine.active_alerts()`` call made meanwhile (what the API does on the event loop),
   and the cycle itself (bounded by the busy budget, then retried next cycle). Before the
   storage layer, the engine held its lock during the write: a read waited ~10 s.
2. **Enqueue.** Microseconds per ``Outbox.enqueue`` into a WAL file, plain and encrypted
   (AES-GCM with ``storage_key``); the anchor is a bare ``INSERT`` of the same payload on a
   raw ``sqlite3`` connection in autocommit, measured in the same run.
3. **Codec.** Microseconds per ``encode``/``decode`` of one alert row, plain and encrypted.

    python benchmarks/bench_storage.py [--hold 3] [--n 2000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

from paca_otel.alerting.engine import RuleEngine
from paca_otel.alerting.models import AlertEvent, AlertState, Notification, Severity
from paca_otel.alerting.outbox import Outbox
from paca_otel.alerting.rules import Rule
from paca_otel.pipeline.store import SeriesStore
from paca_otel.storage import Codec, open_database

KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()


def _notification(i: int) -> Notification:
    event = AlertEvent(
        rule="HighMem", state=AlertState.FIRING, labels={"host": f"h{i}", "zone": "eu-1"},
        annotations={"summary": f"memory of h{i} is 95 %"}, value=95.0,
        severity=Severity.WARNING, starts_at=1000.0 + i, ends_at=None, fingerprint=f"fp{i}",
    )  # fmt: skip
    return Notification(
        channel="log", group_key="alertname=HighMem", events=(event,), created_at=1000.0 + i
    )


def busy_reads(directory: Path, hold: float) -> None:
    path = directory / "busy.sqlite3"
    db = open_database(path)
    outbox = Outbox(database=db)
    store = SeriesStore()
    engine = RuleEngine(store, outbox=outbox, database=db)
    db.close()
    engine.add_rule(Rule(name="HighMem", condition="mem > 90", cooldown=3600))
    store.append("mem", (("host", "a"),), 95.0, time.time())
    # released from a timer thread: the lock must outlive this thread's use of it
    holder = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(hold, lambda: holder.execute("ROLLBACK"))
    cycle_time: list[float] = []

    def cycle() -> None:
        started = time.perf_counter()
        engine.evaluate_once()
        cycle_time.append(time.perf_counter() - started)

    thread = threading.Thread(target=cycle)
    release.start()
    thread.start()
    reads: list[float] = []
    while thread.is_alive():
        started = time.perf_counter()
        engine.active_alerts()
        reads.append(time.perf_counter() - started)
        time.sleep(0.01)
    release.join()
    holder.close()
    print(f"file held busy {hold:g} s during an evaluation cycle that fires an alert:")
    print(
        f"  active_alerts() during the cycle: {len(reads)} calls, max {max(reads) * 1e3:.2f} ms,"
        f" median {statistics.median(reads) * 1e3:.3f} ms"
    )
    print(
        f"  the cycle: {cycle_time[0]:.2f} s (busy budget, then retried); storage errors "
        f"counted: {engine.storage_errors}"
    )
    engine.evaluate_once()
    print(f"  next cycle after the file frees: {outbox.pending_count()} notification(s) queued")
    engine.close()
    outbox.close()


def enqueue_cost(directory: Path, n: int) -> None:
    payloads = [_notification(i) for i in range(n)]
    raw = sqlite3.connect(directory / "raw.sqlite3", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE t (k TEXT UNIQUE, payload TEXT)")
    results: dict[str, float] = {}
    for rep in range(3):  # interleaved repetitions
        started = time.perf_counter()
        for i, p in enumerate(payloads):
            raw.execute(
                "INSERT OR IGNORE INTO t VALUES (?, ?)",
                (f"{rep}:{i}", json.dumps(p.to_dict(), separators=(",", ":"))),
            )
        results.setdefault("raw sqlite3 INSERT", float("inf"))
        results["raw sqlite3 INSERT"] = min(
            results["raw sqlite3 INSERT"], (time.perf_counter() - started) / n
        )
        for name, codec in (("Outbox.enqueue", Codec()), ("Outbox.enqueue, encrypted", Codec(KEY))):
            box = Outbox(directory / f"{name}-{rep}.sqlite3", codec=codec)
            started = time.perf_counter()
            for p in payloads:
                box.enqueue(p)
            elapsed = (time.perf_counter() - started) / n
            results[name] = min(results.get(name, float("inf")), elapsed)
            box.close()
    raw.close()
    anchor = results["raw sqlite3 INSERT"]
    print(f"enqueue, {n} notifications into a WAL file (best of 3):")
    for name, value in results.items():
        print(f"  {name:28s} {value * 1e6:8.1f} us  ({value / anchor:.2f}x the raw INSERT)")


def codec_cost(n: int) -> None:
    row = {
        "rule": "HighMem", "labels": [["host", "a"]], "fingerprint": "0123456789abcdef",
        "state": "firing", "active_since": 1000.0, "last_true": 1015.0, "value": 95.0,
        "last_notified": 1000.0, "false_since": None, "fired_at": 1000.0,
    }  # fmt: skip
    print(f"codec, one alert row, {n} round trips:")
    for name, codec in (("plain JSON", Codec()), ("AES-GCM", Codec(KEY))):
        started = time.perf_counter()
        for _ in range(n):
            stored = codec.encode(row, "alerts")
        encode = (time.perf_counter() - started) / n
        started = time.perf_counter()
        for _ in range(n):
            codec.decode(stored, "alerts")
        decode = (time.perf_counter() - started) / n
        print(f"  {name:12s} encode {encode * 1e6:6.1f} us  decode {decode * 1e6:6.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hold", type=float, default=3.0)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        busy_reads(Path(directory), args.hold)
        enqueue_cost(Path(directory), args.n)
    codec_cost(args.n * 10)


if __name__ == "__main__":
    main()
