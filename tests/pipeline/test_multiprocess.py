"""Multiprocess mode with real worker processes sharing a directory, scraped over HTTP."""

from __future__ import annotations

import os
import signal
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import paca_otel
from paca_otel.pipeline._mpfile import decode
from paca_otel.pipeline._mpred import RELATIVE_ACCURACY
from paca_otel.pipeline._multiprocess import ARCHIVE, MultiprocessMetrics
from paca_otel.pipeline._pipeline import Pipeline
from paca_otel.pipeline._prometheus import CollectionCollector
from paca_otel.pipeline._spans import percentile
from tests._children import Child, children
from tests._wait import wait_for
from tests.peers import free_port

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("multiprocess_child.py")
TIMEOUT = 30.0

Samples = dict[str, list[tuple[dict[str, str], float]]]


class Worker(Child):
    """One child worker: its process, its /metrics port and its stdout lines."""

    def __init__(self, directory: Path, port: int, n: int) -> None:
        argv = [sys.executable, str(CHILD), str(directory), str(port), str(n)]
        super().__init__(argv, {**os.environ, "PYTHONPATH": str(ROOT)})
        self.port = port
        self.n = n

    def scrape(self) -> Samples:
        """GET /metrics and parse it as Prometheus does."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            text = response.read().decode()
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return samples


@pytest.fixture
def start_workers(tmp_path: Path) -> Iterator[Callable[..., list[Worker]]]:
    """Start child workers sharing ``tmp_path/mp``; each is killed by its PID at the end."""
    yield from children(lambda n: Worker(tmp_path / "mp", free_port(), n))


def _one(samples: Samples, name: str, **labels: str) -> float:
    values = [v for found, v in samples.get(name, []) if labels.items() <= found.items()]
    assert len(values) == 1, (name, labels, samples.get(name))
    return values[0]


def _scrape_when(worker: Worker, check: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape ``worker`` until ``check`` holds (peers publish every second)."""

    def attempt() -> Samples | None:
        samples = worker.scrape()
        return samples if check(samples) else None

    return wait_for(attempt, what, timeout=TIMEOUT, interval=0.2)


def _requests(samples: Samples) -> float:
    return sum(v for _, v in samples.get("mp_requests_total", []))


def test_every_workers_scrape_shows_the_whole_service(
    start_workers: Callable[..., list[Worker]],
) -> None:
    """Counters and histograms are summed, host gauges appear once, process gauges per pid."""
    workers = start_workers(10, 20, 30)
    pids = {str(w.pid) for w in workers}
    for worker in workers:
        samples = _scrape_when(worker, lambda s: _requests(s) == 60, "the service's 60 requests")
        assert _one(samples, "mp_duration_seconds_count", route="/work") == 60
        temperatures = {labels["pid"]: v for labels, v in samples["mp_temperature"]}
        assert temperatures == {str(w.pid): w.n for w in workers}
        assert _one(samples, "system_memory_usage_bytes", system_memory_state="used") > 0
        assert {labels["pid"] for labels, _ in samples["process_memory_usage_bytes"]} == pids
        (target,) = samples["target_info"]
        assert "service_instance_id" not in target[0]
        assert target[0]["service_name"] == "mp-test"

    def service_red() -> dict[str, Any] | None:
        figure: dict[str, Any] | None = workers[0].command("red")
        return figure if figure is not None and figure["requests"] == 60 else None

    figure = wait_for(service_red, "RED figures of every worker", timeout=TIMEOUT, interval=0.2)
    assert figure["errors"] == 30
    durations = sorted(ms / 1000 for w in workers for ms in range(1, w.n + 1))
    assert figure["p50"] == pytest.approx(percentile(durations, 0.5), rel=2 * RELATIVE_ACCURACY)


def test_the_service_counter_never_goes_down_whichever_worker_answers(
    start_workers: Callable[..., list[Worker]],
) -> None:
    """Scrapes alternate between workers that keep counting: the sum only ever grows."""
    workers = start_workers(1, 1)
    seen = [_requests(_scrape_when(workers[0], lambda s: _requests(s) == 2, "2 requests"))]
    for step in range(8):  # the worker that just counted answers first, then the other one
        counting, other = workers[step % 2], workers[1 - step % 2]
        assert counting.command("add 3") == "added"
        seen += [_requests(counting.scrape()), _requests(other.scrape())]
    assert seen == sorted(seen), seen
    assert _requests(_scrape_when(workers[1], lambda s: _requests(s) == 26, "26")) == 26


def test_dead_workers_counts_stay_their_gauges_go_and_files_are_compacted(
    start_workers: Callable[..., list[Worker]], tmp_path: Path
) -> None:
    """SIGKILL and a clean exit keep the service's counters; corrupt files are skipped."""
    first, killed, leaving = start_workers(10, 20, 30)
    _scrape_when(first, lambda s: _requests(s) == 60, "the service's 60 requests")
    os.kill(killed.pid, signal.SIGKILL)
    killed.process.wait(timeout=TIMEOUT)
    assert leaving.command("exit") == "bye"
    leaving.process.wait(timeout=TIMEOUT)
    directory = tmp_path / "mp"
    closed = [decode(p.read_bytes()).header for p in directory.glob(f"w-{leaving.pid}-*")]
    assert [h.closed for h in closed] == [True]

    (directory / "w-999-garbage.pamp").write_bytes(b"\x00not a metrics file")
    torn = next(directory.glob(f"w-{killed.pid}-*")).read_bytes()
    (directory / "w-998-torn.pamp").write_bytes(torn[: len(torn) // 2])

    def only_first_alive(samples: Samples) -> bool:
        pids = {labels["pid"] for labels, _ in samples.get("mp_temperature", [])}
        dropped = samples.get("paca_otel_dropped_total", [])
        corrupt = [v for labels, v in dropped if labels["reason"] == "multiprocess_corrupt_file"]
        return pids == {str(first.pid)} and corrupt == [2.0]

    samples = _scrape_when(first, only_first_alive, "the dead workers' gauges to go")
    assert _requests(samples) == 60
    assert _one(samples, "mp_duration_seconds_count", route="/work") == 60

    pipeline = Pipeline()
    provider = MeterProvider(metric_readers=[pipeline.reader])
    shared = MultiprocessMetrics(pipeline, directory, interval=0.2, compact_at=2)
    try:
        shared.start()
        folded = wait_for(lambda: shared.compact() or None, "a compaction", timeout=TIMEOUT)
        assert folded == 2
        left = {p.name.split("-")[1] for p in directory.glob("w-*")}
        assert left == {str(first.pid), str(os.getpid()), "999", "998"}
        assert (directory / ARCHIVE).exists()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(CollectionCollector(pipeline.reader.collect_service))
        text = generate_latest(registry).decode()
        assert 'mp_requests_total{otel_scope_name="mp.test"' in text
        ours = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
        assert ours["mp_requests_total"] == 60
        pipeline.collect(now=1000.0)  # what the rule engine reads: the service's numbers too
        assert pipeline.store.latest("mp.requests", at=1000.0) == [((("route", "/work"),), 60.0)]
        assert [v for _, v in pipeline.store.latest("mp.duration.count", at=1000.0)] == [60.0]
    finally:
        shared.close()
        provider.shutdown()
    samples = _scrape_when(first, lambda s: _requests(s) == 60, "the sum read from the archive")
    assert {labels["pid"] for labels, _ in samples["mp_temperature"]} == {str(first.pid)}


def test_without_a_directory_the_service_view_is_the_local_collection(tmp_path: Path) -> None:
    """No multiprocess_dir: no file, no thread, collect_service is collect_now."""
    telemetry = paca_otel.configure(service_name="solo", metrics_exporter="none",
                                    traces_exporter="none", logs_exporter="none")  # fmt: skip
    first = telemetry.collection.collect_now()
    assert telemetry.collection.collect_service(max_age=60) is first
    assert not any(t.name == "paca-otel-multiprocess" for t in threading.enumerate())


def test_an_unusable_directory_warns_once_and_leaves_the_worker_on_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file where the directory should be: one warning; the app and its /metrics still run."""
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    telemetry = paca_otel.configure(service_name="solo", multiprocess_dir=taken,
                                    metrics_exporter="none", traces_exporter="none",
                                    logs_exporter="none")  # fmt: skip
    assert "multiprocess_dir" in caplog.text
    assert "show this worker only" in caplog.text
    assert telemetry.collection.collect_service() is not None
    assert taken.read_text() == "not a directory"
