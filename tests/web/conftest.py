"""Shared fixtures of the web tests: the demo app under a real uvicorn, with one token per role."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from paca_otel._demo import create_app
from paca_otel.security import Role, generate_token, hash_token
from tests.peers import free_port


@dataclass
class Served:
    """A running app: its base URL, the app, and a token per role."""

    url: str
    app: FastAPI
    tokens: dict[Role, str]

    def auth(self, role: Role) -> dict[str, str]:
        """The Authorization header of ``role``'s token."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 in a thread until the generator is closed."""
    port = free_port()
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
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def role_tokens() -> tuple[dict[Role, str], list[str]]:
    """A fresh token per role and the matching ``api_tokens`` entries."""
    tokens = {role: generate_token() for role in Role}
    entries = [f"{role.value}-token:{role.value}:{hash_token(t)}" for role, t in tokens.items()]
    return tokens, entries


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """The demo (no self-traffic) with viewer/operator/admin tokens, served by uvicorn.

    Settings can be given with ``@pytest.mark.parametrize("served", [{...}], indirect=True)``;
    metric history, when enabled, goes to a file in ``tmp_path``.
    """
    tokens, entries = role_tokens()
    extra: dict[str, Any] = dict(getattr(request, "param", {}) or {})
    if extra.get("history_enabled"):
        extra.setdefault("history_path", tmp_path / "history.sqlite3")
    app = create_app(traffic=False, metrics_exporter="none", api_tokens=entries, **extra)
    for url in serve(app):
        yield Served(url, app, tokens)
