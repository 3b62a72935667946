"""``paca-otel serve``: the monitoring API and dashboard as an app of their own.

For a process that has no FastAPI app to mount :func:`~paca_otel.web.api.monitoring_router`
on (a worker, a batch job's sidecar): this app configures paca-otel from the settings, starts
system metrics and rule evaluation, and serves the API under ``prefix`` on 127.0.0.1 unless
told otherwise. CORS is off unless ``cors_origins`` lists origins; a host app mounting the
router adds Starlette's ``CORSMiddleware`` itself when it wants it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from paca_otel.web.api import monitoring_router

__all__ = ["create_monitoring_app", "serve"]

logger = logging.getLogger("paca_otel.web")


def create_monitoring_app(*, prefix: str = "/monitoring", **settings: Any) -> FastAPI:
    """An app serving only the monitoring API and dashboard; ``settings`` go to ``configure``."""
    from paca_otel._manager import MonitoringManager

    monitor: MonitoringManager

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await monitor.start()
        await monitor.start_monitoring()
        telemetry = monitor.telemetry
        if telemetry is not None and not telemetry.settings.api_tokens:
            logger.warning(
                "paca-otel serve: no api_tokens configured, so every route but %s/health "
                "answers 401; create one with `paca-otel token create --name NAME --role admin`",
                prefix,
            )
        yield
        await monitor.stop()

    app = FastAPI(title="paca-otel monitoring", lifespan=lifespan)
    monitor = MonitoringManager(app=app, **settings)
    from paca_otel.config import load_settings

    origins = list(load_settings(**settings).cors_origins)
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-CSRF-Token"],
        )
    app.include_router(monitoring_router(), prefix=prefix)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{prefix}/")

    return app


def serve(*, host: str = "127.0.0.1", port: int = 8001, prefix: str = "/monitoring") -> int:
    """Run :func:`create_monitoring_app` under uvicorn until interrupted; the exit code."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"paca-otel: cannot serve on {host}:{port}: {reason}", file=sys.stderr)
        return 2
    bound_host, bound_port = sock.getsockname()[:2]
    app = create_monitoring_app(prefix=prefix.rstrip("/") or "/monitoring")
    base = (
        f"http://[{bound_host}]:{bound_port}"
        if family == socket.AF_INET6
        else (f"http://{bound_host}:{bound_port}")
    )
    print(f"paca-otel monitoring API on {base}{prefix}/  (docs: {base}/docs)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
    return 0 if server.started else 1
