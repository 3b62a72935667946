"""Alert state on disk: survives a crash, and a broken state file never stops the host app."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from paca_otel import AlertManager, MonitoringManager, configure
from paca_otel._runtime import default_runtime
from paca_otel.errors import PacaOtelError, StorageError
from paca_otel.signals._system_source import StaticSource
from paca_otel.signals._system_stats import MemoryStats
from tests._wait import async_wait_until
from tests.peers import ROOT, free_port
from tests.storage.faults import FAULTS, broken_state_file


class _Hook(BaseHTTPRequestHandler):
    keys: list[tuple[str, str]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.keys.append((self.headers["Idempotency-Key"], body["status"]))  # type: ignore[attr-defined]  # set below
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def receiver_port() -> int:
    """A port nothing listens on yet (the webhook is 'down' until the test starts it)."""
    return free_port()


@pytest.fixture
def start_receiver(receiver_port: int) -> Iterator[list[ThreadingHTTPServer]]:
    servers: list[ThreadingHTTPServer] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def _serve(port: int, servers: list[ThreadingHTTPServer]) -> list[tuple[str, str]]:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Hook)
    server.keys = []  # type: ignore[attr-defined]  # the handler appends here
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
    return server.keys  # type: ignore[attr-defined, no-any-return]  # see above


async def test_alert_fired_before_sigkill_is_delivered_exactly_once_after_restart(
    tmp_path: Path, receiver_port: int, start_receiver: list[ThreadingHTTPServer]
) -> None:
    """SIGKILL between firing and delivery loses nothing and duplicates nothing."""
    state = tmp_path / "alerts.sqlite3"
    url = f"http://127.0.0.1:{receiver_port}/hook"
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("fire_child.py")), str(state), url],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PACA_OTEL_RAISE_INTERNAL": "0"},
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "fired"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()

    keys = _serve(receiver_port, start_receiver)  # the channel comes back
    source = StaticSource()
    source.mem = MemoryStats(total=1000, states={"used": 950, "free": 50})
    configure(
        system_source=source, metrics_exporter="none", state_path=state, webhook_url=url,
        evaluation_interval=3600,
    )  # fmt: skip
    monitor = MonitoringManager()
    await monitor.start_monitoring()
    alerts = AlertManager()
    alerts.add_rule_sync("high_memory_usage", "memory_usage > 90", "webhook", 300)
    # The restored alert is still firing: no new notification, the old one is delivered.
    assert [a.state.value for a in alerts.get_active_alerts()] == ["firing"]
    for _ in range(3):
        await alerts.evaluate()
    outbox = default_runtime().alerting().outbox
    await async_wait_until(
        lambda: keys and not outbox.pending_count(), "the restored row's delivery", timeout=30
    )
    # nothing is left to send: every row is delivered, so no later send can follow
    assert outbox.pending_count() == 0
    assert [e.status for e in outbox.entries()] == ["delivered"]
    assert len(keys) == 1, keys
    assert keys[0][1] == "firing"
    await monitor.stop()


@pytest.mark.parametrize("fault", FAULTS)
async def test_explicit_setup_on_unusable_state_file_names_the_path(
    tmp_path: Path, fault: str
) -> None:
    """Garbage, corrupt or read-only state file: add_rule (both forms) raises a StorageError."""
    with broken_state_file(tmp_path, fault) as path:
        configure(metrics_exporter="none", state_path=path)
        with pytest.raises(StorageError) as info:
            await AlertManager().add_rule("high_memory_usage", "memory_usage > 90", "log", 300)
        assert isinstance(info.value, PacaOtelError)
        assert str(path) in str(info.value)
        with pytest.raises(StorageError, match=path.name):
            AlertManager().add_rule_sync("high_memory_usage", "memory_usage > 90", "log", 300)


@pytest.mark.parametrize("fault", FAULTS)
async def test_running_app_on_unusable_state_file_keeps_serving_with_state_in_memory(
    tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A lifespan starting monitoring on a bad state file warns once and keeps serving."""
    source = StaticSource()
    source.mem = MemoryStats(total=1000, states={"used": 950, "free": 50})
    with broken_state_file(tmp_path, fault) as path:
        monitor = MonitoringManager(
            system_source=source, metrics_exporter="none", state_path=path,
            evaluation_interval=3600,
        )  # fmt: skip

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            await monitor.start_monitoring()
            yield
            await monitor.stop()

        app = FastAPI(lifespan=lifespan)

        @app.get("/ping")
        async def ping() -> dict[str, str]:
            return {"pong": "yes"}

        with caplog.at_level(logging.WARNING, logger="paca_otel"):
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    assert (await http.get("/ping")).json() == {"pong": "yes"}
                alerts = AlertManager()
                await alerts.add_rule("high_memory_usage", "memory_usage > 90", "log", 300)
                await alerts.evaluate()
                await alerts.evaluate()
                assert [a.state.value for a in alerts.get_active_alerts()] == ["firing"]
        warnings = [r for r in caplog.records if str(path) in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
        assert "in memory" in warnings[0].getMessage()


async def test_start_monitoring_opens_the_state_file_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start_monitoring() opens SQLite in a worker thread: a busy file cannot stall the loop."""
    import threading

    from paca_otel import _alerting_runtime as runtime_mod

    loop_thread = threading.current_thread()
    opened_on: list[threading.Thread] = []
    real_open = runtime_mod.open_database

    def spy(*args: Any, **kwargs: Any) -> Any:
        opened_on.append(threading.current_thread())
        return real_open(*args, **kwargs)

    monkeypatch.setattr(runtime_mod, "open_database", spy)
    monitor = MonitoringManager(
        state_path=tmp_path / "state.db", system_metrics=False, prometheus_port=0
    )
    await monitor.start_monitoring()
    try:
        assert opened_on
        assert all(thread is not loop_thread for thread in opened_on)
    finally:
        await monitor.stop()
