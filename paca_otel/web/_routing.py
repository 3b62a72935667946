"""The monitoring API's route class: body size limit, bounded error replies, and the audit record.

A router cannot install middleware or exception handlers on the host app, so its routes do the
work themselves (FastAPI's documented ``route_class`` extension point):

- **Body limit.** A ``Content-Length`` past ``body_limit`` is a 413 before anything is read; a
  chunked body is counted as it streams and cut off at the limit with a 413 too.
- **Error replies never echo large inputs.** FastAPI's 422 repeats each bad input; here an
  echoed input longer than :data:`MAX_ECHO` characters is replaced by a short note, and NaN or
  infinities (which Python's JSON reader accepts and Starlette refuses to encode) are strings.
- **Audit.** Once the status is known, one :class:`~paca_otel.security.AuditRecord` is written
  for the access (who, what, target, result, status, client), whatever the outcome.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException  # FastAPI's own subclasses it; both caught
from starlette.types import Message

from paca_otel._internal import drops
from paca_otel.security import AuditRecord
from paca_otel.web._deps import access, client_address, get_monitor

__all__ = ["MAX_ECHO", "UNAUDITED", "BodyTooLargeError", "GuardedRoute", "bounded_errors"]

MAX_ECHO: Final = 200
"""Longest input (in characters of its JSON) a 422 reply repeats."""

#: Operations not audited: liveness probes and the page's static files (no data, frequent).
UNAUDITED: Final = frozenset({"health", "legacyHealth", "dashboard", "staticAsset"})


_RESULTS: Final = {404: "not_found", 409: "conflict", 413: "too_large", 422: "invalid_input"}


class BodyTooLargeError(Exception):
    """The request body passed ``body_limit``."""


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def bounded_errors(errors: Any) -> list[Any]:
    """FastAPI's validation errors, each echoed ``input`` capped and made JSON-safe."""
    out: list[Any] = []
    for error in _finite(jsonable_encoder(errors)):
        if isinstance(error, dict):
            if "ctx" in error and len(repr(error["ctx"])) > MAX_ECHO:
                error.pop("ctx")
            if "input" in error and len(repr(error["input"])) > MAX_ECHO:
                error["input"] = f"<{type(error['input']).__name__} not echoed: too large>"
            if isinstance(error.get("msg"), str) and len(error["msg"]) > 4 * MAX_ECHO:
                error["msg"] = error["msg"][: 4 * MAX_ECHO] + "…"
        out.append(error)
    return out


class _Counted:
    """The body stream of one request, cut off past ``limit`` bytes."""

    def __init__(self, request: Request, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self.exceeded = False
        self._receive = request.receive
        self.request = Request(request.scope, self.receive)

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                self.exceeded = True  # FastAPI turns the error into a 400; the flag says 413
                raise BodyTooLargeError
        return message


def _too_large(limit: int) -> JSONResponse:
    detail = f"request body larger than the body_limit setting ({limit} bytes)"
    return JSONResponse(status_code=413, content={"detail": detail})


class GuardedRoute(APIRoute):
    """An APIRoute with the body limit, bounded 422 replies and the audit record."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        action = self.operation_id or self.name
        audited = action not in UNAUDITED

        async def route(request: Request) -> Response:
            monitor = get_monitor(request)
            settings = monitor.settings()
            limit = settings.body_limit
            status = 500
            counted: _Counted | None = None
            try:
                if request.method not in ("GET", "HEAD", "OPTIONS", "DELETE"):
                    declared = request.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > limit:
                        status = 413
                        return _too_large(limit)
                    counted = _Counted(request, limit)
                    request = counted.request
                try:
                    response = await handler(request)
                except (BodyTooLargeError, HTTPException):
                    if counted is None or not counted.exceeded:
                        raise
                    status = 413
                    return _too_large(limit)
                except RequestValidationError as exc:
                    status = 422
                    return JSONResponse(
                        status_code=422, content={"detail": bounded_errors(exc.errors())}
                    )
                status = response.status_code
                return response
            except HTTPException as exc:
                status = exc.status_code
                raise

            finally:
                if audited:
                    await _audit(request, monitor, action, status)

        return route


async def _audit(request: Request, monitor: Any, action: str, status: int) -> None:
    principal = getattr(request.state, "paca_principal", None)
    result = getattr(request.state, "paca_auth_result", None)
    if result is None:
        result = (
            "ok"
            if status < 400
            else {409: "conflict", 413: "too_large", 422: "invalid_input"}.get(status, "error")
        )
    target = getattr(request.state, "paca_target", None) or "/".join(
        str(v) for v in request.path_params.values()
    )
    record = AuditRecord(
        action=action,
        target=target,
        result=str(result),
        client=client_address(request),
        token_name=getattr(principal, "name", None),
        role=getattr(principal, "role", None),
        status=status,
    )
    try:
        (await access(monitor)).audit.record(record)
    except Exception:  # auditing must never turn a reply into a 500
        drops.add("audit_record")
