"""The demo service behind ``paca-otel demo``: an instrumented FastAPI app that shows everything.

It runs on the embedded defaults (no collector, no Prometheus needed): traces stay in process,
metrics are scrapeable at ``/metrics``, system gauges are on, logs are JSON on stderr, the
monitoring API and dashboard live under ``/monitoring``, and a small traffic generator keeps
the numbers moving so the alert rules have something to judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException

from paca_otel._manager import MonitoringManager
from paca_otel.signals._metrics import MetricsCollector
from paca_otel.signals._tracing import span
from paca_otel.web.api import monitoring_router

logger = logging.getLogger("paca_otel.demo")


def create_app(*, traffic: bool = True, admin_token: str | None = None, **settings: Any) -> FastAPI:
    """Build the demo app; ``settings`` go to ``configure`` (service name, exporters...).

    ``admin_token`` (``paca-otel demo`` generates one) is added to ``api_tokens`` as
    ``demo-admin`` so the dashboard can sign in; only its hash is kept.
    """
    if admin_token is not None:
        from paca_otel.security import hash_token

        entry = f"demo-admin:admin:{hash_token(admin_token)}"
        settings["api_tokens"] = [*settings.get("api_tokens", ()), entry]
    settings.setdefault("evaluation_interval", 2.0)  # charts and alerts move within seconds
    settings.setdefault("service_name", "paca-otel-demo")
    settings.setdefault("logs", True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the traffic generator's own chatter
    collector = MetricsCollector()
    monitor: MonitoringManager

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await monitor.start()
        await monitor.start_monitoring()
        monitor.add_demo_rules()
        task = asyncio.create_task(_traffic(app)) if traffic else None
        logger.info("demo service started")
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await monitor.stop()

    app = FastAPI(title="paca-otel demo", lifespan=lifespan)
    monitor = MonitoringManager(app=app, **settings)
    app.include_router(monitoring_router(), prefix="/monitoring")

    @app.get("/")
    async def index() -> dict[str, str]:
        return {
            "dashboard": "/monitoring/",
            "metrics": "/metrics",
            "current": "/monitoring/metrics",
            "orders": "/api/orders/{id}",
        }

    @app.get("/api/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, Any]:
        with span("load_order", attributes={"order.id": order_id}):
            await asyncio.sleep(random.uniform(0.001, 0.02))  # demo latency, not crypto
        await collector.record_metric("demo.orders.viewed", 1, {"shop": "main"}, kind="counter")
        logger.info("order viewed", extra={"order_id": order_id})
        return {"id": order_id, "status": "shipped"}

    @app.get("/api/flaky")
    async def flaky() -> dict[str, str]:
        if random.random() < 0.2:  # demo error rate, not crypto
            logger.warning("flaky endpoint failed")
            raise HTTPException(status_code=500, detail="simulated failure")
        return {"status": "ok"}

    return app


async def _traffic(app: FastAPI) -> None:
    """Call the demo's own endpoints a few times a second, in process, until cancelled."""
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                await client.get(f"/api/orders/{random.randint(1, 100)}")  # demo
                await client.get("/api/flaky")
            await asyncio.sleep(0.5)
