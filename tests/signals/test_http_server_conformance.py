"""Conformance: instrument_fastapi records what contrib's FastAPIInstrumentor records (stable HTTP).

Both sides run in a child process (``conformance_child.py``) on the same app and requests;
contrib with ``OTEL_SEMCONV_STABILITY_OPT_IN=http`` and its receive/send spans excluded.

Deliberate differences, kept out of these requests and covered in test_http_server.py:
mounted apps (we report the full template, ``/sub/x/{y}``; contrib the mount path ``/sub``),
``server.address`` behind a non-80 port (contrib glues the port on: ``host:8000``), the
semconv's sensitive query parameters (we redact their values in ``url.query``), and
contrib's extra body-size histograms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Contrib also records request/response body sizes; the issue asks for the duration and the
# active-requests instruments only.
OURS = ("http.server.request.duration", "http.server.active_requests")


def run_child(mode: str) -> dict[str, Any]:
    env = {**os.environ, "OTEL_SEMCONV_STABILITY_OPT_IN": "http", "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_CURRENT_TEST", None)
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "tests.signals.conformance_child", mode],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


@pytest.fixture(scope="module")
def both() -> tuple[dict[str, Any], dict[str, Any]]:
    """(contrib, ours) for the same requests."""
    return run_child("contrib"), run_child("paca")


def test_spans_match_contrib(both: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Same span names, kinds, statuses, events and attributes (keys and values) per request."""
    contrib, ours = both
    assert len(ours["spans"]) == len(contrib["spans"]) == 7
    for theirs, mine in zip(contrib["spans"], ours["spans"], strict=True):
        assert mine == theirs


def test_metrics_match_contrib(both: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Same instrument names, units and attribute sets for duration and active requests."""
    contrib, ours = both
    assert set(ours["metrics"]) == set(OURS)
    for name in OURS:

        def key(point: dict[str, Any]) -> str:
            return json.dumps(point, sort_keys=True)

        assert sorted(map(key, ours["metrics"][name])) == sorted(map(key, contrib["metrics"][name]))
