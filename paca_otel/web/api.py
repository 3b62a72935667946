"""The monitoring API mounted on a FastAPI app: current metrics, alerts, and the dashboard page.

Routes read the process's live configuration at request time, so the router can be mounted
before ``configure()`` runs. Collections run in a worker thread to keep the event loop free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from enum import Enum
from importlib import resources
from typing import TYPE_CHECKING, Any, get_origin

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, create_model

from paca_otel.alerting.rules import Rule
from paca_otel.errors import PacaOtelError
from paca_otel.setup import Telemetry, get_telemetry
from paca_otel.snapshot import MetricsSnapshot


def _telemetry() -> Telemetry:
    telemetry = get_telemetry()
    if telemetry is None:
        raise HTTPException(status_code=503, detail="paca-otel is not configured")
    return telemetry


#: Rule fields a rule file's group sets; the API has no groups.
_FILE_ONLY_FIELDS = frozenset({"group", "interval"})
#: Request-size bounds of the API (a rule's own validation has no length limit on them).
_MAX_LENGTH = {"condition": 2000, "clear": 2000}


def _wire_type(annotation: Any) -> Any:
    """The JSON type the API takes for a :class:`Rule` field of type ``annotation``.

    Rule reads more than its field types say: durations as ``"5m"``, severities as ``"crit"``,
    label values as numbers, one channel as a string; the wire type allows those and leaves
    the checking to Rule. Anything else keeps Rule's own type (``str``, ``Literal``...).
    """
    if annotation is float:
        return float | str
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return str
    if get_origin(annotation) is dict:
        return dict[str, Any]
    if get_origin(annotation) is list:
        return str | list[str]
    return annotation


def _rule_payload_model() -> type[BaseModel]:
    """The API's rule body, derived from :class:`Rule` so the fields are listed once.

    Every field of ``Rule`` (but the file-only ``group``/``interval``) is accepted under its
    own name (``for``, ``labels``, ``no_data``...), plus the seed's ``action`` for
    ``channels``. ``Rule`` checks the values (a bad one is a 422 naming the field); a field
    left out takes ``Rule``'s default.
    """
    fields: dict[str, Any] = {}
    for name, info in Rule.model_fields.items():
        if name in _FILE_ONLY_FIELDS:
            continue
        default: Any = ... if info.is_required() else None
        annotation = _wire_type(info.annotation)
        if not info.is_required():
            annotation = annotation | None
        field = Field(default=default, alias=info.alias, max_length=_MAX_LENGTH.get(name))
        fields[name] = (annotation, field)
    fields["action"] = (str | list[str] | None, Field(default=None))
    return create_model(
        "RulePayload",
        __config__=ConfigDict(extra="forbid", populate_by_name=True),
        __doc__="A rule as the API accepts it: Rule's fields, plus the seed's ``action``.",
        **fields,
    )


if TYPE_CHECKING:
    RulePayload = BaseModel
else:
    RulePayload = _rule_payload_model()


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v.value if isinstance(v, Enum) else v for k, v in data.items()}


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as strings: JSON (and Starlette) refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class _Route(APIRoute):
    """Answers an invalid request with the usual 422 even when it echoes NaN or Infinity.

    Python's JSON reader accepts ``NaN``/``Infinity`` literals; FastAPI's default handler
    echoes the bad input back and Starlette refuses to encode it, so the client would get a 500.
    A router cannot install exception handlers on the host app, so its routes do it.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                detail = _finite(jsonable_encoder(exc.errors()))
                return JSONResponse(status_code=422, content={"detail": detail})

        return route


def monitoring_router() -> APIRouter:
    """Routes under the prefix the caller chooses (the demo uses ``/monitoring``)."""
    router = APIRouter(tags=["monitoring"], route_class=_Route)

    @router.get("/metrics", response_model=MetricsSnapshot)
    async def current() -> MetricsSnapshot:
        from paca_otel.manager import current_metrics

        return await run_in_threadpool(current_metrics, _telemetry())

    @router.get("/alerts")
    async def alerts() -> list[dict[str, Any]]:
        from paca_otel.manager import AlertManager

        return [_jsonable(asdict(a)) for a in AlertManager().get_active_alerts()]

    @router.get("/alerts/history")
    async def history(limit: int = 100) -> list[dict[str, Any]]:
        from paca_otel.manager import AlertManager

        return [e.to_dict() for e in AlertManager().get_alert_history(max(1, min(limit, 1000)))]

    @router.get("/rules")
    async def rules() -> list[dict[str, Any]]:
        from paca_otel.manager import AlertManager, rule_payload

        return [rule_payload(rule) for rule in AlertManager().rules]

    @router.post("/rules", status_code=201)
    async def add_rule(payload: RulePayload) -> dict[str, Any]:
        from paca_otel.manager import AlertManager, rule_payload

        data = payload.model_dump(exclude_unset=True)
        if "action" in data and "channels" in data:
            error = {
                "type": "value_error",
                "loc": ["body"],
                "msg": "give either action or channels, not both",
            }
            raise HTTPException(status_code=422, detail=[error])
        if "action" in data:
            data["channels"] = data.pop("action")
        try:
            rule = await run_in_threadpool(AlertManager().add_rule_data, data)
        except PacaOtelError as exc:
            # FastAPI's own 422 shape, so clients parse one format whoever found the error
            error = {"type": "value_error", "loc": ["body"], "msg": str(exc)}
            raise HTTPException(status_code=422, detail=[error]) from None
        return rule_payload(rule)

    @router.get("/health")
    async def health() -> dict[str, Any]:
        telemetry = get_telemetry()
        return {"status": "ok" if telemetry is not None else "unconfigured"}

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        page = resources.files("paca_otel.web").joinpath("static/dashboard.html").read_text()
        return HTMLResponse(page)

    return router
