"""Leader failover time: from killing the alerting leader to another worker evaluating.

Three worker processes run a rule engine over one shared state file (what
``multiprocess_dir`` gives ``uvicorn --workers 3``), with a 1 s evaluation interval. Each round
picks the leader, waits a random fraction of an interval (so the kill lands anywhere in the
tick), and either

- **SIGKILL**s it and reaps it, as uvicorn's or gunicorn's master does (the followers see the
  holder's pid gone and take over at their next lease poll), then starts a replacement; or
- **SIGSTOP**s it (a hung leader: alive, renewing nothing), so only the lease TTL frees it,
  then resumes it (it steps down as a follower).

Printed per kind: median and worst failover, as a ratio of the evaluation interval, next to
the goal (2 intervals) and the bound the lease timing guarantees (TTL + poll = 1.75 intervals).

Run: python benchmarks/bench_failover.py [ROUNDS]
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

INTERVAL = 1.0  # seconds; the smallest evaluation interval the settings allow


def worker(path: str, conn: Connection) -> None:
    """One worker: an engine over the shared file; reports each start of leading."""
    from paca_otel.alerting._engine import RuleEngine
    from paca_otel.delivery._outbox import Outbox
    from paca_otel.pipeline._store import SeriesStore
    from paca_otel.rules._rule import Rule
    from paca_otel.storage import open_database

    db = open_database(path)
    store = SeriesStore()
    engine = RuleEngine(
        store, outbox=Outbox(database=db), database=db, evaluation_interval=INTERVAL
    )
    engine.add_rule(Rule(name="Always", condition="up > 0", cooldown=3600))
    store.append("up", (), 1.0, time.time())
    engine.start()
    conn.send(("ready", os.getpid(), 0.0))
    base, was_leading, reported = engine.cycles, False, True
    while True:  # the first cycle after taking the lease is the moment measured
        leading, cycles = engine.leading, engine.cycles
        if leading and not was_leading:
            reported = False
        if leading and not reported and cycles > base:
            conn.send(("evaluating", os.getpid(), time.time()))
            reported = True
        if not leading:
            base = cycles
        was_leading = leading
        time.sleep(0.002)


class Service:
    """The worker processes and the reports they send."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.context = multiprocessing.get_context("spawn")
        self.procs: dict[int, multiprocessing.process.BaseProcess] = {}
        self.reports: list[tuple[str, int, float]] = []
        self.lock = threading.Condition()

    def spawn(self) -> int:
        parent, child = self.context.Pipe()
        proc = self.context.Process(target=worker, args=(self.path, child), daemon=True)
        proc.start()
        threading.Thread(target=self._listen, args=(parent,), daemon=True).start()
        assert proc.pid is not None
        self.procs[proc.pid] = proc
        self.wait(lambda r: r[0] == "ready" and r[1] == proc.pid, 30)
        return proc.pid

    def _listen(self, conn: Connection) -> None:
        while True:
            try:
                report = conn.recv()
            except (EOFError, OSError):
                return
            with self.lock:
                self.reports.append(report)
                self.lock.notify_all()

    def wait(self, match: object, timeout: float) -> tuple[str, int, float]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for report in self.reports:
                    if match(report):  # type: ignore[operator]  # a predicate
                        return report
                left = deadline - time.monotonic()
                if left <= 0:
                    msg = "no such report in time"
                    raise TimeoutError(msg)
                self.lock.wait(left)

    def leader(self) -> int:
        """The pid of the worker that evaluated last (the current leader)."""
        with self.lock:
            evaluating = [r for r in self.reports if r[0] == "evaluating"]
        return evaluating[-1][1]

    def stop(self) -> None:
        for pid, proc in self.procs.items():
            if proc.is_alive():
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            proc.join(5)


def round_trip(service: Service, kind: str, rng: random.Random) -> float:
    """Kill or pause the leader once; seconds until another worker evaluated."""
    old = service.leader()
    time.sleep(rng.uniform(0, INTERVAL))
    at = time.time()
    os.kill(old, signal.SIGKILL if kind == "SIGKILL" else signal.SIGSTOP)
    if kind == "SIGKILL":
        service.procs[old].join(5)  # reaped, as the server's master does
    _, new, evaluated = service.wait(
        lambda r: r[0] == "evaluating" and r[1] != old and r[2] >= at, 10 * INTERVAL
    )
    if kind == "SIGKILL":
        service.spawn()
    else:
        os.kill(old, signal.SIGCONT)
    assert new != old
    return evaluated - at


def main(rounds: int) -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as directory:
        service = Service(str(Path(directory) / "alerting.sqlite3"))
        try:
            for _ in range(3):
                service.spawn()
            service.wait(lambda r: r[0] == "evaluating", 10 * INTERVAL)
            print(f"leader failover, 3 workers, evaluation interval {INTERVAL:g} s")
            print("goal: <= 2.00 intervals; guaranteed by the lease timing: <= 1.75")
            for kind in ("SIGKILL", "SIGSTOP"):
                times = [round_trip(service, kind, rng) for _ in range(rounds)]
                median, worst = statistics.median(times), max(times)
                print(
                    f"{kind}: median {median:.3f} s ({median / INTERVAL:.2f} intervals), "
                    f"worst {worst:.3f} s ({worst / INTERVAL:.2f} intervals), {rounds} rounds"
                )
        finally:
            service.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
