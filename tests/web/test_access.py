"""Access control per composition root: tokens, sessions and audit log of each root apart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from paca_otel.config import load_settings
from paca_otel.errors import StorageError
from paca_otel.security import generate_token, hash_token
from paca_otel.web._access import SESSION_COOKIE, AccessSlot
from paca_otel.web._audit import AuditQuery

V1 = "/monitoring/api/v1"


@dataclass
class _App:
    """One app on an independent root, its admin token and an HTTP client of it."""

    http: httpx.AsyncClient
    token: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def audit_names(self) -> set[str | None]:
        """The token names this app's audit log holds."""
        reply = await self.http.get(f"{V1}/audit", headers=self.auth())
        assert reply.status_code == 200, reply.text
        return {item["token_name"] for item in reply.json()["items"]}


def _entry(name: str) -> tuple[str, str]:
    """A fresh admin token called ``name`` and its ``api_tokens`` entry."""
    token = generate_token()
    return token, f"{name}:admin:{hash_token(token)}"


@asynccontextmanager
async def _independent_app(name: str, token: tuple[str, str]) -> AsyncIterator[_App]:
    """An app configured with ``set_global=False`` and one admin token, in memory."""
    from paca_otel._setup import configure
    from paca_otel.web.api import monitoring_router

    app = FastAPI()
    app.include_router(monitoring_router(), prefix="/monitoring")
    telemetry = configure(
        app=app, service_name=name, metrics_exporter="none", system_metrics=False,
        api_tokens=[token[1]], set_global=False,
    )  # fmt: skip
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield _App(http, token[0])
    finally:
        telemetry.shutdown()


async def test_independent_roots_accept_only_their_own_tokens_and_audit_apart() -> None:
    """Two apps on independent roots: each takes its own token only and audits into its own log."""
    async with (
        _independent_app("first", _entry("first-admin")) as first,
        _independent_app("second", _entry("second-admin")) as second,
    ):
        for _ in range(2):  # interleaved: neither rebuilds the other's access control
            assert (await first.http.get(f"{V1}/alerts", headers=first.auth())).status_code == 200
            assert (await second.http.get(f"{V1}/alerts", headers=second.auth())).status_code == 200
        stranger = await first.http.get(f"{V1}/alerts", headers=first.auth(second.token))
        assert stranger.status_code == 401
        stranger = await second.http.get(f"{V1}/alerts", headers=second.auth(first.token))
        assert stranger.status_code == 401
        assert await first.audit_names() == {"first-admin", None}  # None: the refused request
        assert await second.audit_names() == {"second-admin", None}


async def test_a_session_belongs_to_the_root_that_opened_it() -> None:
    """A dashboard session opened on one root is unknown to another, even with the same tokens."""
    token = _entry("shared-admin")
    async with (
        _independent_app("first", token) as first,
        _independent_app("second", token) as second,
    ):
        signed = await first.http.post(f"{V1}/session", json={"token": token[0]})
        assert signed.status_code == 200
        cookie = {"Cookie": f"{SESSION_COOKIE}={signed.cookies[SESSION_COOKIE]}"}
        await second.http.get(f"{V1}/alerts", headers=second.auth())
        assert (await first.http.get(f"{V1}/alerts", headers=cookie)).status_code == 200
        assert (await second.http.get(f"{V1}/alerts", headers=cookie)).status_code == 401


def test_slot_rebuilds_the_access_control_when_its_settings_change() -> None:
    """Equal settings keep the access control; changed tokens build a new one, the old closed."""
    first_entry, second_entry = _entry("first")[1], _entry("second")[1]
    slot = AccessSlot()
    assert slot.current(load_settings(api_tokens=[first_entry])) is None  # a lookup builds nothing
    first = slot.for_settings(load_settings(api_tokens=[first_entry]))
    assert slot.for_settings(load_settings(api_tokens=[first_entry])) is first
    assert slot.current(load_settings(api_tokens=[first_entry])) is first
    changed = load_settings(api_tokens=[second_entry])
    assert slot.current(changed) is None
    second = slot.for_settings(changed)
    assert second is not first
    assert [t.name for t in second.tokens] == ["second"]
    with pytest.raises(StorageError, match="closed"):
        first.audit.query(AuditQuery())
    slot.close()
    assert slot.current(changed) is None
    with pytest.raises(StorageError, match="closed"):
        second.audit.query(AuditQuery())


def test_closing_the_root_closes_its_access_control() -> None:
    """Runtime.close() closes the root's AccessSlot and its audit log; the next use builds anew."""
    from paca_otel._runtime import Runtime

    settings = load_settings(api_tokens=[_entry("admin")[1]])
    root = Runtime(settings)
    slot = root.component(AccessSlot)
    control = slot.for_settings(settings)
    root.close()
    assert slot.current(settings) is None
    with pytest.raises(StorageError, match="closed"):
        control.audit.query(AuditQuery())
    fresh = root.component(AccessSlot)
    assert fresh is not slot
    assert fresh.for_settings(settings) is not control
    root.close()
