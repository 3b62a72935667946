"""The dashboard in a real headless Chromium: its script loads the API and fills the page."""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from paca_otel.demo import create_app
from tests.peers import free_port, require_binary


@pytest.fixture
def demo_url() -> Iterator[str]:
    """The demo service under uvicorn on 127.0.0.1, in a thread, stopped at the end."""
    port = free_port()
    app = create_app(traffic=True, metrics_exporter="prometheus")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/monitoring/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_dashboard_renders_current_values_in_chromium(demo_url: str) -> None:
    """Chromium runs the page's script: CPU/memory/disk cards and the metrics table fill in."""
    chromium = require_binary("chromium")
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                "--virtual-time-budget=5000", "--dump-dom", f"{demo_url}/monitoring/",
            ],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
    dom = result.stdout
    assert 'data-loaded="true"' in dom, result.stderr[-2000:]
    for card in ("cpu_usage", "memory_usage", "disk_usage"):
        match = re.search(rf'id="{card}">([^<]*)<', dom)
        assert match is not None
        assert re.fullmatch(r"\d+\.\d %", match.group(1)), match.group(1)
    assert "system.memory.usage" in dom
