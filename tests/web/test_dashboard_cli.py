"""``paca-otel demo`` prints a working admin token; ``paca-otel serve`` runs the API on its own."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def run() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes started by a test, terminated (by PID) at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.terminate()
        proc.communicate(timeout=30)


def _start(started: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "paca_otel.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    started.append(proc)
    return proc


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.2)


def test_demo_prints_an_admin_token_that_signs_in(run: list[subprocess.Popen[str]]) -> None:
    """The demo banner holds the URL and a one-run admin token that the API accepts."""
    proc = _start(run, "demo", "--no-traffic", "--port", "0")
    assert proc.stdout is not None
    banner = [proc.stdout.readline() for _ in range(8)]
    base = re.search(r"demo on (http://\S+)", banner[0])
    token = next((m.group(1) for line in banner if (m := re.search(r"(paca_\S{43})", line))), None)
    assert base is not None, banner
    assert token is not None, banner
    _wait(f"{base.group(1)}/monitoring/health")
    api = f"{base.group(1)}/monitoring/api/v1/metrics"
    assert httpx.get(api).status_code == 401
    assert httpx.get(api, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    signed = httpx.post(f"{base.group(1)}/monitoring/api/v1/session", json={"token": token})
    assert signed.json()["role"] == "admin"


def test_serve_runs_the_api_alone_behind_tokens(run: list[subprocess.Popen[str]]) -> None:
    """`paca-otel serve` answers /health publicly and everything else with 401 (no tokens)."""
    proc = _start(run, "serve", "--port", "0")
    assert proc.stdout is not None
    first = proc.stdout.readline()
    found = re.search(r"(http://127\.0\.0\.1:\d+)/monitoring/", first)
    assert found is not None, first
    _wait(f"{found.group(1)}/monitoring/health")
    assert httpx.get(f"{found.group(1)}/monitoring/api/v1/alerts").status_code == 401
    root = httpx.get(f"{found.group(1)}/", follow_redirects=True)
    assert root.status_code == 200
    assert 'id="signin"' in root.text
