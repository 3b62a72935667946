"""The monitoring API on a FastAPI app: current metrics, rules (422 on bad input), alerts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from paca_otel.demo import create_app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The demo app (no self-traffic) with its lifespan running."""
    app: FastAPI = create_app(traffic=False, metrics_exporter="prometheus")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_current_metrics_and_prometheus_exposition(client: httpx.AsyncClient) -> None:
    """/monitoring/metrics gives the typed snapshot; /metrics the exposition text."""
    await client.get("/api/orders/1")
    snapshot = (await client.get("/monitoring/metrics")).json()
    assert 0 <= snapshot["cpu_usage"] <= 100
    names = {p["name"] for p in snapshot["metrics"]}
    assert {"system.memory.usage", "demo.orders.viewed"} <= names
    scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert "demo_orders_viewed_total" in scrape.text
    assert "http_server_duration" in scrape.text or "http_server_request_duration" in scrape.text


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"name": "x", "condition": "cpu_usage >"}, "column"),
        ({"name": "x", "condition": "cpu_usage > 1", "action": "send_email"}, "smtp_host"),
        ({"name": "", "condition": "cpu_usage > 1"}, "name"),
        ({"name": "x", "condition": "cpu_usage > 1", "cooldown": "soon"}, "cooldown"),
        ({"name": "x", "condition": "__import__('os')"}, "column"),
        ({"condition": "cpu_usage > 1"}, "name"),
        ({"name": "x", "condition": 'x{user=~"(?=a)"} > 0'}, "RE2 syntax"),
    ],
)
async def test_bad_rule_payloads_get_422(
    client: httpx.AsyncClient, payload: dict[str, object], fragment: str
) -> None:
    """Invalid rules are 422 with a precise message, never 500."""
    response = await client.post("/monitoring/rules", json=payload)
    assert response.status_code == 422, response.text
    assert fragment in response.text


async def test_rules_and_alerts_round_trip(client: httpx.AsyncClient) -> None:
    """A rule added through the API is listed, evaluated, and its alert shown."""
    response = await client.post(
        "/monitoring/rules", json={"name": "always", "condition": "cpu_usage >= 0"}
    )
    assert response.status_code == 201, response.text
    assert "always" in {r["name"] for r in (await client.get("/monitoring/rules")).json()}
    from paca_otel import AlertManager

    await AlertManager().evaluate()
    alerts = [a for a in (await client.get("/monitoring/alerts")).json() if a["rule"] == "always"]
    assert len(alerts) == 1
    assert alerts[0]["state"] == "firing"
    history = (await client.get("/monitoring/alerts/history")).json()
    assert history[0]["state"] == "firing"


async def test_dashboard_page_is_served(client: httpx.AsyncClient) -> None:
    """The dashboard HTML is served under /monitoring/."""
    page = await client.get("/monitoring/")
    assert page.status_code == 200
    assert "paca-otel" in page.text
