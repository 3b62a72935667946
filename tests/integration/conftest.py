"""Fixtures that run real peers for integration tests: Prometheus and the rotel OTLP collector.

Users point real Prometheus servers and OTLP collectors at paca-otel, so these tests do too.
Every peer binds 127.0.0.1 on a free port, runs as a subprocess stopped by its PID (terminate,
then kill after a bound), and writes its output to a file under ``tmp_path``; when a test fails
those logs are attached to its report, so a CI failure shows what the peer said. Waits are
bounded polls, never sleeps on hope. A missing binary skips on a laptop and fails in CI
(``tests.peers.require_binary``).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from paca_otel import testing
from tests.integration.otlp_receiver import OtlpReceiver
from tests.peers import free_port, require_binary

#: Logs of the peers a test started, attached to the report when the test fails.
PEER_LOGS = pytest.StashKey[list[tuple[str, Path]]]()

STOP_GRACE_S = 5.0
READY_TIMEOUT_S = 15.0
#: Prometheus needs 3-6 s from start to the first scrape with a 1 s interval; 20 s is the bound.
QUERY_TIMEOUT_S = 20.0


# -- failure reporting ---------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach every peer's log to the report of a failed setup, call or teardown."""
    report = yield
    if report.failed:
        for name, path in item.stash.get(PEER_LOGS, []):
            text = path.read_text(errors="replace") if path.exists() else "(no log written)"
            report.sections.append((f"peer log: {name} ({path})", text[-20_000:]))
    return report


def register_log(request: pytest.FixtureRequest, name: str, path: Path) -> None:
    """Remember ``path`` as ``name``'s log so it is printed if the test fails."""
    request.node.stash.setdefault(PEER_LOGS, []).append((name, path))


# -- processes -----------------------------------------------------------------------------


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds pass; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class PeerProcess:
    """A peer subprocess whose output goes to ``log_path``; stopped by its PID."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> PeerProcess:
        """Launch the process with stdout and stderr in the log file."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # reason: argv built from a found binary, no shell
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return self

    @property
    def pid(self) -> int:
        """The peer's process id."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def log(self) -> str:
        """Everything the peer wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, check: Callable[[], bool], timeout: float = READY_TIMEOUT_S) -> None:
        """Wait (bounded) until ``check`` holds; fail with the log if it dies or never does."""
        ready = wait_until(lambda: not self.alive() or check(), timeout)
        if not self.alive():
            pytest.fail(
                f"{self.name} exited with {self.process.returncode} while starting:\n"
                f"{self.log()[-4000:]}"
            )
        if not ready:
            pytest.fail(f"{self.name} not ready after {timeout} s:\n{self.log()[-4000:]}")

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Terminate by PID; kill if it has not exited after ``grace`` seconds."""
        if not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(grace)


# -- Prometheus ----------------------------------------------------------------------------

PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: {job}
    static_configs:
      - targets: ["{target}"]
{extra}"""


@dataclass
class PrometheusServer:
    """A running Prometheus scraping one target, with a bounded PromQL query helper."""

    url: str
    target: str
    job: str
    peer: PeerProcess

    def query_once(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query now; return the result vector (possibly empty)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0)
        body: dict[str, Any] = response.json()
        if body.get("status") != "success":
            msg = f"PromQL {promql!r} failed: {body}"
            raise AssertionError(msg)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def query(self, promql: str, timeout: float = QUERY_TIMEOUT_S) -> list[dict[str, Any]]:
        """Poll an instant query until it returns series; fail after ``timeout`` seconds.

        Polling because the first scrape lands seconds after start; the failure message carries
        the scrape target's health so "no data" and "scrape failing" read differently.
        """
        result: list[dict[str, Any]] = []

        def has_series() -> bool:
            nonlocal result
            result = self.query_once(promql)
            return bool(result)

        if not wait_until(has_series, timeout, interval=0.25):
            msg = f"PromQL {promql!r}: no series within {timeout} s; targets: {self.targets()}"
            raise AssertionError(msg)
        return result

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets with health, last error and last scrape (for diagnostics)."""
        body = httpx.get(f"{self.url}/api/v1/targets", timeout=5.0).json()
        return [
            {key: target.get(key) for key in ("scrapeUrl", "health", "lastError", "lastScrape")}
            for target in body["data"]["activeTargets"]
        ]


@pytest.fixture
def prometheus_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], PrometheusServer]]:
    """Factory: ``prometheus_server("127.0.0.1:PORT")`` starts Prometheus scraping that target.

    A factory because the target's port is only known inside the test (after ``configure``);
    every server started is stopped at teardown.
    """
    binary = require_binary("prometheus")
    started: list[PeerProcess] = []

    def start(target: str, job: str = "paca", scrape_extra: str = "") -> PrometheusServer:
        index = len(started)
        workdir = tmp_path / f"prometheus-{index}"
        workdir.mkdir()
        config = workdir / "prometheus.yml"
        config.write_text(PROMETHEUS_CONFIG.format(job=job, target=target, extra=scrape_extra))
        port = free_port()
        log_path = workdir / "prometheus.log"
        register_log(request, f"prometheus-{index}", log_path)
        peer = PeerProcess(
            "prometheus",
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=info",
            ],
            log_path,
        ).start()
        started.append(peer)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        peer.wait_ready(ready)
        return PrometheusServer(url=url, target=target, job=job, peer=peer)

    yield start
    for peer in started:
        peer.stop()


# -- OTLP collector (rotel) and its downstream receiver -----------------------------------


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """An in-memory OTLP/gRPC receiver on 127.0.0.1 (what the collector forwards to)."""
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@dataclass
class RotelCollector:
    """A running rotel agent forwarding everything it receives to ``receiver``."""

    grpc_endpoint: str
    http_endpoint: str
    receiver: OtlpReceiver
    peer: PeerProcess

    def endpoint(self, protocol: str) -> str:
        """The endpoint an exporter using ``protocol`` ("grpc" or "http/protobuf") targets."""
        return self.grpc_endpoint if protocol == "grpc" else self.http_endpoint


@pytest.fixture
def rotel_collector(
    request: pytest.FixtureRequest, tmp_path: Path, otlp_receiver: OtlpReceiver
) -> Iterator[RotelCollector]:
    """rotel listening for OTLP gRPC and HTTP on 127.0.0.1, exporting OTLP/gRPC to the receiver."""
    binary = require_binary("rotel-agent")
    workdir = tmp_path / "rotel"
    workdir.mkdir()
    grpc_port, http_port = free_port(), free_port()
    log_path = workdir / "rotel.out"
    register_log(request, "rotel", log_path)
    peer = PeerProcess(
        "rotel",
        [
            binary,
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http_port}",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            f"http://{otlp_receiver.endpoint}",
            "--otlp-exporter-protocol",
            "grpc",
            # Short batches so a flushed signal leaves the collector within a fraction of a second.
            "--batch-timeout",
            "100ms",
            # Own pid/log files: the defaults in /tmp would collide between parallel runs.
            "--pid-file",
            str(workdir / "rotel.pid"),
            "--log-file",
            str(workdir / "rotel.log"),
        ],
        log_path,
    ).start()
    peer.wait_ready(lambda: port_open(grpc_port) and port_open(http_port))
    yield RotelCollector(
        grpc_endpoint=f"http://127.0.0.1:{grpc_port}",
        http_endpoint=f"http://127.0.0.1:{http_port}",
        receiver=otlp_receiver,
        peer=peer,
    )
    # Shut paca-otel down while its collector is still up, as a deployment would: otherwise
    # the final export on shutdown waits out its timeout against a dead port (2 s per test).
    testing.reset()
    peer.stop()
