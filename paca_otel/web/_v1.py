"""The versioned monitoring API, ``/api/v1``: metrics, series, alerts, rules, silences, reports,
audit, health, dashboard sessions and the live event stream.

Every route declares the :class:`~paca_otel.security.Permission` it needs (also in OpenAPI as
``x-permission``), reaches the core only through :func:`~paca_otel.web._deps.get_monitor`, and
runs the core's calls in a worker thread. Rule changes are explicit: ``POST`` creates (409 when
the name exists), ``PUT`` replaces (404 when it does not), ``DELETE`` removes.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from paca_otel.errors import PacaOtelError
from paca_otel.security import Permission
from paca_otel.web._access import SESSION_COOKIE, Principal
from paca_otel.web._audit import AuditQuery
from paca_otel.web._deps import (
    MonitorDep,
    access,
    client_address,
    permission_extra,
    require,
)
from paca_otel.web._events import LiveFeed
from paca_otel.web._facade import Monitor, NotConfiguredError
from paca_otel.web._models import (
    Alert,
    AlertEventModel,
    AlertHistoryPage,
    AuditEntry,
    AuditPage,
    ComponentHealth,
    ErrorReply,
    Health,
    MetricsReply,
    Report,
    ReportList,
    RuleModel,
    SeriesNames,
    SeriesReply,
    SessionInfo,
    SignIn,
    Silence,
    SilenceCreate,
    SilenceCreated,
)
from paca_otel.web._routing import GuardedRoute
from paca_otel.web._rule_payload import RulePayload

__all__ = [
    "call_core",
    "health_reply",
    "health_response",
    "parse_matcher",
    "rule_body",
    "v1_router",
]

_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
_MAX_WINDOW: Final = 31 * 86_400.0
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ErrorReply, "description": "No or invalid token"},
    403: {"model": ErrorReply, "description": "The token's role lacks the permission"},
    429: {"model": ErrorReply, "description": "Too many failed authentications"},
}


def _op(
    permission: Permission | None,
    op_id: str,
    summary: str,
    responses: dict[int | str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The keyword arguments every route shares: access check, ids, docs, error replies."""
    extra: dict[str, Any] = {
        "operation_id": op_id,
        "name": op_id,
        "summary": summary,
        "openapi_extra": permission_extra(permission),
    }
    if permission is not None:
        extra["dependencies"] = [Security(require(permission))]
        extra["responses"] = dict(_ERRORS)
    if responses:
        extra["responses"] = {**extra.get("responses", {}), **responses}
    return extra


def parse_matcher(text: str) -> tuple[str, str, str]:
    """``route="/x"`` -> ``("route", "=", "/x")``.

    Raises:
        HTTPException: 422 naming the expected form (the input is not echoed past 100 chars).
    """
    found = _MATCHER.fullmatch(text)
    if found is None:
        shown = text if len(text) <= 100 else text[:100] + "…"
        msg = f'label matcher {shown!r} must look like name="value" (ops = != =~ !~)'
        raise HTTPException(422, detail=[{"loc": ["query", "match"], "msg": msg}])
    value = re.sub(r"\\(.)", r"\1", found.group(3))
    return found.group(1), found.group(2), value


def _unprocessable(exc: PacaOtelError, where: str = "body") -> HTTPException:
    msg = str(exc)
    if len(msg) > 1000:
        msg = msg[:1000] + "…"
    return HTTPException(422, detail=[{"type": "value_error", "loc": [where], "msg": msg}])


async def call_core(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a core call in a worker thread; no configuration is a 503."""
    try:
        return await run_in_threadpool(function, *args, **kwargs)
    except NotConfiguredError as exc:
        raise HTTPException(503, detail=str(exc)) from None


async def _reports(monitor: Monitor) -> list[Any]:
    """The monitor's reports; an analysis that cannot run is a 503 naming why."""
    try:
        found: list[Any] = await call_core(monitor.reports)
    except PacaOtelError as exc:
        raise HTTPException(503, detail=f"no report: {str(exc)[:500]}") from None
    return found


def rule_body(payload: Any) -> dict[str, Any]:
    """A rule body's fields (``action`` folded into ``channels``), or a 422."""
    data: dict[str, Any] = payload.model_dump(exclude_unset=True, by_alias=True)
    if "action" in data and "channels" in data:
        error = {"type": "value_error", "loc": ["body"], "msg": "give either action or channels"}
        raise HTTPException(status_code=422, detail=[error])
    if "action" in data:
        data["channels"] = data.pop("action")
    return data


def health_reply(monitor: Monitor) -> Health:
    """Liveness and readiness from the facade's report."""
    report = monitor.health()
    if not report.get("configured"):
        return Health(status="unconfigured", ready=False)
    store = report["store"]
    storage = report["storage"]
    components = {
        "exporters": ComponentHealth(ok=True, detail=report["exporters"]),
        "channels": ComponentHealth(
            ok=not report["unconfigured_channels"],
            detail={
                "configured": report["channels"],
                "not_set_up": report["unconfigured_channels"],
            },
        ),
        "store": ComponentHealth(ok=store["overflow_series"] == 0, detail=store),
        "storage": ComponentHealth(ok=storage["errors"] == 0, detail=storage),
    }
    ready = components["storage"].ok
    degraded = not all(c.ok for c in components.values())
    return Health(status="degraded" if degraded else "ok", ready=ready, components=components)


async def health_response(monitor: Monitor, *, ready: bool) -> Health | JSONResponse:
    """The health reply; with ``ready`` a 503 when not ready, for readiness probes."""
    reply = await run_in_threadpool(health_reply, monitor)
    if ready and not reply.ready:
        return JSONResponse(reply.model_dump(mode="json"), status_code=503)
    return reply


def v1_router() -> APIRouter:  # noqa: PLR0915  # one flat list of routes reads best
    """The ``/api/v1`` routes (the caller picks the prefix)."""
    router = APIRouter(route_class=GuardedRoute, tags=["monitoring v1"])
    read, rules_w = Permission.READ, Permission.WRITE_RULES
    silences_w, audit_r = Permission.WRITE_SILENCES, Permission.READ_AUDIT

    # ---------------------------------------------------------------- metrics
    @router.get(
        "/metrics", response_model=MetricsReply, **_op(read, "getMetrics", "Current snapshot")
    )
    async def get_metrics(monitor: MonitorDep) -> MetricsReply:
        return MetricsReply.from_snapshot(await call_core(monitor.snapshot))

    @router.get(
        "/metrics/names", response_model=SeriesNames,
        **_op(read, "listSeriesNames", "Metric names with stored series"),
    )  # fmt: skip
    async def list_series_names(monitor: MonitorDep) -> SeriesNames:
        return SeriesNames(names=await call_core(monitor.series_names))

    @router.get(
        "/metrics/{name}/series", response_model=SeriesReply,
        **_op(read, "getSeries", "Stored points of one metric in a window"),
    )  # fmt: skip
    async def get_series(  # noqa: PLR0917  # FastAPI reads query parameters from the signature
        monitor: MonitorDep,
        name: str,
        window: Annotated[float, Query(gt=0, le=_MAX_WINDOW, description="seconds")] = 300.0,
        end: Annotated[float | None, Query(ge=0, le=1e11, description="Unix time")] = None,
        step: Annotated[float | None, Query(gt=0, le=86_400.0, description="seconds")] = None,
        match: Annotated[
            list[str] | None,
            Query(max_length=20, description='label matchers, e.g. route="/api/orders"'),
        ] = None,
    ) -> SeriesReply:
        matchers = [parse_matcher(m) for m in match or []]
        stop = time.time() if end is None else end
        start = stop - window
        try:
            found = await call_core(monitor.series, name, matchers, start=start, end=stop)
        except PacaOtelError as exc:
            raise _unprocessable(exc, "query") from None
        return SeriesReply.build(name, found, start, stop, step)

    # ---------------------------------------------------------------- alerts
    @router.get("/alerts", response_model=list[Alert], **_op(read, "listAlerts", "Active alerts"))
    async def list_alerts(monitor: MonitorDep) -> list[Alert]:
        return [Alert.from_active(a) for a in await call_core(monitor.active_alerts)]

    @router.get(
        "/alerts/history", response_model=AlertHistoryPage,
        **_op(read, "getAlertHistory", "Firing/resolved transitions, newest first, paged"),
    )  # fmt: skip
    async def get_alert_history(
        monitor: MonitorDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    ) -> AlertHistoryPage:
        events = await call_core(monitor.alert_history, offset + limit + 1)
        page = events[offset : offset + limit]
        return AlertHistoryPage(
            items=[AlertEventModel.from_event(e) for e in page], limit=limit, offset=offset,
            has_more=len(events) > offset + limit,
        )  # fmt: skip

    # ---------------------------------------------------------------- rules
    def _rule(rule: Any) -> RuleModel:
        from paca_otel._manager import rule_payload

        return RuleModel.from_rule(rule_payload(rule))

    @router.get("/rules", response_model=list[RuleModel], **_op(read, "listRules", "Every rule"))
    async def list_rules(monitor: MonitorDep) -> list[RuleModel]:
        return [_rule(r) for r in await call_core(monitor.rules)]

    @router.get(
        "/rules/{name}", response_model=RuleModel,
        **_op(read, "getRule", "One rule", responses={404: {"model": ErrorReply}}),
    )  # fmt: skip
    async def get_rule(monitor: MonitorDep, name: str) -> RuleModel:
        rule = await call_core(monitor.rule, name)
        if rule is None:
            raise HTTPException(404, detail="no rule with that name")
        return _rule(rule)

    @router.post(
        "/rules", status_code=201, response_model=RuleModel,
        **_op(rules_w, "createRule", "Create a rule", responses={409: {"model": ErrorReply}}),
    )  # fmt: skip
    async def create_rule(request: Request, monitor: MonitorDep, payload: RulePayload) -> RuleModel:
        data = rule_body(payload)
        request.state.paca_target = str(data.get("name", ""))
        if await call_core(monitor.rule, data.get("name", "")) is not None:
            raise HTTPException(409, detail="a rule with that name exists; PUT to replace it")
        try:
            return _rule(await call_core(monitor.put_rule, data))
        except PacaOtelError as exc:
            raise _unprocessable(exc) from None

    @router.put(
        "/rules/{name}", response_model=RuleModel,
        **_op(rules_w, "updateRule", "Replace a rule", responses={404: {"model": ErrorReply}}),
    )  # fmt: skip
    async def update_rule(monitor: MonitorDep, name: str, payload: RulePayload) -> RuleModel:
        data = rule_body(payload)
        if data.setdefault("name", name) != name:
            raise HTTPException(422, detail=[{"loc": ["body", "name"], "msg": "name differs"}])
        if await call_core(monitor.rule, name) is None:
            raise HTTPException(404, detail="no rule with that name; POST creates one")
        try:
            return _rule(await call_core(monitor.put_rule, data))
        except PacaOtelError as exc:
            raise _unprocessable(exc) from None

    @router.delete(
        "/rules/{name}", status_code=204, response_class=Response,
        **_op(rules_w, "deleteRule", "Delete a rule", responses={404: {"model": ErrorReply}}),
    )  # fmt: skip
    async def delete_rule(monitor: MonitorDep, name: str) -> Response:
        if await call_core(monitor.rule, name) is None:
            raise HTTPException(404, detail="no rule with that name")
        await call_core(monitor.remove_rule, name)
        return Response(status_code=204)

    # ---------------------------------------------------------------- silences
    @router.get(
        "/silences", response_model=list[Silence], **_op(read, "listSilences", "Every silence")
    )
    async def list_silences(monitor: MonitorDep) -> list[Silence]:
        now = time.time()
        return [Silence.from_record(s, now) for s in await call_core(monitor.silences)]

    @router.post(
        "/silences", status_code=201, response_model=SilenceCreated,
        **_op(silences_w, "createSilence", "Mute matching alerts for a while"),
    )  # fmt: skip
    async def create_silence(
        request: Request, monitor: MonitorDep, body: SilenceCreate
    ) -> SilenceCreated:
        matchers = [(m.name, m.op, m.value) for m in body.matchers]
        request.state.paca_target = ",".join(f"{n}{op}{v}" for n, op, v in matchers)
        try:
            principal = getattr(request.state, "paca_principal", None)
            silence_id = await call_core(
                monitor.silence,
                matchers,
                duration=body.duration,
                comment=body.comment,
                created_by=(principal.name if principal is not None else None) or "",
            )
        except PacaOtelError as exc:
            raise _unprocessable(exc) from None
        return SilenceCreated(id=silence_id)

    @router.delete(
        "/silences/{silence_id}", status_code=204, response_class=Response,
        **_op(
            silences_w, "expireSilence", "End a silence now",
            responses={404: {"model": ErrorReply}},
        ),
    )  # fmt: skip
    async def expire_silence(monitor: MonitorDep, silence_id: str) -> Response:
        try:
            await call_core(monitor.expire_silence, silence_id)
        except PacaOtelError:
            raise HTTPException(404, detail="no silence with that id") from None
        return Response(status_code=204)

    # ---------------------------------------------------------------- reports
    @router.get(
        "/reports", response_model=ReportList, **_op(read, "listReports", "Analysis reports")
    )
    async def list_reports(monitor: MonitorDep) -> ReportList:
        found = await _reports(monitor)
        return ReportList(items=[Report.model_validate(r) for r in found])

    @router.get(
        "/reports/latest", response_model=Report, **_op(
            read, "getLatestReport", "The newest analysis report",
            responses={404: {"model": ErrorReply}},
        ),
    )  # fmt: skip
    async def get_latest_report(monitor: MonitorDep) -> Report:
        found = await _reports(monitor)
        if not found:
            raise HTTPException(404, detail="no analysis report yet")
        return Report.model_validate(found[0])

    # ---------------------------------------------------------------- audit
    @router.get(
        "/audit", response_model=AuditPage, **_op(audit_r, "getAudit", "The audit log (admins)")
    )
    async def get_audit(  # noqa: PLR0917  # FastAPI reads query parameters from the signature
        monitor: MonitorDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        token_name: Annotated[str | None, Query(max_length=64)] = None,
        action: Annotated[str | None, Query(max_length=200)] = None,
        result: Annotated[str | None, Query(max_length=32)] = None,
    ) -> AuditPage:
        query = AuditQuery(limit, offset, token_name, action, result)
        try:
            rows, total = await call_core((await access(monitor)).audit.query, query)
        except PacaOtelError as exc:
            raise HTTPException(503, detail=f"audit log unavailable: {exc}") from None
        return AuditPage(
            items=[AuditEntry.model_validate(r) for r in rows], total=total, limit=limit,
            offset=offset,
        )  # fmt: skip

    # ---------------------------------------------------------------- health
    @router.get(
        "/health", response_model=Health,
        **_op(
            None, "health", "Liveness and readiness (?ready=true: 503 unless ready)",
            responses={503: {"model": Health}},
        ),
    )  # fmt: skip
    async def health(
        monitor: MonitorDep, ready: Annotated[bool, Query()] = False
    ) -> Health | JSONResponse:
        return await health_response(monitor, ready=ready)

    # ---------------------------------------------------------------- session
    @router.post(
        "/session", response_model=SessionInfo,
        **_op(
            None, "signIn", "Sign the dashboard in with a token (sets a session cookie)",
            responses={401: {"model": ErrorReply}, 429: {"model": ErrorReply}},
        ),
    )  # fmt: skip
    async def sign_in(request: Request, monitor: MonitorDep, body: SignIn) -> JSONResponse:
        control = await access(monitor)
        result, session_id, session = control.sign_in(body.token, client_address(request))
        if not result.ok or session is None or session_id is None:
            request.state.paca_auth_result = result.outcome.value
            status = result.outcome.status if result.outcome.status >= 400 else 401
            headers = {"Retry-After": str(int(result.retry_after) + 1)} if status == 429 else {}
            detail = "too many failed sign-ins" if status == 429 else "invalid token"
            return JSONResponse({"detail": detail}, status_code=status, headers=headers)
        request.state.paca_principal = Principal(
            session.token.name, session.token.role.value, "session"
        )
        reply = JSONResponse(
            SessionInfo(
                name=session.token.name,
                role=session.token.role.value,
                csrf_token=session.csrf,
                signed_in=True,
            ).model_dump()
        )
        reply.set_cookie(
            SESSION_COOKIE, session_id, max_age=int(control.session_ttl), httponly=True,
            samesite="strict", secure=request.url.scheme == "https", path="/",
        )  # fmt: skip
        return reply

    @router.get(
        "/session", response_model=SessionInfo,
        **_op(None, "getSession", "Who is signed in (name, role, CSRF token); 200 when nobody"),
    )  # fmt: skip
    async def get_session(request: Request, monitor: MonitorDep) -> SessionInfo:
        # Public, so the dashboard can ask "am I signed in?" without a failing request.
        control = await access(monitor)
        session_id = request.cookies.get(SESSION_COOKIE)
        session = control.session(session_id) if session_id else None
        if session is None:
            return SessionInfo(name=None, role=None, signed_in=False)
        request.state.paca_principal = Principal(
            session.token.name, session.token.role.value, "session"
        )
        return SessionInfo(
            name=session.token.name, role=session.token.role.value, csrf_token=session.csrf,
            signed_in=True,
        )  # fmt: skip

    @router.delete(
        "/session", status_code=204, response_class=Response,
        **_op(read, "signOut", "End the dashboard session"),
    )  # fmt: skip
    async def sign_out(request: Request, monitor: MonitorDep) -> Response:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            (await access(monitor)).sign_out(session_id)
        reply = Response(status_code=204)
        reply.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return reply

    # ---------------------------------------------------------------- live events
    @router.get(
        "/events", response_class=StreamingResponse,
        **_op(
            read, "streamEvents", "Server-sent events: a sample of aliases and alerts a second",
            responses={200: {"content": {"text/event-stream": {}}}, 503: {"model": ErrorReply}},
        ),
    )  # fmt: skip
    async def stream_events(request: Request, monitor: MonitorDep) -> StreamingResponse:
        feed = monitor.component(LiveFeed)
        if not feed.try_open():
            raise HTTPException(503, detail="too many live streams open; retry later")
        return StreamingResponse(
            feed.stream(request, monitor),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router
