"""The monitoring API mounted on a FastAPI app: current metrics, alerts, and the dashboard page.

Routes read the process's live configuration at request time, so the router can be mounted
before ``configure()`` runs. Collections run in a worker thread to keep the event loop free.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from paca_otel.setup import Telemetry, get_telemetry
from paca_otel.snapshot import MetricsSnapshot


def _telemetry() -> Telemetry:
    telemetry = get_telemetry()
    if telemetry is None:
        raise HTTPException(status_code=503, detail="paca-otel is not configured")
    return telemetry


def monitoring_router() -> APIRouter:
    """Routes under the prefix the caller chooses (the demo uses ``/monitoring``)."""
    router = APIRouter(tags=["monitoring"])

    @router.get("/metrics", response_model=MetricsSnapshot)
    async def current() -> MetricsSnapshot:
        from paca_otel.manager import current_metrics

        return await run_in_threadpool(current_metrics, _telemetry())

    @router.get("/health")
    async def health() -> dict[str, Any]:
        telemetry = get_telemetry()
        return {"status": "ok" if telemetry is not None else "unconfigured"}

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        page = resources.files("paca_otel.web").joinpath("static/dashboard.html").read_text()
        return HTMLResponse(page)

    return router
