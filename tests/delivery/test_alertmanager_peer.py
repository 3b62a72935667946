"""AlertmanagerChannel against a real Alertmanager that routes to our local webhook receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from paca_otel.delivery._dispatcher import Dispatcher
from paca_otel.delivery._outbox import Outbox
from paca_otel.delivery.channels import AlertmanagerChannel
from paca_otel.rules._models import AlertEvent, AlertState
from tests._wait import wait_for
from tests.delivery.test_channels import Receiver, event, notification
from tests.peers import ROOT, free_port, require_binary

CONFIG = """\
route:
  receiver: paca
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: paca
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[str, Receiver]]:
    """A real Alertmanager on 127.0.0.1 whose only receiver is a local webhook peer."""
    binary = require_binary("prometheus-alertmanager")
    hook = Receiver()
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG.format(url=f"{hook.url}/am"))
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool | None:
        if proc.poll() is not None:
            pytest.fail(f"alertmanager exited: {(tmp_path / 'alertmanager.log').read_text()}")
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200 or None
        except httpx.HTTPError:
            return None

    try:
        wait_for(ready, "alertmanager to be ready", timeout=20)
        yield url, hook
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        hook.stop()


def _our_alerts(url: str) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
    return [a for a in alerts if a["labels"].get("alertname") == "HighLatency"]


def _webhooks(hook: Receiver, status: str) -> list[dict[str, Any]] | None:
    with hook.lock:
        found = [r["body"] for r in hook.requests if r["body"].get("status") == status]
    return found or None


@pytest.mark.peer("alertmanager")
def test_alert_fires_routes_and_resolves(alertmanager: tuple[str, Receiver]) -> None:
    """Our alert shows in Alertmanager, reaches its webhook receiver, and resolves after ours."""
    url, hook = alertmanager
    box = Outbox()
    channel = AlertmanagerChannel(url, resend_interval=60)
    dispatcher = Dispatcher(box, {"alertmanager": channel})
    start = time.time() - 5
    box.enqueue(notification(event(starts_at=start), channel="alertmanager"))
    try:
        assert dispatcher.deliver_due() == 1
        (alert,) = wait_for(
            lambda: _our_alerts(url) or None, "the alert in GET /api/v2/alerts", timeout=20
        )
        assert alert["status"]["state"] == "active"
        assert alert["labels"] == {
            "alertname": "HighLatency",
            "severity": "critical",
            "service": "api",
            "route": "/pay",
        }
        assert alert["annotations"]["summary"] == "p99 latency above 500 ms"
        assert alert["generatorURL"] == "http://paca.example/r"
        (fired,) = wait_for(lambda: _webhooks(hook, "firing"), "the firing webhook", timeout=20)
        assert fired["alerts"][0]["labels"]["route"] == "/pay"

        resolved = event(state=AlertState.RESOLVED, starts_at=start, ends_at=time.time())
        assert box.enqueue(notification(resolved, channel="alertmanager"))
        assert dispatcher.deliver_due() == 1
        done = wait_for(lambda: _webhooks(hook, "resolved"), "the resolved webhook", timeout=20)
        assert done[0]["alerts"][0]["status"] == "resolved"
        assert box.next_due("alertmanager") is None  # no more re-sends of the firing state
    finally:
        channel.close()
        box.close()


@pytest.mark.peer("alertmanager")
def test_alertmanager_accepts_otel_attribute_names(
    alertmanager: tuple[str, Receiver],
) -> None:
    """Dotted OTel label/annotation names are made Prometheus-valid, so Alertmanager takes them."""
    url, _hook = alertmanager
    dotted = AlertEvent(
        rule="HighLatency",
        state=event().state,
        labels={"cpu.mode": "idle", "service.name": "shop"},
        annotations={"runbook.url": "http://runbooks/x"},
        value=97.0,
        severity=event().severity,
        starts_at=time.time() - 5,
    )
    channel = AlertmanagerChannel(url, timeout=5)
    try:
        channel.send(notification(dotted, channel="alertmanager"))
    finally:
        channel.close()

    def ours() -> dict[str, Any] | None:
        alerts: list[dict[str, Any]] = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
        found = [a for a in alerts if a["labels"].get("alertname") == "HighLatency"]
        return found[0] if found else None

    alert = wait_for(ours, "the dotted alert in GET /api/v2/alerts", timeout=20)
    assert alert["labels"]["cpu_mode"] == "idle"
    assert alert["labels"]["service_name"] == "shop"
    assert alert["annotations"]["runbook_url"] == "http://runbooks/x"


@pytest.mark.peer("alertmanager")
def test_same_alert_from_three_instances_is_one_notification(
    alertmanager: tuple[str, Receiver],
) -> None:
    """Three processes sending one alert (same rule, same labels) give one webhook notification.

    The path across hosts: every instance evaluates its own rules and Alertmanager
    deduplicates identical alerts, so no coordination between instances is needed.
    """
    url, hook = alertmanager
    senders = [
        subprocess.Popen(  # our own interpreter and test script, no shell
            [sys.executable, str(Path(__file__).with_name("alertmanager_sender.py")), url],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        outputs = [sender.communicate(timeout=30)[0] for sender in senders]
    finally:
        for sender in senders:
            if sender.poll() is None:
                sender.kill()
                sender.wait(10)
    assert [out.strip().splitlines()[-1] for out in outputs] == ["sent"] * 3, outputs

    def checkout_notifications() -> list[dict[str, Any]]:
        with hook.lock:
            return [
                r["body"] for r in hook.requests
                if r["body"].get("commonLabels", {}).get("alertname") == "CheckoutErrors"
            ]  # fmt: skip

    (first,) = wait_for(
        lambda: checkout_notifications() or None, "the notification at the webhook", timeout=20
    )
    # group_wait and group_interval are 1 s: a duplicate would arrive within a few seconds.
    time.sleep(4)
    assert len(checkout_notifications()) == 1
    assert first["status"] == "firing"
    (alert,) = first["alerts"]
    assert alert["labels"] == {
        "alertname": "CheckoutErrors",
        "severity": "critical",
        "service": "shop",
        "route": "/checkout",
    }
    (active,) = [
        a for a in httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
        if a["labels"]["alertname"] == "CheckoutErrors"
    ]  # fmt: skip
    assert active["status"]["state"] == "active"
