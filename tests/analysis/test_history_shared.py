"""A history shared by the workers of a service (``multiprocess_dir``): one file, one elected
recorder of the service-wide view, readers that see what it writes, takeover after SIGKILL;
in one process: the election, the readers' catalog reload, and a fork that keeps no lock."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData

from paca_otel import configure, get_telemetry
from paca_otel.analysis import _history_shared, _history_writer
from paca_otel.analysis._history_shared import PUBLISH_EVERY, RecorderLock
from paca_otel.analysis.history import HistoryStore, default_history_path
from paca_otel.config import load_settings
from paca_otel.errors import ConfigError
from paca_otel.storage import open_database
from tests._children import ROOT, TIMEOUT, Child, children
from tests._fork import fork_child, read_report, reap
from tests._storage import held
from tests._wait import wait_for

CHILD = Path(__file__).with_name("history_child.py")
PUBLISH = 0.5  # the children's stand-in for PUBLISH_EVERY


class Worker(Child):
    """One child worker of the service, with history on."""

    def __init__(self, directory: Path, n: int, env: dict[str, str]) -> None:
        super().__init__([sys.executable, str(CHILD), str(directory), str(PUBLISH), str(n)], env)
        self.n = n

    def recording(self) -> bool:
        return bool(self.command("state")["recording"])

    def points(self) -> list[tuple[float, float]]:
        """The service counter's points as this worker reads them from the history."""
        found = self.command("query")
        assert len(found) <= 1, found  # one series: the workers' values are summed
        return [(at, value) for at, value in found[0]["points"]] if found else []


@pytest.fixture
def start_workers(tmp_path: Path) -> Iterator[Callable[..., list[Worker]]]:
    """Start child workers sharing ``tmp_path/mp``; each is killed by its PID at the end."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env = {k: v for k, v in env.items() if not k.startswith("PACA_OTEL_")}
    yield from children(lambda n: Worker(tmp_path / "mp", n, env))


def recorder_of(workers: list[Worker]) -> Worker | None:
    """The one worker that records, or None while there is not exactly one."""
    recording = [w for w in workers if w.recording()]
    return recording[0] if len(recording) == 1 else None


def reaches(worker: Worker, total: float, after: float = 0.0) -> list[tuple[float, float]]:
    """Wait until ``worker`` reads ``total`` stamped after ``after`` in the history."""

    def check() -> list[tuple[float, float]] | None:
        points = worker.points()
        return points if points and points[-1][1] == total and points[-1][0] > after else None

    return wait_for(check, f"{total} in the history read by {worker.pid}", timeout=TIMEOUT)


def test_one_file_one_recorder_of_the_service_sum_read_by_every_worker(
    start_workers: Callable[..., list[Worker]], tmp_path: Path
) -> None:
    """Three workers: the history is ``history.sqlite3`` in the shared directory (nothing
    in the default data directory), exactly one worker records, the counter's history is
    the sum over the workers (never one worker's value), and the others read it."""
    workers = start_workers(1, 2, 3)
    recorder = wait_for(lambda: recorder_of(workers), "exactly one recorder", timeout=TIMEOUT)
    assert all(w.command("state")["shared"] for w in workers)
    assert (tmp_path / "mp" / "history.sqlite3").is_file()
    assert not (tmp_path / "xdg").exists()
    readers = [w for w in workers if w is not recorder]
    for reader in readers:
        points = reaches(reader, 6.0)
        values = [value for _, value in points]
        assert values == sorted(values), values  # sums only grow: no worker's own value mixed
        assert set(values) <= {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}
    for worker in workers:
        worker.command("add 10")
    started = time.monotonic()
    for reader in readers:
        reaches(reader, 36.0)
    lag = time.monotonic() - started
    print(f"readers saw the service sum {lag:.2f} s after it changed (published every {PUBLISH} s)")
    assert recorder.recording()  # nobody took over from a live recorder
    assert [w.recording() for w in readers] == [False, False]


def test_after_sigkill_another_worker_records_and_keeps_appending(
    start_workers: Callable[..., list[Worker]],
) -> None:
    """SIGKILL the recorder: another worker takes over within a tick or two, goes on where
    the file ends, and every survivor reads the samples it appends."""
    workers = start_workers(1, 2, 4)
    recorder = wait_for(lambda: recorder_of(workers), "exactly one recorder", timeout=TIMEOUT)
    rest = [w for w in workers if w is not recorder]
    before = reaches(rest[0], 7.0)
    killed_at = time.monotonic()
    os.kill(recorder.pid, signal.SIGKILL)
    recorder.process.wait(TIMEOUT)  # reaped, as the server's master does
    successor = wait_for(
        lambda: recorder_of(rest), "a new recorder", timeout=TIMEOUT, interval=0.02
    )
    takeover = time.monotonic() - killed_at
    print(f"history takeover after SIGKILL: {takeover:.3f} s (tick 0.2 s)")
    assert takeover < 5.0
    for worker in rest:
        worker.command("add 100")
    for worker in rest:
        points = reaches(worker, 207.0, after=before[-1][0])  # a dead worker's count stays
        stamps = [at for at, _ in points]
        assert stamps == sorted(set(stamps))  # one series in time order, no duplicates
        assert set(before) <= set(points)  # what the dead recorder published stays
    assert [w.recording() for w in rest] == [w is successor for w in rest]


# -- in one process -------------------------------------------------------------------------


def _collection(value: int) -> Callable[[], MetricsData]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("t").create_counter("c").add(value)

    def collect() -> MetricsData:
        data = reader.get_metrics_data()
        assert data is not None
        return data

    return collect


def test_stores_of_one_file_elect_one_recorder_and_readers_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two shared stores on one file: the first to tick records; the other refuses appends,
    records nothing, reads what the recorder sealed, and records once the first closes."""
    monkeypatch.setattr(_history_shared, "PUBLISH_EVERY", 0.0)
    path = tmp_path / "history.sqlite3"
    first = HistoryStore(path, shared=True)
    second = HistoryStore(path, shared=True)
    try:
        assert first.shared
        assert not first.recording
        assert not second.recording
        assert first.record_service(_collection(5), 1_000.0) == 1
        assert first.recording
        assert second.record_service(_collection(7), 1_000.0) == 0
        assert not second.recording
        assert not second.append("c", {}, 1_001.0, 1.0)
        assert second.dropped["history_not_recorder"] == 1
        assert second.run_maintenance(2_000.0).sealed_chunks == 0
        first.record_service(_collection(6), 1_010.0)  # publishes at once (PUBLISH_EVERY 0)
        first.flush()
        assert second.names() == ["c"]
        (series,) = second.query_range("c", start=990.0, end=1_020.0, step=1.0)
        assert list(series.points.values) == [5.0, 6.0]  # type: ignore[attr-defined]
    finally:
        first.close()
    try:
        assert second.record_service(_collection(8), 1_020.0) == 1
        assert second.recording
        assert not second.append("c", {}, 1_010.0, 9.0)  # ends come from the file: too old
        (series,) = second.query_range("c", start=990.0, end=1_030.0, step=1.0)
        assert list(series.points.values) == [5.0, 6.0, 8.0]  # type: ignore[attr-defined]
    finally:
        second.close()


def _chunk_rows(path: Path) -> list[tuple[str, int, int, int, int, bytes]]:
    """``(series key, tier, start, end, count, data)`` of every chunk, straight from the file."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(
            "SELECT s.key, c.tier, c.start_ms, c.end_ms, c.count, c.data FROM history_chunks"
            " AS c JOIN history_series AS s ON s.id = c.series_id ORDER BY 1, 2, 3"
        ).fetchall()


def _publish(store: HistoryStore) -> None:
    """One tick of a shared recorder with nothing to collect: it publishes its buffers."""
    store.record_service(lambda: None)


def _series_values(store: HistoryStore, end: float) -> dict[str, list[float]]:
    found = store.query_range("s", start=0.0, end=end, step=1.0)
    return {s.labels["i"]: list(s.points.values) for s in found}  # type: ignore[attr-defined]


def test_published_buffers_are_read_at_once_and_kept_as_one_row_per_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every tick publishes the recorder's open buffers (PUBLISH_EVERY 0 here): a reader sees
    each sample, the file holds one raw row per series however often the buffer was
    published, and the recorder's own query (file + queue + buffer) has each sample once."""
    monkeypatch.setattr(_history_shared, "PUBLISH_EVERY", 0.0)
    monkeypatch.setattr(_history_writer, "PUBLISH_BATCH", 2)  # 3 series: two lock holds
    path = tmp_path / "history.sqlite3"
    recorder = HistoryStore(path, shared=True, chunk_samples=240, clock=lambda: 2_000.0)
    reader = HistoryStore(path, shared=True, clock=lambda: 2_000.0)
    try:
        _publish(recorder)
        assert recorder.recording
        expected: dict[str, list[float]] = {"0": [], "1": [], "2": []}
        for minute in range(5):
            for k in range(6):
                at = 1_000.0 + 60 * minute + 10 * k
                for i, values in expected.items():
                    values.append(at + int(i))
                    assert recorder.append("s", {"i": i}, at, at + int(i))
            _publish(recorder)
            wait_for(
                lambda: _series_values(reader, 1_400.0) == expected or None,
                f"the reader to read minute {minute}",
            )
            assert _series_values(recorder, 1_400.0) == expected
        rows = _chunk_rows(path)
        assert [(tier, start, count) for _, tier, start, _, count, _ in rows] == [
            (0, 1_000_000, 30)
        ] * 3  # one row per series, rewritten at each publication
        assert recorder.run_maintenance(1_400.0).downsampled_points == 0  # nothing sealed
        recorder.flush()  # sealed: the same row, now final
        assert [(tier, start, count) for _, tier, start, _, count, _ in _chunk_rows(path)] == [
            (0, 1_000_000, 30)
        ] * 3
        assert _series_values(reader, 1_400.0) == expected
        assert _series_values(recorder, 1_400.0) == expected
    finally:
        reader.close()
        recorder.close()


def test_roll_ups_of_published_data_equal_those_of_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same samples (4 series, 10 s apart, 30 minutes) and maintenance passes in a
    publishing shared store and a single-process one: the same roll-ups at every step, one
    extra raw row per series (the published open buffer) until the end, then the same file."""
    monkeypatch.setattr(_history_shared, "PUBLISH_EVERY", 0.0)
    shared_path, single_path = tmp_path / "shared.sqlite3", tmp_path / "single.sqlite3"
    shared = HistoryStore(shared_path, shared=True, chunk_samples=24)
    single = HistoryStore(single_path, chunk_samples=24)
    try:
        _publish(shared)
        for minute in range(30):
            for k in range(6):
                at = 1_000.0 + 60 * minute + 10 * k
                for i in range(4):
                    assert shared.append("s", {"i": str(i)}, at, (at * (i + 1)) % 7)
                    assert single.append("s", {"i": str(i)}, at, (at * (i + 1)) % 7)
            _publish(shared)
            now = 1_060.0 + 60 * minute
            assert shared.run_maintenance(now) == single.run_maintenance(now)
            shared_rows, single_rows = _chunk_rows(shared_path), _chunk_rows(single_path)
            assert [r for r in shared_rows if r[1]] == [r for r in single_rows if r[1]]
        assert sum(r[4] for r in shared_rows if r[1] == 60_000) == 4 * 28  # 1m points so far
        raw_shared = [r for r in _chunk_rows(shared_path) if not r[1]]
        raw_single = [r for r in _chunk_rows(single_path) if not r[1]]
        assert (len(raw_shared), len(raw_single)) == (4 * 8, 4 * 7)  # 180 samples, 24 a chunk
        assert set(raw_single) < set(raw_shared)
        assert _series_values(shared, 3_000.0) == _series_values(single, 3_000.0)
        shared.flush()
        single.flush()
        assert _chunk_rows(shared_path) == _chunk_rows(single_path)
    finally:
        shared.close()
        single.close()


def test_a_dead_recorders_published_samples_stay_once_after_takeover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forked recorder publishes a buffer, appends more and dies without closing: the next
    recorder keeps what was published (exactly once), loses only the unpublished tail, and
    starts its own chunks after it, never replacing the dead recorder's row."""
    monkeypatch.setattr(_history_shared, "PUBLISH_EVERY", 0.0)
    path = tmp_path / "history.sqlite3"

    def child(report: int, go: int) -> dict[str, Any]:
        dead = HistoryStore(path, shared=True, clock=lambda: 2_000.0)
        _publish(dead)
        for k in range(12):
            dead.append("s", {"i": "0"}, 1_000.0 + 10 * k, float(k))
            if k == 5:
                _publish(dead)
        _publish(dead)  # the 12 samples so far
        dead.run_maintenance(1_120.0)  # writes the queue now (no seal: the buffer is young)
        dead.append("s", {"i": "0"}, 1_120.0, 12.0)  # never published
        return {"recording": dead.recording}  # exits without closing, as if SIGKILLed

    pid, report_fd, go_w = fork_child(child)
    try:
        assert read_report(report_fd) == {"recording": True}
    finally:
        os.close(report_fd)
        assert reap(pid, go_w) == 0
    successor = HistoryStore(path, shared=True, clock=lambda: 2_000.0)
    try:
        _publish(successor)
        assert successor.recording
        assert not successor.append("s", {"i": "0"}, 1_110.0, 0.0)  # the file ends at 1110
        for k in range(6):
            assert successor.append("s", {"i": "0"}, 1_130.0 + 10 * k, 100.0 + k)
        _publish(successor)
        successor.run_maintenance(1_200.0)
        expected = [float(k) for k in range(12)] + [100.0 + k for k in range(6)]
        assert _series_values(successor, 1_300.0) == {"0": expected}
        raw = [(start, count) for _, tier, start, _, count, _ in _chunk_rows(path) if not tier]
        assert raw == [(1_000_000, 12), (1_130_000, 6)]
        successor.flush()
        assert _series_values(successor, 1_300.0) == {"0": expected}
    finally:
        successor.close()


def test_publications_queued_behind_a_locked_file_replace_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the file is held, each publication of a buffer replaces the queued copy, and the
    seal replaces the last one: a backlog bound of one chunk (and the first copy, which the
    writer holds while it waits for the file) drops nothing; five queued copies would not fit."""
    monkeypatch.setattr(_history_shared, "PUBLISH_EVERY", 0.0)
    path = tmp_path / "history.sqlite3"
    store = HistoryStore(path, shared=True, chunk_samples=30, max_pending=36)
    _publish(store)
    same = open_database(path)  # the connection the store writes through
    with held(same):
        for k in range(31):  # 5 publications of 6..30 samples, then the seal at the 31st
            store.append("s", {"i": "0"}, 1_000.0 + 10 * k, float(k))
            if k % 6 == 5:
                _publish(store)
        assert store.dropped["history_write_backlog"] == 0
    try:
        wait_for(lambda: [r for r in _chunk_rows(path) if r[4] == 30] or None, "the sealed chunk")
        store.flush()
        assert store.dropped["history_write_backlog"] == 0
        assert _series_values(store, 1_400.0) == {"0": [float(k) for k in range(31)]}
        raw = [(start, count) for _, tier, start, _, count, _ in _chunk_rows(path) if not tier]
        assert raw == [(1_000_000, 30), (1_300_000, 1)]
    finally:
        same.close()
        store.close()


def test_a_forked_child_does_not_hold_its_parents_lock(tmp_path: Path) -> None:
    """flock belongs to the open file a fork shares: the child forgets it, without unlocking."""
    lock = RecorderLock(tmp_path / "h.recorder")
    assert lock.acquire()
    assert lock.held

    def child(report: int, go: int) -> dict[str, Any]:
        held = lock.held
        took = lock.acquire()  # the parent still holds it
        return {"held": held, "took": took}

    pid, report_fd, go_w = fork_child(child)
    try:
        assert read_report(report_fd) == {"held": False, "took": False}
    finally:
        os.close(report_fd)
        assert reap(pid, go_w) == 0
    other = RecorderLock(tmp_path / "h.recorder")
    assert not other.acquire()  # the child's exit did not release the parent's lock
    lock.release()
    assert other.acquire()
    other.release()


def test_a_preforked_worker_records_once_the_parent_lets_go(tmp_path: Path) -> None:
    """gunicorn --preload: the configured parent records; its forked child has a store of its
    own that does not, and takes over at a tick once the parent shuts down."""
    telemetry = configure(
        service_name="mph-prefork",
        multiprocess_dir=tmp_path / "mp",
        history_enabled=True,
        history_interval=0.1,
        system_metrics=False,
        metrics_exporter="none",
        traces_exporter="none",
        logs_exporter="none",
    )
    parent = telemetry.history
    assert parent is not None
    telemetry.meter_provider.get_meter("t").create_counter("c").add(1)  # a tick needs data
    wait_for(lambda: parent.recording or None, "the parent to record", timeout=TIMEOUT)

    def child(report: int, go: int) -> dict[str, Any]:
        rebuilt = get_telemetry()
        history = rebuilt.history
        assert history is not None
        rebuilt.meter_provider.get_meter("t").create_counter("c").add(1)
        first = {"own_store": history is not parent, "recording": history.recording}
        os.write(report, json.dumps(first).encode() + b"\n")
        deadline = time.monotonic() + 10
        while not history.recording and time.monotonic() < deadline:
            time.sleep(0.02)
        return {"recording": history.recording}

    pid, report_fd, go_w = fork_child(child)
    try:
        assert read_report(report_fd) == {"own_store": True, "recording": False}
        assert parent.recording
        telemetry.shutdown()
        assert read_report(report_fd) == {"recording": True}
    finally:
        os.close(report_fd)
        assert reap(pid, go_w) == 0


def test_the_path_and_the_mode_follow_multiprocess_dir(tmp_path: Path) -> None:
    """``history.sqlite3`` in ``multiprocess_dir`` unless ``history_path`` is set; shared then,
    single-process (as before) without the directory; in memory it cannot be shared."""
    directory = tmp_path / "mp"
    assert default_history_path(directory) == directory / "history.sqlite3"
    store = HistoryStore.from_settings(load_settings(multiprocess_dir=directory))
    try:
        assert store.shared
        assert (directory / "history.sqlite3").is_file()
    finally:
        store.close()
    own = tmp_path / "own.sqlite3"
    store = HistoryStore.from_settings(load_settings(multiprocess_dir=directory, history_path=own))
    try:
        assert store.shared
        assert own.is_file()
    finally:
        store.close()
    store = HistoryStore.from_settings(load_settings(history_path=tmp_path / "single.sqlite3"))
    try:
        assert not store.shared
        assert store.recording
    finally:
        store.close()
    with pytest.raises(ConfigError, match="in-memory"):
        HistoryStore(None, shared=True)
    assert PUBLISH_EVERY == 60.0
