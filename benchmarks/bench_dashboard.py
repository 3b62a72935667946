"""The dashboard's update latency in a real headless Chromium (Debian's, via Playwright).

1. **Sample to screen.** Milliseconds from the moment the server took a live sample (its
   timestamp) to the page having drawn it (the page records ``Date.now()`` after rendering;
   same host, same clock). Samples arrive once a second over server-sent events.
2. **Change to screen.** Seconds from creating an always-true rule through the API to its
   alert row appearing on the page: the rule engine's evaluation interval (the demo uses 2 s)
   plus at most one event interval (1 s) plus rendering.

    python benchmarks/bench_dashboard.py [--changes 10] [--samples 30]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import httpx
import uvicorn
from playwright.sync_api import sync_playwright

from paca_otel._demo import create_app
from paca_otel.security import generate_token
from tests.peers import free_port

_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    token = generate_token()
    port = free_port()
    app = create_app(traffic=True, metrics_exporter="prometheus", admin_token=token)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.05)
    auth = {"Authorization": f"Bearer {token}"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(f"{url}/monitoring/")
        page.fill("#token", token)
        page.click("#signin button[type=submit]")
        page.wait_for_function("() => document.body.dataset.state === 'live'", timeout=15_000)
        lags, gaps = [], []
        last = float(page.evaluate("() => document.body.dataset.lastSample"))
        for _ in range(args.samples):
            page.wait_for_function(f"() => Number(document.body.dataset.lastSample) > {last}")
            now = float(page.evaluate("() => document.body.dataset.lastSample"))
            gaps.append(now - last)
            last = now
            lags.append(int(page.evaluate("() => document.body.dataset.lagMs")))
        changes = []
        for i in range(args.changes):
            name = f"bench_{i}"
            started = time.perf_counter()
            httpx.post(
                f"{url}/monitoring/api/v1/rules",
                json={"name": name, "condition": "cpu_usage >= 0"},
                headers=auth,
            ).raise_for_status()
            page.wait_for_selector(f"#alerts tr[data-rule={name}]", timeout=10_000)
            changes.append(time.perf_counter() - started)
            httpx.delete(f"{url}/monitoring/api/v1/rules/{name}", headers=auth)
        browser.close()
    server.should_exit = True
    lags.sort()
    changes.sort()
    print(f"sample interval   median {statistics.median(gaps):.2f} s, max {max(gaps):.2f} s")
    print(
        f"sample to screen  median {statistics.median(lags)} ms, "
        f"p95 {lags[int(0.95 * (len(lags) - 1))]} ms, max {lags[-1]} ms"
    )
    print(
        f"change to screen  median {statistics.median(changes):.2f} s, "
        f"max {changes[-1]:.2f} s (evaluation interval 2 s + one 1 s event)"
    )


if __name__ == "__main__":
    main()
