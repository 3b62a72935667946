"""``metrics_auth``: the app's ``/metrics`` behind a token, scraped by a real Prometheus.

Prometheus sends the token from ``authorization: {credentials: ...}`` in its scrape config; a
scrape without it is refused (401) and the target shows as down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from paca_otel._setup import configure
from paca_otel.security import generate_token, hash_token
from tests.integration.conftest import PrometheusServer
from tests.peers import free_port

pytestmark = [pytest.mark.peer("prometheus"), pytest.mark.timeout(90)]


def _serve(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def guarded() -> Iterator[tuple[str, str]]:
    """An app whose /metrics needs a viewer token: (host:port, token)."""
    token = generate_token()
    app = FastAPI()
    configure(
        app=app, service_name="paca-metrics-auth", metrics_exporter="prometheus",
        traces_exporter="none", logs=False, metrics_auth=True,
        api_tokens=[f"prometheus:viewer:{hash_token(token)}"],
    )  # fmt: skip
    for target in _serve(app):
        yield target, token


def test_metrics_endpoint_needs_the_token(guarded: tuple[str, str]) -> None:
    """Without a token /metrics is 401; a wrong one 401; the viewer token gets the exposition."""
    target, token = guarded
    assert httpx.get(f"http://{target}/metrics").status_code == 401
    wrong = httpx.get(f"http://{target}/metrics", headers={"Authorization": "Bearer paca_x"})
    assert wrong.status_code == 401
    ok = httpx.get(f"http://{target}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert "target_info" in ok.text or "# TYPE" in ok.text


def test_prometheus_scrapes_with_credentials(
    guarded: tuple[str, str], prometheus_server: Callable[..., PrometheusServer]
) -> None:
    """A real Prometheus with ``authorization: {credentials: ...}`` scrapes the guarded /metrics."""
    target, token = guarded
    extra = f"    authorization:\n      type: Bearer\n      credentials: {token}\n"
    prometheus = prometheus_server(target, job="guarded", scrape_extra=extra)
    series = prometheus.query('up{job="guarded"} == 1')
    assert series
    assert prometheus.query('{job="guarded", __name__=~"process_.*|system_.*|target_info"}')
