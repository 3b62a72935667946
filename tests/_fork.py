"""Forking the test process for real: the child reports through a pipe and never returns.

A forked child of pytest must not run pytest's machinery: it runs one function, writes one JSON
line to a pipe and leaves with ``os._exit``. The parent reads with a deadline and reaps the
child by its PID (killed if it outlives the bound), so a hang in the child fails the test
instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

CHILD_TIMEOUT = 20.0


def fork_child(child: Callable[[int, int], dict[str, Any]]) -> tuple[int, int, int]:
    """Fork; the child runs ``child(report_fd, go_fd)``, writes its JSON and exits.

    Returns the child's pid, the read end of its report pipe and the write end of the pipe the
    parent closes to let it exit.
    """
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    with warnings.catch_warnings():  # 3.12+ warns about forking a process with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(report_r)
            os.close(go_w)
            result = child(report_w, go_r)
        except BaseException as exc:  # reported to the parent, which fails
            result = {"error": f"{type(exc).__name__}: {exc}"}
            code = 1
        try:
            os.write(report_w, json.dumps(result).encode() + b"\n")
        finally:
            os._exit(code)
    os.close(report_w)
    os.close(go_r)
    return pid, report_r, go_w


def read_report(fd: int) -> dict[str, Any]:
    data = b""
    deadline = time.monotonic() + CHILD_TIMEOUT
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            pytest.fail(f"the forked child reported nothing within {CHILD_TIMEOUT} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    report: dict[str, Any] = json.loads(data or b"{}")
    assert "error" not in report, report["error"]
    return report


def reap(pid: int, go_w: int) -> int:
    """Let the child exit (close its pipe), wait for it (bounded), kill it if it hangs."""
    os.close(go_w)
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child did not exit in time")


def wait_go(go_fd: int) -> None:
    """In the child: block until the parent closes the pipe (bounded)."""
    select.select([go_fd], [], [], CHILD_TIMEOUT)


def run_forked(child: Callable[[int, int], dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """Fork, run ``child`` there, and return its report and exit code once it is reaped."""
    pid, report_fd, go_w = fork_child(child)
    try:
        report = read_report(report_fd)
    finally:
        code = reap(pid, go_w)
        os.close(report_fd)
    return report, code
