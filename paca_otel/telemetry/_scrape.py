"""Where the Prometheus exposition is served: a route on the user's app, or a standalone server.

Both serve the one registry :func:`~paca_otel.telemetry._providers._metric_consumers` builds
over the shared collection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from paca_otel.config import PacaOtelSettings

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from starlette.requests import Request
    from starlette.responses import Response

logger = logging.getLogger("paca_otel")


def _scrape_endpoint(
    registry_of: Callable[[], CollectorRegistry | None], settings: PacaOtelSettings
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving ``registry_of()`` at an exact path (a mount would redirect).

    A scrape runs every metric callback (psutil included), so it runs in a worker thread. The
    format is negotiated by prometheus_client; paca-otel's families are written by
    :func:`~paca_otel.pipeline._promtext.exposition` (the cost of a scrape is there).
    With ``metrics_auth`` it wants ``Authorization: Bearer <token>`` of any role (401, or 429
    after too many failures from one address); Prometheus sends it with
    ``authorization: {credentials: <token>}`` in its scrape config.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    from paca_otel.pipeline._promtext import exposition

    guard = None
    if settings.metrics_auth:
        from paca_otel.security import (
            Authenticator,
            FailedAuthLimiter,
            TokenRegistry,
            parse_api_tokens,
        )

        limiter = FailedAuthLimiter(
            limit=settings.auth_failure_limit, window=settings.auth_failure_window
        )
        guard = Authenticator(TokenRegistry(parse_api_tokens(settings.api_tokens)), limiter)

    async def scrape(request: Request) -> Response:
        if guard is not None:
            client = request.client.host if request.client is not None else "unknown"
            result = guard.authenticate(request.headers.get("authorization"), client)
            if not result.ok:
                headers = {"WWW-Authenticate": 'Bearer realm="metrics"'}
                if result.retry_after:
                    headers = {"Retry-After": str(int(result.retry_after) + 1)}
                return Response("unauthorized\n", status_code=result.outcome.status,
                                media_type="text/plain", headers=headers)  # fmt: skip
        registry = registry_of() or CollectorRegistry()
        accept = request.headers.get("accept", "")
        body, content_type = await run_in_threadpool(exposition, registry, accept)
        return Response(body, media_type=content_type)

    return scrape


def _start_prometheus(
    settings: PacaOtelSettings, registry: CollectorRegistry
) -> tuple[WSGIServer, threading.Thread] | None:
    from prometheus_client import start_http_server

    try:
        return start_http_server(
            settings.prometheus_port, addr=settings.prometheus_host, registry=registry
        )
    except OSError as exc:
        # A busy port must not stop the application from starting (principle 4).
        logger.warning(
            "paca-otel: cannot serve Prometheus metrics on %s:%s (%s); scrape endpoint disabled",
            settings.prometheus_host,
            settings.prometheus_port,
            exc,
        )
        return None
