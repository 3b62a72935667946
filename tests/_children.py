"""Child processes that answer one JSON line per command on stdin: the multi-worker tests.

A child prints ``ready`` once it is set up, then one JSON line per command line it reads. A
thread per child pumps its stdout into a queue, so every read has a deadline (a hung child
fails the test instead of hanging the suite), and :meth:`Child.stop` kills a child that is
still running by its PID, reaps it and closes its pipes.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 30.0


class Child:
    """One child process started from the repository's root with ``env``."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def wait_ready(self) -> None:
        assert self.lines.get(timeout=TIMEOUT) == "ready"

    def read(self) -> Any:
        try:
            return json.loads(self.lines.get(timeout=TIMEOUT))
        except queue.Empty:
            pytest.fail(f"child {self.pid} said nothing for {TIMEOUT} s")

    def command(self, line: str) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.read()

    def stop(self) -> None:
        """Kill the child by its PID if it still runs, reap it, and close its pipes."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=TIMEOUT)
        self.pump.join(timeout=TIMEOUT)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


C = TypeVar("C", bound=Child)


def children(make: Callable[[int], C]) -> Iterator[Callable[..., list[C]]]:
    """The body of a ``start_workers`` fixture: ``start(*counts)`` starts ``make(n)`` for each
    count and waits until all are ready; every child started is stopped at the end."""
    started: list[C] = []

    def start(*counts: int) -> list[C]:
        workers = []
        for n in counts:
            started.append(make(n))
            workers.append(started[-1])
        for worker in workers:
            worker.wait_ready()
        return workers

    yield start
    for worker in started:
        worker.stop()
