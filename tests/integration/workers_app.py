"""The app that real multi-worker servers run in ``tests/integration/test_workers.py``.

Configured entirely from the environment the test sets (``PACA_OTEL_*``: multiprocess_dir,
rules_file, webhook_url, api_tokens...), as a deployment would be. ``configure(app=...)`` and
the alerting runtime start at import, the way a module-level set-up does: under
``gunicorn --preload`` that happens once in the master and each worker rebuilds it after the
fork; under uvicorn ``--workers`` and plain gunicorn each worker imports the module itself.

Every response names the worker that served it (``x-worker-pid``), so the test can tell the
workers apart behind one shared socket. ``/work`` blocks its worker's event loop for a moment
on purpose: a busy worker stops accepting, so concurrent requests spread over all workers.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from paca_otel import configure
from paca_otel.web.api import monitoring_router

# paca-otel's start-up lines (INFO included) on stderr, where the test reads the server log.
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("%(process)d %(levelname)s %(name)s %(message)s"))
logging.getLogger("paca_otel").addHandler(_handler)
logging.getLogger("paca_otel").setLevel(logging.INFO)

app = FastAPI()
app.include_router(monitoring_router(), prefix="/monitoring")


@app.middleware("http")
async def name_the_worker(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Tag each response with the pid of the worker that served it."""
    response = await call_next(request)
    response.headers["x-worker-pid"] = str(os.getpid())
    return response


@app.get("/work")
async def work() -> dict[str, int]:
    """One unit of traffic; holds the event loop 20 ms so the next connection goes elsewhere."""
    time.sleep(0.02)
    return {"pid": os.getpid()}


@app.get("/whoami")
def whoami() -> dict[str, object]:
    """This worker's view of its own telemetry: identity, threads, handle."""
    attributes = telemetry.resource.attributes
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "resource_pid": attributes.get("process.pid"),
        "instance": attributes.get("service.instance.id"),
        "threads": sorted(t.name for t in threading.enumerate()),
        "shut_down": telemetry.is_shutdown,
    }


telemetry = configure(app=app)
telemetry.runtime.attach(telemetry)
