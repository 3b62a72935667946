"""Claim owner ids: unique per dispatcher, and a holder is "gone" only when that is certain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from paca_otel.delivery._claims import holder_is_gone, new_owner
from paca_otel.delivery._dispatcher import Dispatcher
from paca_otel.delivery._outbox import Outbox
from tests.delivery.test_channels import T0, notification
from tests.delivery.test_outbox import Scripted

linux = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="pid domains come from /proc"
)


def domain() -> str:
    """This process's pid domain, as new_owner() writes it."""
    return new_owner().partition("@")[2]


def finished_pid() -> int:
    """The pid of a process that ran and was reaped: no process has it now (barring reuse)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


def test_owner_ids_are_unique_and_name_the_pid() -> None:
    """Every id is fresh, starts with this pid and, on Linux, carries the pid domain."""
    first, second = new_owner(), new_owner()
    assert first != second
    assert first.startswith(f"{os.getpid()}-")
    if sys.platform.startswith("linux"):
        assert first.partition("@")[2] == second.partition("@")[2] != ""


@linux
def test_a_holder_is_gone_only_when_its_pid_is_gone_in_this_domain() -> None:
    """A reaped pid in this domain is gone; this process, another domain or no domain is not."""
    dead = finished_pid()
    assert holder_is_gone(f"{dead}-feed@{domain()}") is True
    assert holder_is_gone(f"{dead}-feed@0123456789ab") is False  # another machine or namespace
    assert holder_is_gone(f"{dead}-feed") is False  # no domain: only the lease can tell
    assert holder_is_gone(new_owner()) is False  # this very process
    assert holder_is_gone(f"x-feed@{domain()}") is False
    assert holder_is_gone(f"0-feed@{domain()}") is False


@linux
def test_a_killed_but_unreaped_holder_is_not_gone() -> None:
    """A zombie still has its pid: it counts as alive (its rows wait for the lease)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = f"{proc.pid}-feed@{domain()}"
        assert holder_is_gone(owner) is False
        os.kill(proc.pid, signal.SIGKILL)
        # not reaped yet: the pid stays taken until wait()
        assert holder_is_gone(owner) is False
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert holder_is_gone(owner) is True


@linux
def test_dispatcher_takes_back_the_rows_of_a_gone_holder_at_once() -> None:
    """Rows claimed for an hour by a process that is gone are sent on the next pass."""
    box = Outbox(clock=lambda: T0)
    box.enqueue(notification())
    gone = f"{finished_pid()}-feed@{domain()}"
    assert box.claim("webhook", gone, T0, lease=3600)
    channel = Scripted()
    assert Dispatcher(box, {"webhook": channel}).deliver_due(now=T0 + 1) == 1
    assert len(channel.sent) == 1
    box.close()


@linux
def test_new_owner_imports_no_codec_module() -> None:
    """The first owner id is made without a lazy import (a fork meanwhile would hang the child).

    The dispatcher's thread makes it; a module that thread is importing when a pre-fork server
    forks stays locked in the child.
    """
    code = (
        "import sys\n"
        "from paca_otel.delivery._claims import new_owner\n"
        "before = set(sys.modules)\n"
        "assert '@' in new_owner()\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "[]"
