"""Three real worker processes over one shared directory: one leader, failover, shared state.

Each child (``leader_child.py``) runs the process's ``AlertingRuntime`` from the environment,
with ``multiprocess_dir`` pointing at the test's directory and a 1 s evaluation interval. The
test process runs the one dispatcher over the shared outbox and a real webhook receiver
(exactly-once delivery by N dispatchers is the outbox's claims, tested with the outbox), so
what is counted here is what the engines decide: every notification enqueued once.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paca_otel.delivery._dispatcher import Dispatcher
from paca_otel.delivery._outbox import Outbox
from paca_otel.delivery.channels import WebhookChannel
from tests._wait import wait_for, wait_until
from tests.delivery.test_channels import Receiver
from tests.peers import ROOT

INTERVAL = 1.0
CHILD = Path(__file__).with_name("leader_child.py")


class Worker:
    """One child process and a line-based conversation with it."""

    def __init__(self, directory: Path, url: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PACA_OTEL_MULTIPROCESS_DIR": str(directory),
            "PACA_OTEL_EVALUATION_INTERVAL": str(INTERVAL),
            "PACA_OTEL_WEBHOOK_URL": url,
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.pid = self.proc.pid
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_ready(self) -> None:
        assert self.lines.get(timeout=30) == "ready"

    def call(self, op: str, **kw: Any) -> Any:
        """Send one command and return its reply."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.lines.get(timeout=10))["reply"]

    def status(self) -> dict[str, Any]:
        found: dict[str, Any] = self.call("status")
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)  # a paused child must be able to die
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def service(tmp_path: Path, receiver: Receiver) -> Iterator[tuple[list[Worker], Outbox]]:
    """Three workers sharing ``tmp_path`` and the test's dispatcher over their outbox."""
    workers = [Worker(tmp_path, f"{receiver.url}/hook") for _ in range(3)]
    outbox: Outbox | None = None
    dispatcher: Dispatcher | None = None
    try:
        for worker in workers:
            worker.wait_ready()
        outbox = Outbox(tmp_path / "alerting.sqlite3")
        channel = WebhookChannel(f"{receiver.url}/hook", timeout=5)
        dispatcher = Dispatcher(outbox, {"webhook": channel}, poll_interval=0.05)
        dispatcher.start()
        yield workers, outbox
    finally:
        for worker in workers:
            worker.stop()
        if dispatcher is not None:
            dispatcher.stop()
        if outbox is not None:
            outbox.close()


def leader_of(workers: list[Worker]) -> Worker | None:
    """The one worker that leads, or None while there is not exactly one."""
    leading = [w for w in workers if w.status()["leader"]]
    return leading[0] if len(leading) == 1 else None


def sent(receiver: Receiver) -> Counter[str]:
    """Firing notifications delivered, by rule."""
    with receiver.lock:
        bodies = [r["body"] for r in receiver.requests if r["status"] < 300]
    return Counter(a["labels"]["alertname"] for body in bodies for a in body["alerts"])


def takeover(workers: list[Worker], since: float) -> tuple[Worker, float]:
    """Wait for a worker that started leading after ``since`` and evaluated; the delay."""

    def found() -> tuple[Worker, float] | None:
        for worker in workers:
            state = worker.status()
            evaluating = state["evaluating_since"]
            if state["leader"] and evaluating is not None and state["leading_since"] >= since:
                return worker, evaluating - since
        return None

    return wait_for(found, "a new leader evaluating", timeout=10, interval=0.02)


def test_one_leader_and_a_takeover_within_two_intervals_after_sigkill(
    service: tuple[list[Worker], Outbox], receiver: Receiver
) -> None:
    """One notification per alert; SIGKILL the leader: another leads and evaluates within 2
    intervals, fires a pending alert on its original ``for`` timer, and re-sends nothing."""
    workers, outbox = service
    leader = wait_for(lambda: leader_of(workers), "exactly one leader", timeout=10)
    wait_until(lambda: sent(receiver)["Always"] == 1, "the first notification", timeout=10)

    for worker in workers:
        worker.call("feed", name="slow", value=1.0)
    pending = wait_for(
        lambda: next((a for a in leader.status()["active"] if a["rule"] == "Slow"), None),
        "Slow pending at the leader",
        timeout=5,
    )
    assert pending["state"] == "pending"
    killed_at = time.time()
    os.kill(leader.pid, signal.SIGKILL)
    leader.proc.wait(10)  # reaped, as uvicorn's or gunicorn's master does
    rest = [w for w in workers if w is not leader]
    successor, delay = takeover(rest, killed_at)
    print(f"failover after SIGKILL: {delay:.3f} s (interval {INTERVAL:g} s)")
    assert delay < 2 * INTERVAL

    wait_until(lambda: sent(receiver)["Slow"] == 1, "Slow to fire at the new leader", timeout=10)
    (slow,) = [e for e in outbox.entries() if e.notification.events[0].rule == "Slow"]
    assert slow.notification.events[0].starts_at == pending["active_since"]  # timer restored
    time.sleep(2 * INTERVAL)  # two more cycles of the new leader: nothing is re-sent
    assert [w.status()["leader"] for w in rest] == [w is successor for w in rest]
    assert sent(receiver) == Counter({"Always": 1, "Slow": 1})
    assert all(count == 1 for count in receiver.keys.values())
    assert len(outbox.entries()) == 2


def test_rules_and_silences_from_any_worker_reach_every_worker(
    service: tuple[list[Worker], Outbox], receiver: Receiver
) -> None:
    """A rule added through a follower is listed everywhere within an interval and fired once
    by the leader; a silence made through a follower mutes the leader's next evaluation; a
    paused leader loses the lease within 2 intervals and stops evaluating when it resumes."""
    workers, _ = service
    leader = wait_for(lambda: leader_of(workers), "exactly one leader", timeout=10)
    first, second = [w for w in workers if w is not leader]

    added_at = time.monotonic()
    first.call("add_rule", rule={"name": "Added", "condition": "up > 0", "channels": ["webhook"]})
    wait_until(
        lambda: all("Added" in w.status()["rules"] for w in workers), "every worker to list it"
    )
    seen_after = time.monotonic() - added_at
    print(f"rule seen by every worker after {seen_after:.3f} s")
    assert seen_after < INTERVAL + 0.5
    wait_until(lambda: sent(receiver)["Added"] == 1, "the leader to fire the added rule")

    silence_id = first.call("silence", matchers={"alertname": "Quiet"}, duration=600)
    second.call("add_rule", rule={"name": "Quiet", "condition": "up > 0", "channels": ["webhook"]})
    quiet = wait_for(
        lambda: next((a for a in leader.status()["active"] if a["rule"] == "Quiet"), None),
        "Quiet at the leader",
        timeout=5,
    )
    assert (quiet["state"], quiet["silenced_by"]) == ("firing", silence_id)
    wait_until(
        lambda: all(silence_id in w.status()["silences"] for w in workers),
        "every worker to list the silence",
        timeout=2 * INTERVAL + 1,
    )

    paused_at = time.time()
    os.kill(leader.pid, signal.SIGSTOP)
    successor, delay = takeover([first, second], paused_at)
    print(f"failover after SIGSTOP: {delay:.3f} s (interval {INTERVAL:g} s)")
    assert delay < 2 * INTERVAL
    os.kill(leader.pid, signal.SIGCONT)
    wait_until(lambda: not leader.status()["leader"], "the resumed leader to step down", timeout=5)
    assert successor.status()["leader"]
    time.sleep(INTERVAL)
    assert sent(receiver) == Counter({"Always": 1, "Added": 1})
    assert all(count == 1 for count in receiver.keys.values())


def rules_version(path: Path) -> int:
    """The shared ``rules`` change counter: how often a write changed the stored rules."""
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT version FROM changes WHERE topic = 'rules'").fetchone()
    return int(row[0]) if row else 0


def test_workers_loading_one_rules_file_store_it_once_and_prune_it_once(
    service: tuple[list[Worker], Outbox], tmp_path: Path
) -> None:
    """Every worker loads the same file (as at a deploy): its rules are written once, a rule
    deleted from it is removed from every worker with one write, and then nothing is written."""
    workers, _ = service
    state = tmp_path / "alerting.sqlite3"
    rules = tmp_path / "rules.yaml"

    def load(*names: str) -> None:
        body = "".join(f"  - alert: {name}\n    expr: up > 99\n" for name in names)
        rules.write_text(f"groups:\n- name: g\n  rules:\n{body}")
        for worker in workers:
            assert worker.call("load_rules_file", path=str(rules)) == list(names)

    def everywhere(names: list[str]) -> bool:
        return all(w.status()["rules"] == names for w in workers)

    wait_until(lambda: rules_version(state) == 2, "the two rules from code stored")
    start = 2
    load("Kept", "Dropped")
    wait_until(lambda: everywhere(["Always", "Dropped", "Kept", "Slow"]), "the file's rules")
    wait_until(lambda: rules_version(state) == start + 2, "the file's two rules stored")
    load("Kept")
    wait_until(lambda: everywhere(["Always", "Kept", "Slow"]), "the dropped rule gone")
    wait_until(lambda: rules_version(state) == start + 3, "the one removal stored")
    time.sleep(2 * INTERVAL)  # two more cycles and refreshes of every worker: no churn
    assert rules_version(state) == start + 3
