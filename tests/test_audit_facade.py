"""Audit of set-up, settings, the seed facade and the web API: bad input, odd orders, env vars."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paca_otel import AlertManager, MonitoringManager, configure
from paca_otel.cli import main
from paca_otel.config import load_settings
from paca_otel.demo import create_app
from tests.peers import free_port


def _quiet(**extra: object) -> dict[str, object]:
    return {"metrics_exporter": "none", "system_metrics": False, **extra}


# --- settings ---------------------------------------------------------------------------------


def test_bare_field_names_in_the_environment_are_not_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only PACA_OTEL_* and OTEL_* variables are read: LOG_LEVEL=debug or SERVICE_NAME are not."""
    monkeypatch.setenv("LOG_LEVEL", "debug")  # common in containers; not ours
    monkeypatch.setenv("ENVIRONMENT", "from-bare-env")
    monkeypatch.setenv("SERVICE_NAME", "bare")
    monkeypatch.setenv("PACA_OTEL_SERVICE_NAME", "paca")
    loaded = load_settings()
    assert loaded.service_name == "paca"
    assert loaded.environment is None
    assert loaded.log_level == "INFO"
    assert load_settings(service_name="arg").service_name == "arg"


def test_config_masks_credentials_in_urls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`paca-otel config` never prints a password given as URL userinfo."""
    monkeypatch.setenv("PACA_OTEL_ALERTMANAGER_URL", "http://admin:hunter2@am.example:9093")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:s3cr3t@collector:4317")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "s3cr3t" not in out
    data = json.loads(out)
    assert data["alertmanager_url"].endswith("am.example:9093")
    assert "collector:4317" in data["otlp_endpoint"]


# --- set-up -----------------------------------------------------------------------------------


def test_prometheus_exporter_set_up_logs_no_sdk_warning(caplog: pytest.LogCaptureFixture) -> None:
    """configure() with the Prometheus reader does not collect before the reader is registered."""
    caplog.set_level(logging.WARNING)
    configure(metrics_exporter="prometheus", prometheus_port=free_port(), system_metrics=False)
    sdk = [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")]
    assert sdk == []


# --- the seed facade --------------------------------------------------------------------------


async def test_alert_manager_first_then_manager_settings_take_effect(tmp_path: Path) -> None:
    """AlertManager before MonitoringManager: the manager's state_path and interval still apply."""
    state = tmp_path / "state.db"
    alerts = AlertManager()
    alerts.add_rule_sync("always", "cpu_usage >= 0", "log", 0)
    silence_id = alerts.silence({"alertname": "other"}, duration=600)
    monitor = MonitoringManager(evaluation_interval=2, state_path=state, **_quiet())
    await monitor.start_monitoring()
    try:
        runtime = alerts.runtime
        assert runtime.engine.evaluation_interval == 2.0
        assert runtime.settings.state_path == state
        assert state.exists()
        assert [r.name for r in alerts.rules] == ["always"]
        alerts.expire_silence(silence_id)  # the id handed out before start still works
    finally:
        await monitor.stop()


async def test_setup_alert_accepts_numpy_like_numbers() -> None:
    """A numpy float threshold makes `metric > 95.5`, not a parse error on `np.float64(95.5)`."""

    class Float64(float):
        def __repr__(self) -> str:
            return f"np.float64({float(self)!r})"

    monitor = MonitoringManager(**_quiet())
    await monitor.start()
    try:
        rule = await monitor.setup_alert("cpu_usage", Float64(95.5))
        assert rule.condition == "cpu_usage > 95.5"
    finally:
        await monitor.stop()


async def test_setup_alert_rejects_a_boolean_threshold() -> None:
    """`True` is not a threshold: a RuleError naming it, not a silent `> 1`."""
    from paca_otel.errors import RuleError

    monitor = MonitoringManager(**_quiet())
    await monitor.start()
    try:
        with pytest.raises(RuleError, match="threshold"):
            await monitor.setup_alert("cpu_usage", True)
    finally:
        await monitor.stop()


# --- the web API ------------------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The demo app (no self-traffic, no scrape server) with its lifespan running."""
    app: FastAPI = create_app(traffic=False, metrics_exporter="none")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


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


# --- the CLI demo -----------------------------------------------------------------------------


def _demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "paca_otel.cli", "demo", "--no-traffic", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_demo_on_a_busy_port_fails_fast_and_says_so() -> None:
    """--port in use: exit 2 with the address named, and no banner claiming it runs."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _demo("--port", str(port))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"127.0.0.1:{port}" in err
    assert "in use" in err
    assert "demo on" not in out


def test_demo_port_zero_prints_the_real_port() -> None:
    """--port 0 picks a free port and the banner shows that port, which then answers."""
    proc = _demo("--port", "0")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("paca-otel demo on http://127.0.0.1:"), first
        port = int(first.rsplit(":", 1)[1])
        assert port != 0
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/monitoring/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "demo did not answer"
                time.sleep(0.2)
        assert response.status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# --- OTLP endpoints ---------------------------------------------------------------------------


def test_endpoint_with_a_bad_port_is_a_config_error() -> None:
    """An endpoint port out of range is a ConfigError naming the setting, not a bare ValueError."""
    from paca_otel.errors import ConfigError

    with pytest.raises(ConfigError, match="otlp_endpoint"):
        configure(otlp_endpoint="http://127.0.0.1:99999", **_quiet())


def test_bare_host_port_grpc_endpoint_is_probed_at_that_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`collector:4317` (no scheme, as the OTel SDK allows for gRPC) is probed there, not :80."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        caplog.set_level(logging.WARNING, logger="paca_otel")
        configure(
            traces_exporter="otlp", logs_exporter="none", otlp_endpoint=f"127.0.0.1:{port}",
            **_quiet(),
        )  # fmt: skip
        time.sleep(1.0)  # the probe runs in a background thread; both outcomes are immediate
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
