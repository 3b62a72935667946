"""The versioned monitoring API (``/monitoring/api/v1``) against a real uvicorn."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest

from paca_otel.security import Role
from tests.web.conftest import Served

V1 = "/monitoring/api/v1"


@pytest.fixture
def client(served: Served) -> httpx.Client:
    """An admin client of the served demo."""
    with httpx.Client(base_url=served.url, headers=served.auth(Role.ADMIN), timeout=10) as http:
        yield http


def _until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]  # a callable
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_metrics_snapshot_has_aliases_with_units(client: httpx.Client) -> None:
    """GET /metrics: every alias with its unit and meaning, and the metric points."""
    reply = client.get(f"{V1}/metrics").json()
    aliases = {a["name"]: a for a in reply["aliases"]}
    assert aliases["cpu_usage"]["unit"] == "%"
    assert aliases["latency_p95"]["unit"] == "s"
    assert 0 <= aliases["cpu_usage"]["value"] <= 100
    assert any(p["name"] == "system.memory.usage" for p in reply["metrics"])


def test_series_window_matchers_and_step(client: httpx.Client) -> None:
    """Series come from the store by window and matchers; a bad matcher is a clear 422."""
    _until(lambda: client.get(f"{V1}/metrics/cpu_usage/series?window=60").json()["series"])
    reply = client.get(f"{V1}/metrics/cpu_usage/series", params={"window": 60, "step": 5}).json()
    assert reply["unit"] == "%"
    assert reply["series"][0]["points"]
    assert "cpu_usage" in client.get(f"{V1}/metrics/names").json()["names"]
    matched = client.get(
        f"{V1}/metrics/request_rate/series", params={"match": 'route="/nowhere"'}
    ).json()
    assert matched["series"] == []
    bad = client.get(f"{V1}/metrics/cpu_usage/series", params={"match": "route~bad" * 50})
    assert bad.status_code == 422
    assert "must look like" in bad.text
    assert len(bad.text) < 600
    bad_regex = client.get(f"{V1}/metrics/x/series", params={"match": 'a=~"(?=x)"'})
    assert bad_regex.status_code == 422


def test_rule_create_conflict_update_delete(client: httpx.Client) -> None:
    """POST creates (409 on an existing name), PUT replaces (404 if missing), DELETE removes."""
    rule = {"name": "api_rule", "condition": "cpu_usage > 101", "for": "1m"}
    assert client.post(f"{V1}/rules", json=rule).status_code == 201
    again = client.post(f"{V1}/rules", json=rule | {"condition": "memory_usage > 1000"})
    assert again.status_code == 409
    assert client.get(f"{V1}/rules/api_rule").json()["condition"] == "cpu_usage > 101"
    changed = client.put(f"{V1}/rules/api_rule", json=rule | {"condition": "cpu_usage > 99"})
    assert changed.status_code == 200
    assert changed.json()["for"] == 60.0
    assert client.put(f"{V1}/rules/absent", json=rule | {"name": "absent"}).status_code == 404
    assert client.put(f"{V1}/rules/api_rule", json=rule | {"name": "other"}).status_code == 422
    assert client.delete(f"{V1}/rules/api_rule").status_code == 204
    assert client.get(f"{V1}/rules/api_rule").status_code == 404
    assert client.delete(f"{V1}/rules/api_rule").status_code == 404


def test_invalid_rule_is_a_422_with_the_parser_message(client: httpx.Client) -> None:
    """A condition that does not parse is a 422 carrying the parser's column message."""
    reply = client.post(f"{V1}/rules", json={"name": "bad", "condition": "cpu_usage >"})
    assert reply.status_code == 422
    assert "column" in reply.json()["detail"][0]["msg"]


def test_body_past_the_limit_is_a_413_and_never_echoed(served: Served) -> None:
    """A body past body_limit is a 413 (declared length or chunked) and the reply stays small."""
    big = json.dumps({"name": "x" * 100_000, "condition": "cpu_usage > 1"})
    with httpx.Client(base_url=served.url, headers=served.auth(Role.ADMIN)) as http:
        declared = http.post(
            f"{V1}/rules", content=big, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
        assert len(declared.content) < 300

        def chunks() -> object:
            for start in range(0, len(big), 8192):
                yield big[start : start + 8192].encode()

        chunked = http.post(
            f"{V1}/rules", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413


def test_large_invalid_input_is_not_echoed_in_the_422(client: httpx.Client) -> None:
    """A 422 about a 50 KB value names the field but does not repeat the value."""
    reply = client.post(
        f"{V1}/rules", json={"name": "n", "condition": "1 > 0", "labels": "y" * 50_000}
    )
    assert reply.status_code == 422
    assert len(reply.content) < 2_000


def test_alert_history_is_paged(client: httpx.Client) -> None:
    """History pages carry limit, offset and has_more."""
    client.post(f"{V1}/rules", json={"name": "always", "condition": "cpu_usage >= 0"})
    _until(lambda: client.get(f"{V1}/alerts/history").json()["items"])
    page = client.get(f"{V1}/alerts/history", params={"limit": 1}).json()
    assert page["limit"] == 1
    assert page["items"][0]["rule"] == "always"
    assert any(a["rule"] == "always" for a in client.get(f"{V1}/alerts").json())


def test_silences_create_list_expire(served: Served) -> None:
    """Operators create (recorded as theirs) and expire silences; viewers may not; 404 for none."""
    body = {"matchers": [{"name": "alertname", "value": "always"}], "duration": 60}
    with httpx.Client(base_url=served.url) as http:
        viewer = http.post(f"{V1}/silences", json=body, headers=served.auth(Role.VIEWER))
        assert viewer.status_code == 403
        made = http.post(f"{V1}/silences", json=body, headers=served.auth(Role.OPERATOR))
        assert made.status_code == 201
        silence_id = made.json()["id"]
        listed = http.get(f"{V1}/silences", headers=served.auth(Role.VIEWER)).json()
        assert any(s["id"] == silence_id and s["active"] for s in listed)
        mine = next(s for s in listed if s["id"] == silence_id)
        assert mine["created_by"]  # the token that made it, never the token itself
        assert "paca_" not in mine["created_by"]
        gone = http.delete(f"{V1}/silences/{silence_id}", headers=served.auth(Role.OPERATOR))
        assert gone.status_code == 204
        listed = http.get(f"{V1}/silences", headers=served.auth(Role.VIEWER)).json()
        assert not next(s for s in listed if s["id"] == silence_id)["active"]
        missing = http.delete(f"{V1}/silences/nope", headers=served.auth(Role.OPERATOR))
        assert missing.status_code == 404


def test_reports_are_empty_without_history(client: httpx.Client) -> None:
    """Without metric history /reports is an empty list and /reports/latest a 404."""
    assert client.get(f"{V1}/reports").json() == {"items": []}
    assert client.get(f"{V1}/reports/latest").status_code == 404


@pytest.mark.parametrize("served", [{"history_enabled": True}], indirect=True)
def test_reports_fill_in_from_history(served: Served) -> None:
    """With history on, the latest report (the last hour) is served with its summary."""
    with httpx.Client(base_url=served.url, headers=served.auth(Role.VIEWER)) as http:
        latest = http.get(f"{V1}/reports/latest")
        assert latest.status_code == 200, latest.text
        report = latest.json()
        assert report["title"] == "Last hour"
        assert report["end"] - report["start"] == pytest.approx(3600, abs=5)
        assert isinstance(report["summary"], list)
        assert http.get(f"{V1}/reports").json()["items"][0]["title"] == "Last hour"


def test_health_is_public_and_reports_each_part(served: Served) -> None:
    """/health needs no token and reports exporters, channels, store and storage."""
    reply = httpx.get(f"{served.url}/monitoring/health").json()
    assert reply["live"] is True
    assert set(reply["components"]) == {"exporters", "channels", "store", "storage"}
    assert httpx.get(f"{served.url}{V1}/health").status_code == 200


def test_failed_authentication_is_rate_limited(served: Served) -> None:
    """Past auth_failure_limit wrong tokens from one address: 429 with Retry-After."""
    statuses = []
    with httpx.Client(base_url=served.url) as http:
        for _ in range(15):
            reply = http.get(f"{V1}/alerts", headers={"Authorization": "Bearer paca_wrong"})
            statuses.append(reply.status_code)
        assert statuses[0] == 401
        assert statuses[-1] == 429
        assert int(reply.headers["retry-after"]) >= 1
        anonymous = http.get(f"{V1}/alerts")
        assert anonymous.status_code == 429


def test_session_cookie_and_csrf(served: Served) -> None:
    """Sign-in sets an HttpOnly SameSite=Strict cookie; a cookie write needs X-CSRF-Token."""
    body = {"matchers": [{"name": "alertname", "value": "x"}], "duration": 60}
    with httpx.Client(base_url=served.url) as http:
        assert http.get(f"{V1}/session").json()["signed_in"] is False
        signed = http.post(f"{V1}/session", json={"token": served.tokens[Role.OPERATOR]})
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        assert served.tokens[Role.OPERATOR] not in cookie
        csrf = signed.json()["csrf_token"]
        assert http.get(f"{V1}/alerts").status_code == 200
        assert http.post(f"{V1}/silences", json=body).status_code == 403
        wrong = http.post(f"{V1}/silences", json=body, headers={"x-csrf-token": "nope"})
        assert wrong.status_code == 403
        ok = http.post(f"{V1}/silences", json=body, headers={"x-csrf-token": csrf})
        assert ok.status_code == 201
        assert http.get(f"{V1}/session").json()["role"] == "operator"
        assert http.delete(f"{V1}/session", headers={"x-csrf-token": csrf}).status_code == 204
        assert http.get(f"{V1}/alerts").status_code == 401
        refused = http.post(f"{V1}/session", json={"token": "paca_" + "z" * 43})
        assert refused.status_code == 401


def test_cors_is_off_by_default(served: Served) -> None:
    """No Access-Control-Allow-Origin on an API reply to a cross-site request."""
    reply = httpx.get(
        f"{served.url}{V1}/alerts",
        headers={"Origin": "https://evil.example"} | served.auth(Role.VIEWER),
    )
    assert reply.status_code == 200
    assert "access-control-allow-origin" not in reply.headers


def test_audit_never_holds_the_token_and_logs_json(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """Audit rows and JSON lines name the token, never contain it."""
    caplog.set_level(logging.INFO, logger="paca_otel.audit")
    with httpx.Client(base_url=served.url, headers=served.auth(Role.ADMIN)) as http:
        http.post(f"{V1}/rules", json={"name": "audited", "condition": "cpu_usage > 200"})
        page = http.get(f"{V1}/audit", params={"action": "createRule"}).json()
    assert page["items"][0]["token_name"] == "admin-token"
    assert page["items"][0]["status"] == 201
    assert page["items"][0]["target"] == "audited"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "paca_otel.audit"]
    assert any(line["action"] == "createRule" and line["role"] == "admin" for line in lines)
    everything = json.dumps(page) + caplog.text
    for token in served.tokens.values():
        assert token not in everything


def test_legacy_routes_need_a_token_too(served: Served) -> None:
    """The first API's unversioned routes are behind the same tokens and roles."""
    assert httpx.get(f"{served.url}/monitoring/metrics").status_code == 401
    viewer = served.auth(Role.VIEWER)
    rule = {"name": "legacy", "condition": "cpu_usage > 1"}
    assert (
        httpx.post(f"{served.url}/monitoring/rules", json=rule, headers=viewer).status_code == 403
    )
    assert httpx.get(f"{served.url}/monitoring/rules", headers=viewer).status_code == 200


def test_event_stream_sends_samples_and_ends_on_disconnect(served: Served) -> None:
    """/events streams a sample with aliases and alerts; closing it frees its slot."""
    from starlette.requests import Request

    from paca_otel.web._deps import get_monitor
    from paca_otel.web._events import LiveFeed

    # the app's own root's feed (a Request over the app is what get_monitor reads)
    feed = get_monitor(Request({"type": "http", "app": served.app})).component(LiveFeed)

    with (
        httpx.Client(base_url=served.url, headers=served.auth(Role.VIEWER), timeout=10) as http,
        http.stream("GET", f"{V1}/events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                sample = json.loads(line[6:])
                # read while the stream is surely open: leaving iter_lines closes the response
                open_streams = feed.streams
                break
        assert "cpu_usage" in sample["aliases"]
        assert isinstance(sample["alerts"], list)
        assert open_streams == 1  # counted by the root that serves the app
    _until(lambda: feed.streams == 0)


def test_openapi_names_every_operation_and_the_security_schemes(served: Served) -> None:
    """Every v1 operation has an operationId and a summary; Bearer and cookie schemes exist."""
    schema = served.app.openapi()
    assert {"HTTPBearer", "APIKeyCookie"} <= set(schema["components"]["securitySchemes"])
    for path, methods in schema["paths"].items():
        if path.startswith(V1):
            for operation in methods.values():
                assert operation["operationId"]
                assert operation["summary"]


def test_api_output_scrubs_secret_labels(client: httpx.Client) -> None:
    """A metric label named api_key, or holding a bearer credential, never reaches a client."""
    from paca_otel.signals._metrics import MetricsCollector

    secret = "sk_live_4242424242424242abcdef"
    MetricsCollector().set_gauge(
        "paca_test.leaky", 1.0, {"api_key": secret, "note": f"Bearer {secret}"}
    )
    reply = client.get(f"{V1}/metrics")
    assert any(p["name"] == "paca_test.leaky" for p in reply.json()["metrics"])
    assert secret not in reply.text


def test_audit_store_keeps_retention_and_a_row_cap() -> None:
    """Rows older than the retention or past max_rows go; a secret in a target is scrubbed."""
    from paca_otel.security import AuditRecord
    from paca_otel.web._audit import AuditLog, AuditQuery

    log = AuditLog(None, retention=3600, max_rows=3, prune_every=0)
    try:
        log.record(AuditRecord("old", "", "ok", "127.0.0.1", time=time.time() - 7200))
        for i in range(5):
            log.record(AuditRecord("createRule", f"rule{i}", "ok", "127.0.0.1", "admin-token"))
        log.record(AuditRecord("createRule", "password=hunter2hunter2", "ok", "127.0.0.1"))
        rows, total = log.query(AuditQuery(limit=10))
    finally:
        log.close()
    assert total == 3
    assert [r["action"] for r in rows] == ["createRule"] * 3
    assert "hunter2hunter2" not in json.dumps(rows)


async def test_readiness_probe_is_a_503_until_ready() -> None:
    """?ready=true answers 503 while nothing is configured; plain /health stays 200 (live)."""
    from fastapi import FastAPI

    from paca_otel.web.api import monitoring_router

    app = FastAPI()
    app.include_router(monitoring_router(), prefix="/monitoring")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/monitoring/health")).status_code == 200
        assert (await http.get("/monitoring/health?ready=true")).status_code == 503


async def test_serve_app_turns_cors_on_only_for_listed_origins() -> None:
    """create_monitoring_app(cors_origins=...) answers a preflight from a listed origin only."""
    from paca_otel.web._app import create_monitoring_app

    app = create_monitoring_app(cors_origins="https://ops.example", metrics_exporter="none")
    preflight = {"Access-Control-Request-Method": "GET"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            allowed = await http.options(
                f"{V1}/alerts", headers={"Origin": "https://ops.example"} | preflight
            )
            other = await http.options(
                f"{V1}/alerts", headers={"Origin": "https://evil.example"} | preflight
            )
    assert allowed.headers.get("access-control-allow-origin") == "https://ops.example"
    assert "access-control-allow-origin" not in other.headers
