"""The monitoring API mounted on a FastAPI app: ``monitoring_router()``, the rule body model,
the dashboard page and its static files, and the first API's unversioned routes.

Routes read the process's live state through :func:`paca_otel.web._deps.get_monitor` at
request time, so the router can be mounted before ``configure()`` runs. Core calls run in a
worker thread to keep the event loop free.
"""

from __future__ import annotations

from dataclasses import asdict
from enum import Enum
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Response, Security
from fastapi.responses import HTMLResponse, JSONResponse

from paca_otel._snapshot import MetricsSnapshot
from paca_otel.errors import PacaOtelError
from paca_otel.security import Permission
from paca_otel.web._deps import MonitorDep, permission_extra, require
from paca_otel.web._models import ErrorReply, Health
from paca_otel.web._routing import GuardedRoute
from paca_otel.web._rule_payload import RulePayload

__all__ = ["monitoring_router"]


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v.value if isinstance(v, Enum) else v for k, v in data.items()}


def monitoring_router() -> APIRouter:
    """Routes under the prefix the caller chooses (the demo uses ``/monitoring``).

    ``/api/v1/...`` is the versioned API (:mod:`paca_otel.web._v1`); ``/`` the dashboard;
    ``/health`` liveness and readiness (public by default). The unversioned routes below are
    the first API's, kept as deprecated aliases behind the same tokens and roles.
    """
    from paca_otel.web._v1 import call_core, health_response, v1_router

    router = APIRouter(tags=["monitoring"], route_class=GuardedRoute)
    router.include_router(v1_router(), prefix="/api/v1")

    def legacy(permission: Permission, name: str) -> dict[str, Any]:
        return {
            "dependencies": [Security(require(permission))],
            "deprecated": True,
            "name": name,
            "operation_id": name,
            "openapi_extra": permission_extra(permission),
        }

    @router.get(
        "/metrics", response_model=MetricsSnapshot, **legacy(Permission.READ, "legacyMetrics")
    )
    async def current(monitor: MonitorDep) -> MetricsSnapshot:
        snapshot: MetricsSnapshot = await call_core(monitor.snapshot)
        return snapshot

    @router.get("/alerts", **legacy(Permission.READ, "legacyAlerts"))
    async def alerts(monitor: MonitorDep) -> list[dict[str, Any]]:
        return [_jsonable(asdict(a)) for a in await call_core(monitor.active_alerts)]

    @router.get("/alerts/history", **legacy(Permission.READ, "legacyAlertHistory"))
    async def history(monitor: MonitorDep, limit: int = 100) -> list[dict[str, Any]]:
        events = await call_core(monitor.alert_history, max(1, min(limit, 1000)))
        return [e.to_dict() for e in events]

    @router.get("/rules", **legacy(Permission.READ, "legacyRules"))
    async def rules(monitor: MonitorDep) -> list[dict[str, Any]]:
        from paca_otel._manager import rule_payload

        return [rule_payload(rule) for rule in await call_core(monitor.rules)]

    @router.post("/rules", status_code=201, **legacy(Permission.WRITE_RULES, "legacyAddRule"))
    async def add_rule(monitor: MonitorDep, payload: RulePayload) -> dict[str, Any]:
        """Add or replace a rule (the first API's semantics; v1 refuses an existing name)."""
        from paca_otel._manager import rule_payload
        from paca_otel.web._v1 import rule_body

        data = rule_body(payload)
        try:
            rule = await call_core(monitor.put_rule, data)
        except PacaOtelError as exc:
            # FastAPI's own 422 shape, so clients parse one format whoever found the error
            error = {"type": "value_error", "loc": ["body"], "msg": str(exc)[:1000]}
            raise HTTPException(status_code=422, detail=[error]) from None
        return rule_payload(rule)

    @router.get(
        "/health", response_model=Health, name="legacy_health", operation_id="legacyHealth",
        openapi_extra=permission_extra(None),
    )  # fmt: skip
    async def health(monitor: MonitorDep, ready: bool = False) -> Health | JSONResponse:
        return await health_response(monitor, ready=ready)

    @router.get(
        "/", response_class=HTMLResponse, name="dashboard", operation_id="dashboard",
        summary="The dashboard page (data needs a sign-in)", tags=["dashboard"],
        openapi_extra=permission_extra(None),
    )  # fmt: skip
    async def dashboard() -> HTMLResponse:
        page = resources.files("paca_otel.web").joinpath("static/dashboard.html").read_text()
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @router.get(
        "/static/{path:path}", name="static_asset", operation_id="staticAsset",
        summary="The dashboard's script, style and vendored uPlot", tags=["dashboard"],
        openapi_extra=permission_extra(None), responses={404: {"model": ErrorReply}},
    )  # fmt: skip
    async def static_asset(path: str) -> Response:
        media = _STATIC.get(path)
        if media is None:
            raise HTTPException(status_code=404, detail="no such asset")
        body = resources.files("paca_otel.web").joinpath(f"static/{path}").read_bytes()
        return Response(body, media_type=media, headers={"Cache-Control": "max-age=3600"})

    return router


#: The static files the dashboard loads (an allow-list: no path is joined from user input).
_STATIC: dict[str, str] = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "vendor/uplot/uPlot.iife.min.js": "text/javascript",
    "vendor/uplot/uPlot.min.css": "text/css",
    "vendor/uplot/LICENSE": "text/plain",
}
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
