"""Child process for the conformance test: one instrumentation, fixed requests, JSON out.

Run as ``python -m tests.signals.conformance_child contrib|paca``. A child per side because
contrib reads ``OTEL_SEMCONV_STABILITY_OPT_IN`` once per process.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.responses import PlainTextResponse

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/items/3?a=1&b=2", {"user-agent": "probe/1", "traceparent": TRACEPARENT}),
    ("GET", "/items/4", {}),
    ("GET", "/nope", {}),
    ("GET", "/boom", {}),
    ("GET", "/unavailable", {}),
    ("POST", "/items/3", {}),
    ("PUT", "/created", {"user-agent": "probe/2"}),
]


def build_app() -> FastAPI:
    """The same routes for both sides; FastAPI's built-in telemetry off."""
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        msg = "boom"
        raise RuntimeError(msg)

    @app.get("/unavailable")
    async def unavailable() -> PlainTextResponse:
        return PlainTextResponse("later", status_code=503)

    @app.put("/created", status_code=201)
    async def created() -> dict[str, bool]:
        return {"ok": True}

    return app


async def run(mode: str) -> dict[str, Any]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    app = build_app()
    if mode == "contrib":
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            exclude_spans=["receive", "send"],
        )
    else:
        from paca_otel import instrument_fastapi

        instrument_fastapi(app, tracer_provider=tracer_provider, meter_provider=meter_provider)

    async def on_port_80(scope: Any, receive: Any, send: Any) -> None:
        # What a server on port 80 puts in the scope (httpx leaves the port None). Contrib
        # glues a non-80 port into server.address ("host:8000"); we follow the semconv
        # (address and port apart), so the comparison uses port 80.
        scope["server"] = ("testserver", 80)
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=on_port_80, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for method, path, headers in REQUESTS:
            await http.request(method, path, headers=headers)
    data = reader.get_metrics_data()
    metrics: dict[str, list[dict[str, Any]]] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                metrics[metric.name] = [
                    {"unit": metric.unit, "attributes": dict(point.attributes)}
                    for point in metric.data.data_points
                ]
    return {
        "spans": [
            {
                "name": span.name,
                "kind": span.kind.name,
                "status": span.status.status_code.name,
                "events": [event.name for event in span.events],
                "attributes": dict(span.attributes or {}),
            }
            for span in spans.get_finished_spans()
        ],
        "metrics": metrics,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(sys.argv[1]))))
