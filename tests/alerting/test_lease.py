"""The leader lease: acquire, renew, expiry, takeover, release, a dead holder, a fork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from paca_otel.alerting._lease import Lease, lease_timing
from paca_otel.errors import ConfigError
from paca_otel.storage import Database, open_database
from tests._wait import wait_until
from tests.peers import ROOT


class Clock:
    """A wall clock and a monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1_000.0
        self.m = 50.0

    def wall(self) -> float:
        return self.t

    def mono(self) -> float:
        return self.m

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.m += seconds


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A shared state file."""
    database = open_database(tmp_path / "state.sqlite3")
    yield database
    database.close()


def lease(db: Database, clock: Clock, ttl: float = 3.0) -> Lease:
    return Lease(db, ttl=ttl, clock=clock.wall, monotonic=clock.mono)


def test_first_caller_acquires_and_others_are_followers(db: Database) -> None:
    """The first acquire takes the lease (term 1); another process's acquire is refused."""
    clock = Clock()
    first, second = lease(db, clock), lease(db, clock)
    assert first.acquire()
    assert first.term == 1
    assert first.held()
    assert not second.acquire()
    assert not second.held()
    current = first.current()
    assert current is not None
    assert (current.holder, current.expires_at) == (first.holder_id, 1_003.0)
    assert current.pid == os.getpid()


def test_renewal_extends_the_lease_and_keeps_the_term(db: Database) -> None:
    """A holder renewing before expiry keeps it; the others stay out past the first expiry."""
    clock = Clock()
    first, second = lease(db, clock), lease(db, clock)
    assert first.acquire()
    for _ in range(5):
        clock.advance(2.0)  # < ttl: each renewal comes in time
        assert first.acquire()
        assert not second.acquire()
    assert first.term == 1
    current = first.current()
    assert current is not None
    assert current.expires_at == clock.t + 3.0


def test_expired_lease_is_taken_over_and_the_old_holder_cannot_renew(db: Database) -> None:
    """After the TTL another process takes it (term 2); the old holder's renewal then fails."""
    clock = Clock()
    first, second = lease(db, clock), lease(db, clock)
    assert first.acquire()
    clock.advance(2.9)
    assert not second.acquire()  # not yet expired
    clock.advance(0.2)
    assert second.acquire()
    assert second.term == 2
    assert not first.acquire()
    assert not first.held()


def test_held_answers_from_the_local_clock_and_ends_before_the_expiry(db: Database) -> None:
    """``held`` is true until 0.9 TTL after the renewal began: before anyone could take over."""
    clock = Clock()
    first = lease(db, clock, ttl=10.0)
    assert first.acquire()
    clock.m += 8.9
    assert first.held()
    clock.m += 0.2
    assert not first.held()  # paused too long: its cycle must not write
    assert first.acquire()  # nobody took it meanwhile: renewing restores it
    assert first.held()


def test_release_hands_over_at_once(db: Database) -> None:
    """A released lease is free for the next caller, without waiting for the TTL."""
    clock = Clock()
    first, second = lease(db, clock), lease(db, clock)
    assert first.acquire()
    first.release()
    assert not first.held()
    assert second.acquire()
    assert second.term == 2


def test_ttl_must_be_positive(db: Database) -> None:
    """A zero TTL is a set-up error naming the value."""
    with pytest.raises(ConfigError, match="ttl"):
        Lease(db, ttl=0)


def test_timing_guarantees_failover_within_two_intervals() -> None:
    """TTL + poll (the worst failover) stays under 2 intervals with room for a cycle."""
    for interval in (1.0, 15.0, 86_400.0):
        ttl, poll = lease_timing(interval)
        assert ttl > interval  # a leader renewing each interval keeps it
        assert ttl + poll <= 1.75 * interval


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from paca_otel.alerting._lease import Lease
    from paca_otel.storage import open_database
    lease = Lease(open_database(sys.argv[1]), ttl=3600.0)
    assert lease.acquire()
    print("held", flush=True)
    time.sleep(3600)
    """
)


@pytest.mark.parametrize("reap", [True, False], ids=["reaped", "zombie"])
def test_a_dead_holder_on_this_host_is_replaced_without_waiting_for_the_ttl(
    tmp_path: Path, reap: bool
) -> None:
    """A SIGKILLed holder of this pid namespace (gone or a zombie) loses its hour-long lease."""
    path = tmp_path / "state.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    db = open_database(path)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        mine = Lease(db, ttl=3600.0)
        assert not mine.acquire()  # alive: the lease is its
        os.kill(child.pid, signal.SIGKILL)
        if reap:
            child.wait(10)
        else:  # the kill lands asynchronously: wait until the kernel made it a zombie
            stat = Path(f"/proc/{child.pid}/stat")
            wait_until(
                lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", "a zombie child"
            )
        assert mine.acquire()
        assert mine.term == 2
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
        db.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_acts_on_its_parents_lease(db: Database) -> None:
    """After fork the child has another holder id and does not hold the parent's lease."""
    clock = Clock()
    parent = lease(db, clock)
    assert parent.acquire()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the test's teardown
        os.close(read)
        report = f"{parent.held()} {parent.holder_id != ''} {parent.holder_id}"
        os.write(write, report.encode())
        os._exit(0)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            held, has_id, child_id = pipe.read().split()
    finally:
        os.waitpid(pid, 0)
    assert (held, has_id) == ("False", "True")
    assert child_id != parent.holder_id
    assert child_id.startswith(f"{pid}-")
    assert parent.held()
