"""Finding and requiring real peers (Prometheus, Alertmanager, rotel, Chromium, SMTP).

A test that needs a peer skips on a laptop without it, but fails in CI, where ``.ci/run`` sets
``PACA_OTEL_REQUIRE_PEERS=1``: nothing is silently skipped there.
"""

from __future__ import annotations

import os
import shutil
import socket
import sysconfig
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEER_BIN = ROOT / ".peers" / "bin"


def peers_required() -> bool:
    """Whether a missing peer is a failure (CI) rather than a skip (a laptop)."""
    return os.environ.get("PACA_OTEL_REQUIRE_PEERS", "") not in ("", "0", "false")


def missing_peer(name: str, reason: str) -> NoReturn:
    """Skip the test, or fail it when peers are required."""
    msg = f"peer {name!r} unavailable: {reason}"
    if peers_required():
        pytest.fail(msg + " (PACA_OTEL_REQUIRE_PEERS=1)")
    pytest.skip(msg)


def find_binary(name: str) -> str | None:
    """Look for a peer binary in ``.peers/bin`` (made by ``scripts/install-peers``), then PATH."""
    local = PEER_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    if name == "rotel-agent":
        agent = Path(sysconfig.get_paths()["purelib"]) / "rotel" / "rotel-agent"
        if agent.is_file():
            return str(agent)
    return shutil.which(name)


def require_binary(name: str) -> str:
    """Return the binary's path or skip/fail the test."""
    path = find_binary(name)
    if path is None:
        missing_peer(name, f"binary {name!r} not found in {PEER_BIN} or PATH")
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (small race window, accepted in tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
