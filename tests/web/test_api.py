"""The monitoring API on a FastAPI app: current metrics, rules (422 on bad input), alerts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paca_otel._demo import create_app
from paca_otel.security import generate_token

_TOKEN = generate_token()
_AUTH = {"Authorization": f"Bearer {_TOKEN}"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The demo app (no self-traffic) with its lifespan running."""
    app: FastAPI = create_app(traffic=False, admin_token=_TOKEN, metrics_exporter="prometheus")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=_AUTH
        ) as http:
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
        ({"name": "x", "condition": "cpu_usage > 1", "action": "emial"}, "unknown"),
        ({"name": "x", "condition": "cpu_usage > 1", "no_data": "maybe"}, "no_data"),
        ({"name": "x", "condition": "cpu_usage > 1", "labels": {"bad name": "v"}}, "label"),
        ({"name": "x", "condition": "cpu_usage > 1", "group": "g"}, "group"),
        (
            {"name": "x", "condition": "cpu_usage > 1", "action": "log", "channels": ["log"]},
            "action or",
        ),
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


async def test_current_metrics_have_every_documented_alias(client: httpx.AsyncClient) -> None:
    """/monitoring/metrics carries each alias of the README's table, request ones included."""
    from paca_otel.pipeline._aliases import ALIASES

    await client.get("/api/orders/1")
    snapshot = (await client.get("/monitoring/metrics")).json()
    assert set(ALIASES) <= set(snapshot)
    assert snapshot["request_count"] >= 1
    assert snapshot["error_rate"] == 0.0
    assert snapshot["latency_p95"] > 0


def test_rule_payload_is_derived_from_rule() -> None:
    """The API body lists Rule's fields (labels, no_data...) once, plus the seed's action."""
    from paca_otel import Rule
    from paca_otel.web.api import RulePayload

    fields = set(RulePayload.model_fields)
    assert fields == (set(Rule.model_fields) - {"group", "interval"}) | {"action"}


async def test_posted_rule_keeps_labels_no_data_and_rule_defaults(
    client: httpx.AsyncClient,
) -> None:
    """labels, no_data and for are taken; what is left out takes Rule's defaults (no_data ok)."""
    body = {
        "name": "labelled",
        "condition": "cpu_usage > 99",
        "labels": {"team": "web"},
        "no_data": "keep",
        "for": "1m",
        "action": "send_email",
    }
    response = await client.post("/monitoring/rules", json=body)
    assert response.status_code == 201, response.text
    rule = response.json()
    assert rule["labels"] == {"team": "web"}
    assert (rule["no_data"], rule["for"], rule["channels"]) == ("keep", 60.0, ["email"])
    plain = await client.post(
        "/monitoring/rules", json={"name": "p", "condition": "cpu_usage > 99"}
    )
    assert plain.json()["no_data"] == "ok"
    assert plain.json()["cooldown"] == 300.0


async def test_dashboard_page_is_served(client: httpx.AsyncClient) -> None:
    """The dashboard HTML is served under /monitoring/."""
    page = await client.get("/monitoring/")
    assert page.status_code == 200
    assert "paca-otel" in page.text


_json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
_conditions = st.text(alphabet="cpu_usage{}[]()=~!<>+-*/ 0123456789.\"'mnotadr5", max_size=60)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.fixed_dictionaries(
        {"name": st.text(max_size=20), "condition": _conditions},
        optional={
            "action": st.sampled_from(["log", "send_email", "webhook", ""]) | st.text(max_size=8),
            "cooldown": _json_values,
            "for": _json_values,
            "severity": _json_values,
            "clear": st.none() | _conditions,
            "extra": _json_values,
        },
    )
)
async def test_rule_payload_fuzz_gets_201_or_422(
    client: httpx.AsyncClient, payload: dict[str, object]
) -> None:
    """Any JSON payload to POST /rules is a 201 or a 422 with a message, never a 500."""
    body = json.dumps(payload)  # NaN/Infinity included: Python's json reader accepts them
    response = await client.post(
        "/monitoring/rules", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code in {201, 422}, response.text
    if response.status_code == 422:
        assert response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "x", "condition": "cpu_usage > 1", "extra": Infinity}',
        '{"name": NaN, "condition": "cpu_usage > 1"}',
        '{"name": "x", "condition": "cpu_usage > 1", "cooldown": [-Infinity]}',
    ],
)
async def test_invalid_payload_echoing_nan_is_a_422(client: httpx.AsyncClient, body: str) -> None:
    """A 422 whose error echoes NaN/Infinity still renders (Starlette refuses to encode them)."""
    response = await client.post(
        "/monitoring/rules", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize(
    "query", ["limit=-5", "limit=0", "limit=10000000000000000000000", "limit=x"]
)
async def test_history_limit_query_is_never_a_500(client: httpx.AsyncClient, query: str) -> None:
    """Odd `limit` values are clamped or rejected with 422."""
    response = await client.get(f"/monitoring/alerts/history?{query}")
    assert response.status_code in {200, 422}


@pytest.mark.parametrize("condition", ["(" * 600 + "1" + ")" * 600 + " > 0", "-" * 1500 + "1 > 0"])
async def test_deeply_nested_condition_is_a_422(client: httpx.AsyncClient, condition: str) -> None:
    """A condition nested deeper than the parser allows is a 422, not a RecursionError."""
    response = await client.post("/monitoring/rules", json={"name": "deep", "condition": condition})
    assert response.status_code == 422
