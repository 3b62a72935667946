"""The dashboard in a real headless Chromium (Debian's, driven by Playwright).

Signs in with a token, waits for every chart to draw points, forces an alert and waits for it
on the page, checks the console stayed clean and saves ``docs/dashboard.png``; without a token
the page shows only the sign-in form and the API refuses it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from paca_otel._demo import create_app
from paca_otel.security import generate_token
from tests.peers import ROOT, free_port, require_binary

pytestmark = pytest.mark.peer("chromium")

_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-dev-shm-usage",
]  # fmt: skip
_CHARTS = ("cpu", "memory", "disk", "requests", "errors", "p50", "p95", "p99", "custom")


@pytest.fixture
def demo() -> Iterator[tuple[str, str]]:
    """The demo service (self-traffic on) under uvicorn in a thread: (base URL, admin token).

    Per test: the suite's autouse fixture resets paca-otel around every test.
    """
    token = generate_token()
    port = free_port()
    app = create_app(traffic=True, metrics_exporter="prometheus", admin_token=token)
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
            time.sleep(0.1)
    yield url, token
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright (``playwright install`` cannot download here)."""
    executable = require_binary("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=_ARGS)
        yield launched
        launched.close()


def _points(page: Any) -> dict[str, int]:
    found: dict[str, int] = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('.chart')].map("
        "c => [c.dataset.chart, Number(c.dataset.points || 0)]))"
    )
    return found


def _save_screenshot(page: Any, tmp_path: Path) -> None:
    """The artifact: in ``PACA_OTEL_ARTIFACTS`` (CI) or tmp; docs/dashboard.png on request."""
    targets = [Path(os.environ.get("PACA_OTEL_ARTIFACTS", tmp_path)) / "dashboard.png"]
    docs = ROOT / "docs" / "dashboard.png"
    if os.environ.get("PACA_OTEL_UPDATE_DOCS") == "1" or not docs.exists():
        targets.append(docs)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target), full_page=True)


def test_dashboard_signs_in_draws_every_chart_and_shows_a_forced_alert(
    demo: tuple[str, str], browser: Any, tmp_path: Path
) -> None:
    """Token sign-in, every chart drawn, a forced alert listed within 5 s, a clean console."""
    url, token = demo
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{url}/monitoring/")
    page.wait_for_selector("#signin:not([hidden])")
    page.fill("#token", token)
    page.click("#signin button[type=submit]")
    page.wait_for_function("() => document.body.dataset.state === 'live'", timeout=15_000)
    deadline = time.monotonic() + 45
    while min(_points(page).values(), default=0) == 0:
        assert time.monotonic() < deadline, f"charts without points: {_points(page)}"
        page.wait_for_timeout(250)
    assert set(_points(page)) == set(_CHARTS)

    created = time.monotonic()
    response = httpx.post(
        f"{url}/monitoring/api/v1/rules",
        json={"name": "forced_alert", "condition": "cpu_usage >= 0", "severity": "critical"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    page.wait_for_selector("#alerts tr[data-rule=forced_alert]", timeout=5_000)
    print(f"forced alert on the page after {time.monotonic() - created:.2f} s")
    page.wait_for_selector("#rules tr[data-rule=forced_alert]", timeout=15_000)
    assert page.text_content("#cpu_usage").endswith("%")
    lags = []
    for _ in range(10):
        previous = page.evaluate("() => document.body.dataset.lastSample")
        page.wait_for_function(f"() => document.body.dataset.lastSample !== '{previous}'")
        lags.append(int(page.evaluate("() => document.body.dataset.lagMs")))
    print(f"sample to screen: {sorted(lags)} ms")
    _save_screenshot(page, tmp_path)
    assert problems == []
    context.close()
    httpx.delete(
        f"{url}/monitoring/api/v1/rules/forced_alert",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_dashboard_without_a_token_refuses(demo: tuple[str, str], browser: Any) -> None:
    """No session: only the sign-in form shows, the API answers 401 and a wrong token is refused."""
    url, _ = demo
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{url}/monitoring/")
    page.wait_for_selector("body[data-auth=required]")
    assert page.is_visible("#signin")
    assert not page.is_visible("#charts")
    status = page.evaluate("() => fetch('api/v1/metrics').then(r => r.status)")
    assert status == 401
    page.fill("#token", "paca_" + "x" * 43)
    page.click("#signin button[type=submit]")
    page.wait_for_function("() => document.querySelector('#signin-error').textContent !== ''")
    assert "refused" in page.text_content("#signin-error")
    assert not page.is_visible("#charts")
    context.close()


def test_dashboard_page_is_not_blank_before_the_first_fetch(demo: tuple[str, str]) -> None:
    """The served HTML already holds the cards, chart frames and tables (a skeleton state)."""
    url, _ = demo
    page = httpx.get(f"{url}/monitoring/").text
    for chart in _CHARTS:
        assert f'data-chart="{chart}"' in page
    assert 'data-state="loading"' in page
    assert "static/vendor/uplot/uPlot.iife.min.js" in page
    assert "cdn" not in page.lower()


def test_vendored_uplot_and_its_licence_are_served(demo: tuple[str, str]) -> None:
    """uPlot is served from the package with its MIT licence (no CDN, works offline)."""
    url, _ = demo
    script = httpx.get(f"{url}/monitoring/static/vendor/uplot/uPlot.iife.min.js")
    assert script.status_code == 200
    assert "uPlot" in script.text
    licence = httpx.get(f"{url}/monitoring/static/vendor/uplot/LICENSE")
    assert "MIT" in licence.text
    assert httpx.get(f"{url}/monitoring/static/../api.py").status_code == 404
    assert Path(ROOT / "paca_otel/web/static/vendor/uplot/uPlot.min.css").is_file()
