"""FastAPI dependencies of the monitoring API: the core's facade and the access check.

:func:`get_monitor` is the ONE place the API reaches the core: every route takes the
:class:`~paca_otel.web._facade.Monitor` it returns, over the composition root of the app the
request came to (the one ``configure(app=...)`` instrumented it for), else the default root.
A test points the API elsewhere with ``app.dependency_overrides[get_monitor]``.

:func:`require` builds the per-route access dependency: Bearer token or dashboard session
cookie, the route's :class:`~paca_otel.security.Permission`, 401/403/429, the CSRF check for
cookie-authenticated writes, and public routes. The outcome is left on ``request.state`` for
:class:`~paca_otel.web._routing.GuardedRoute`, which writes the audit record once the status is
known.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final

from fastapi import Depends, HTTPException, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyCookie, HTTPBearer

from paca_otel.security import MINIMUM_ROLE, AuthOutcome, Permission
from paca_otel.web._access import (
    CSRF_HEADER,
    SESSION_COOKIE,
    AccessControl,
    AccessSlot,
    Principal,
)
from paca_otel.web._facade import Monitor

__all__ = ["MonitorDep", "access", "client_address", "get_monitor", "permission_extra", "require"]

_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_bearer = HTTPBearer(auto_error=False, description="An API token: `paca-otel token create`.")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="The dashboard's session (POST /api/v1/session); writes also need X-CSRF-Token.",
)
_MESSAGES: Final = {
    AuthOutcome.MISSING: "authentication required: send Authorization: Bearer <token>",
    AuthOutcome.MALFORMED: "malformed Authorization header: expected 'Bearer <token>'",
    AuthOutcome.INVALID: "invalid token",
    AuthOutcome.RATE_LIMITED: "too many failed authentications from this address; retry later",
    AuthOutcome.FORBIDDEN: "this token's role may not do this",
}


def get_monitor(request: Request) -> Monitor:
    """The facade over the request's composition root (the app's, else the default one)."""
    root = getattr(request.app.state, "paca_otel_runtime", None)
    if root is None:
        from paca_otel._runtime import default_runtime

        root = default_runtime()
    return Monitor(root)


MonitorDep = Annotated[Monitor, Depends(get_monitor)]


async def access(monitor: Monitor) -> AccessControl:
    """The access control of the monitor's root for its current settings.

    Built in a worker thread the first time (it opens the audit table), then a lookup.
    """
    slot = monitor.component(AccessSlot)
    settings = monitor.settings()
    found = slot.current(settings)
    if found is None:
        found = await run_in_threadpool(slot.for_settings, settings)
    return found


def client_address(request: Request) -> str:
    """The peer's address (behind a proxy: the proxy's, unless uvicorn's proxy headers are on)."""
    return request.client.host if request.client is not None else "unknown"


def permission_extra(permission: Permission | None) -> dict[str, Any]:
    """OpenAPI extension fields naming what a route needs (read by the auth-matrix tests)."""
    if permission is None:
        return {"x-permission": "public"}
    return {"x-permission": permission.value, "x-minimum-role": MINIMUM_ROLE[permission].value}


def _fail(request: Request, outcome: AuthOutcome, retry_after: float = 0.0) -> HTTPException:
    request.state.paca_auth_result = outcome.value
    headers: dict[str, str] = {}
    if outcome is AuthOutcome.RATE_LIMITED:
        headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    elif outcome is not AuthOutcome.FORBIDDEN:
        headers["WWW-Authenticate"] = 'Bearer realm="paca-otel"'
    return HTTPException(outcome.status, detail=_MESSAGES[outcome], headers=headers or None)


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency letting in a request that holds ``permission`` (or a public route)."""

    async def dependency(
        request: Request,
        monitor: MonitorDep,
        _bearer_credentials: Annotated[object, Security(_bearer)],
        _session_cookie: Annotated[str | None, Security(_cookie)],
    ) -> Principal:
        control = await access(monitor)
        route = request.scope.get("route")
        path = getattr(route, "path", request.url.path)
        authorization = request.headers.get("authorization")
        session_id = request.cookies.get(SESSION_COOKIE)
        if control.is_public(path):  # a probe sending a stale token still gets its answer
            public = Principal(None, None, "public")
            request.state.paca_principal = public
            return public
        result, session = control.authenticate(
            authorization, session_id, client_address(request), permission
        )
        if result.token is not None:
            request.state.paca_principal = Principal(
                result.token.name, result.token.role.value, "session" if session else "bearer"
            )
        if not result.ok:
            raise _fail(request, result.outcome, result.retry_after)
        if (
            session is not None
            and request.method not in _SAFE_METHODS
            and not control.csrf_ok(session, request.headers.get(CSRF_HEADER))
        ):
            request.state.paca_auth_result = "csrf"
            raise HTTPException(403, detail="missing or wrong X-CSRF-Token for a session write")
        principal: Principal = request.state.paca_principal
        return principal

    dependency.permission = permission  # type: ignore[attr-defined]  # read by tests and docs
    return dependency
