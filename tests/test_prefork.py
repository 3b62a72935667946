"""A handle configured before os.fork() (gunicorn --preload) works in the child: real forks."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from paca_otel import AlertManager, configure, get_telemetry
from paca_otel._runtime import default_runtime
from tests._fork import fork_child, read_report, reap, wait_go
from tests._wait import wait_for


class Peer:
    """OTLP/HTTP and webhook receiver on 127.0.0.1: records each POST's path and raw body."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with peer.lock:
                    peer.posts.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def bodies(self, path: str) -> list[bytes]:
        with self.lock:
            return [body for p, body in self.posts if p == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def peer() -> Iterator[Peer]:
    receiver = Peer()
    yield receiver
    receiver.stop()


def _resources(path: str, bodies: list[bytes]) -> list[dict[str, Any]]:
    """The resource attributes of every OTLP request posted to ``path``."""
    found = []
    for body in bodies:
        request: Any = (
            ExportTraceServiceRequest() if path == "/v1/traces" else ExportMetricsServiceRequest()
        )
        request.ParseFromString(body)
        batches = request.resource_spans if path == "/v1/traces" else request.resource_metrics
        for batch in batches:
            attrs = {a.key: a.value for a in batch.resource.attributes}
            found.append(
                {
                    "pid": attrs["process.pid"].int_value,
                    "instance": attrs["service.instance.id"].string_value,
                    "body": body,
                }
            )
    return found


def _serve(app: FastAPI, path: str) -> httpx.Response:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get(path)

    return asyncio.run(get())


def test_forked_child_exports_under_its_own_identity(peer: Peer) -> None:
    """Spans, metrics, /metrics and threads work in the child, under the child's pid and id."""
    app = FastAPI()

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    telemetry = configure(
        service_name="prefork",
        app=app,
        traces_exporter="otlp",
        metrics_exporter="otlp,prometheus",
        otlp_protocol="http/protobuf",
        otlp_endpoint=peer.url,
        system_metrics=False,
    )
    parent_pid = os.getpid()
    parent_instance = telemetry.resource.attributes["service.instance.id"]
    parent_provider = telemetry.tracer_provider

    def child(report_fd: int, go_fd: int) -> dict[str, Any]:
        handle = get_telemetry()
        assert handle is telemetry, "the same handle object, rebuilt in place"
        response = _serve(app, "/hello")
        with trace.get_tracer("prefork").start_as_current_span("child-span"):
            metrics.get_meter("prefork").create_counter("child_marker").add(1)
        scrape = _serve(app, "/metrics").text
        flushed = handle.force_flush(5_000)
        names = sorted(t.name for t in threading.enumerate())
        return {
            "pid": os.getpid(),
            "status": response.status_code,
            "flushed": flushed,
            "new_provider": handle.tracer_provider is not parent_provider,
            "instance": handle.resource.attributes["service.instance.id"],
            "resource_pid": handle.resource.attributes["process.pid"],
            "threads": names,
            "scrape_has_marker": "child_marker_total" in scrape,
            "scrape_has_request": 'http_route="/hello"' in scrape,
            "scrape_pid": f'process_pid="{os.getpid()}"' in scrape,
        }

    pid, report_fd, go_w = fork_child(child)
    try:
        report = read_report(report_fd)
    finally:
        code = reap(pid, go_w)
        os.close(report_fd)
    assert code == 0
    assert report["pid"] == pid
    assert report["status"] == 200
    assert report["flushed"] is True
    assert report["new_provider"] is True
    assert report["resource_pid"] == pid
    assert report["instance"] != parent_instance
    assert {"paca-otel-red-drain", "paca-otel-metric-export"} <= set(report["threads"])
    assert any(name.startswith("OtelBatchSpan") for name in report["threads"])
    assert report["scrape_has_marker"]
    assert report["scrape_has_request"]
    assert report["scrape_pid"]

    spans = wait_for(
        lambda: (
            [r for r in _resources("/v1/traces", peer.bodies("/v1/traces")) if r["pid"] == pid]
            or None
        ),
        "the child's spans at the OTLP receiver",
    )
    assert {s["instance"] for s in spans} == {report["instance"]}
    assert any(b"child-span" in s["body"] for s in spans)
    child_metrics = [
        r for r in _resources("/v1/metrics", peer.bodies("/v1/metrics")) if r["pid"] == pid
    ]
    assert child_metrics, "the child's metric export reached the receiver"
    assert all(b"child_marker" in m["body"] for m in child_metrics)
    # The parent's own handle is untouched by the child's rebuild.
    assert telemetry.resource.attributes["process.pid"] == parent_pid
    assert telemetry.tracer_provider is parent_provider


def test_forked_child_restarts_alerting(peer: Peer, tmp_path: Any) -> None:
    """A rule added before the fork is evaluated and delivered by the child's own runtime.

    Alert state is in memory, so each process evaluates for itself: with a state file the
    parent, still alive and renewing its lease, would stay the one elected evaluator.
    """
    telemetry = configure(
        service_name="prefork",
        evaluation_interval=1,
        webhook_url=f"{peer.url}/hook",
        system_metrics=False,
        metrics_exporter="none",
    )
    AlertManager().add_rule_sync("child_marker_seen", "child_marker > 0", "webhook", 60)
    parent_runtime = telemetry.runtime.attach(telemetry)

    def child(report_fd: int, go_fd: int) -> dict[str, Any]:
        metrics.get_meter("prefork").create_counter("child_marker").add(1)
        runtime = default_runtime().alerting()
        deadline = time.monotonic() + 10
        while not runtime.engine.history(10) and time.monotonic() < deadline:
            time.sleep(0.05)
        report = {
            "new_runtime": runtime is not parent_runtime,
            "rules": sorted(runtime.engine.rules),
            "fired": [e.rule for e in runtime.engine.history(10)],
            "threads": sorted(t.name for t in threading.enumerate()),
        }
        os.write(report_fd, json.dumps(report).encode() + b"\n")
        wait_go(go_fd)  # keep the dispatcher alive until the parent saw the webhook
        return {}

    pid, report_fd, go_w = fork_child(child)
    try:
        report = read_report(report_fd)
        hooks = wait_for(lambda: peer.bodies("/hook") or None, "the child's webhook")
    finally:
        reap(pid, go_w)
        os.close(report_fd)
    assert report["new_runtime"] is True
    assert report["rules"] == ["child_marker_seen"]
    assert report["fired"] == ["child_marker_seen"]
    assert "paca-otel-rules" in report["threads"]
    assert len(hooks) == 1
    assert json.loads(hooks[0])["alerts"][0]["labels"]["alertname"] == "child_marker_seen"


def test_independent_handle_is_rebuilt_and_a_shut_down_one_is_not() -> None:
    """A set_global=False handle gets its own rebuild; one shut down before the fork stays down."""
    gone = configure(service_name="gone", system_metrics=False, set_global=False)
    gone.shutdown()
    mine = configure(service_name="mine", system_metrics=False, set_global=False)
    parent_provider = mine.meter_provider

    def child(report_fd: int, go_fd: int) -> dict[str, Any]:
        mine.meter_provider.get_meter("t").create_counter("independent").add(2)
        data = mine.collection.collect_now()
        assert data is not None
        names = [
            m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        ]
        return {
            "pid": os.getpid(),
            "resource_pid": mine.resource.attributes["process.pid"],
            "new_provider": mine.meter_provider is not parent_provider,
            "global": get_telemetry() is not None,
            "gone_shut_down": gone.is_shutdown,
            "recorded": "independent" in names,
        }

    pid, report_fd, go_w = fork_child(child)
    try:
        report = read_report(report_fd)
    finally:
        reap(pid, go_w)
        os.close(report_fd)
    assert report == {
        "pid": pid,
        "resource_pid": pid,
        "new_provider": True,
        "global": False,
        "gone_shut_down": True,
        "recorded": True,
    }
    mine.shutdown()
