"""instrument_fastapi: one server span and the stable HTTP metrics per request, nothing doubled."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from opentelemetry import baggage
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from paca_otel import ConfigError, instrument_fastapi, testing
from paca_otel.signals.http_server import DURATION_BUCKETS, ServerMiddleware, uninstrument_fastapi
from tests.peers import free_port

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
NO_BUILTIN: Any = {"tracing": False, "metrics": False, "logs": False}


@dataclass
class Sdk:
    """SDK providers with in-memory exporters, passed explicitly (no global state)."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str, scope: str = "paca_otel.web") -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            point
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            if sm.scope.name == scope
            for metric in sm.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def scopes(self) -> set[str]:
        data = self.reader.get_metrics_data()
        return {
            sm.scope.name
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            if sm.metrics
        }


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    """Fresh tracer and meter providers recording in memory."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Sdk(spans, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def build_app(telemetry: Any = NO_BUILTIN) -> FastAPI:
    """Plain, prefixed, failing and health routes, plus a FastAPI and a Starlette mount."""
    app = FastAPI(telemetry=telemetry)
    api = APIRouter(prefix="/api")

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.include_router(api)

    @app.get("/boom")
    async def boom() -> None:
        msg = "boom"
        raise RuntimeError(msg)

    @app.get("/unavailable")
    async def unavailable() -> PlainTextResponse:
        return PlainTextResponse("later", status_code=503)

    @app.get("/baggage")
    async def read_baggage() -> dict[str, Any]:
        return {"k": baggage.get_baggage("k")}

    @app.get("/health")
    async def health() -> str:
        return "ok"

    sub = FastAPI(telemetry=telemetry)

    @sub.get("/x/{y}")
    async def sub_x(y: str) -> str:
        return y

    app.mount("/sub", sub)
    star = Starlette(routes=[Route("/s/{z}", lambda request: PlainTextResponse("s"))])
    app.mount("/star/{tenant}", star)
    return app


@pytest.fixture
async def client(sdk: Sdk) -> AsyncIterator[httpx.AsyncClient]:
    """The test app instrumented with the in-memory providers, built-in telemetry off."""
    app = build_app()
    instrument_fastapi(app, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def routes_of(points: list[Any]) -> dict[str | None, int]:
    return {p.attributes.get("http.route"): p.count for p in points}


async def test_one_server_span_with_stable_attributes(client: httpx.AsyncClient, sdk: Sdk) -> None:
    """A request makes one SERVER span named '{method} {route}' with the stable attributes."""
    response = await client.get(
        "/api/items/3?a=1&b=2", headers={"user-agent": "probe/1", "traceparent": TRACEPARENT}
    )
    assert response.status_code == 200
    [span] = sdk.finished()
    assert span.name == "GET /api/items/{item_id}"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/api/items/3",
        "url.query": "a=1&b=2",
        "http.route": "/api/items/{item_id}",
        "http.response.status_code": 200,
        "server.address": "testserver",
        "server.port": 80,
        "client.address": "127.0.0.1",
        "client.port": 123,
        "user_agent.original": "probe/1",
        "network.protocol.version": "1.1",
    }
    assert span.context is not None
    assert span.parent is not None
    assert span.context.trace_id == int(TRACEPARENT.split("-")[1], 16)
    assert span.parent.span_id == int(TRACEPARENT.split("-")[2], 16)


async def test_baggage_is_extracted_for_the_handler(client: httpx.AsyncClient) -> None:
    """W3C baggage from the request reaches the handler through the global propagators."""
    response = await client.get("/baggage", headers={"baggage": "k=v"})
    assert response.json() == {"k": "v"}


async def test_duration_histogram_and_active_requests(client: httpx.AsyncClient, sdk: Sdk) -> None:
    """http.server.request.duration (s, advised buckets, stable attributes) and active_requests."""
    await client.get("/api/items/1")
    await client.get("/api/items/2")
    [point] = sdk.points("http.server.request.duration")
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 2
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    assert 0 < point.sum < 10
    assert dict(point.attributes) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.route": "/api/items/{item_id}",
        "http.response.status_code": 200,
    }
    [active] = sdk.points("http.server.active_requests")
    assert active.value == 0
    assert dict(active.attributes) == {"http.request.method": "GET", "url.scheme": "http"}


async def test_active_requests_counts_requests_in_flight(sdk: Sdk) -> None:
    """While a request runs, http.server.active_requests reads 1; afterwards 0."""
    seen: list[int] = []
    app = build_app()

    @app.get("/slow")
    async def slow() -> str:
        seen.extend(point.value for point in sdk.points("http.server.active_requests"))
        return "done"

    instrument_fastapi(app, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/slow")
    assert seen == [1]
    assert [point.value for point in sdk.points("http.server.active_requests")] == [0]


async def test_failed_request_start_counts_no_request_in_flight(
    sdk: Sdk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An internal error while starting (a propagator that raises) serves the request
    unmeasured and leaves no request counted in http.server.active_requests."""

    def broken_extract(*args: Any, **kwargs: Any) -> Any:
        msg = "propagator bug"
        raise RuntimeError(msg)

    monkeypatch.setenv("PACA_OTEL_RAISE_INTERNAL", "0")
    monkeypatch.setattr("opentelemetry.propagate.extract", broken_extract)
    app = build_app()
    instrument_fastapi(app, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/api/items/7")).status_code == 200
    assert sdk.finished() == []
    assert sum(point.value for point in sdk.points("http.server.active_requests")) == 0


async def test_exception_is_recorded_and_sets_error_status(
    client: httpx.AsyncClient, sdk: Sdk
) -> None:
    """An unhandled exception: 500, an exception event, ERROR status and error.type '500'."""
    response = await client.get("/boom")
    assert response.status_code == 500
    [span] = sdk.finished()
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert span.events[0].attributes is not None
    assert span.events[0].attributes["exception.type"] == "RuntimeError"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "500"
    [point] = sdk.points("http.server.request.duration")
    assert point.attributes["error.type"] == "500"


async def test_exception_reaches_the_server(sdk: Sdk) -> None:
    """The middleware records the exception but re-raises it to the server as usual."""
    app = build_app()
    instrument_fastapi(app, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider)
    transport = httpx.ASGITransport(app=app)  # raises app exceptions
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        with pytest.raises(RuntimeError, match="boom"):
            await http.get("/boom")
    assert [span.name for span in sdk.finished()] == ["GET /boom"]


async def test_5xx_response_without_exception_is_an_error(
    client: httpx.AsyncClient, sdk: Sdk
) -> None:
    """A 503 sent by the handler sets ERROR status and error.type '503', no exception event."""
    await client.get("/unavailable")
    [span] = sdk.finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.events == ()
    assert span.attributes is not None
    assert span.attributes["error.type"] == "503"


async def test_unmatched_paths_share_one_series(client: httpx.AsyncClient, sdk: Sdk) -> None:
    """Unmatched paths: spans named by the method only, one histogram series without a route."""
    for path in ("/nope", "/other/1", "/x/y/z"):
        assert (await client.get(path)).status_code == 404
    assert {span.name for span in sdk.finished()} == {"GET"}
    assert routes_of(sdk.points("http.server.request.duration")) == {None: 3}


async def test_mounted_sub_apps_record_the_full_route(client: httpx.AsyncClient, sdk: Sdk) -> None:
    """Two requests to a mounted sub-app count as two, under mount + inner template."""
    await client.get("/sub/x/1")
    await client.get("/sub/x/2")
    await client.get("/star/acme/s/1")
    await client.get("/star/other/s/2")
    assert routes_of(sdk.points("http.server.request.duration")) == {
        "/sub/x/{y}": 2,
        "/star/{tenant}/s/{z}": 2,
    }
    assert [span.name for span in sdk.finished()] == ["GET /sub/x/{y}"] * 2 + [
        "GET /star/{tenant}/s/{z}"
    ] * 2


async def test_sensitive_query_parameters_are_redacted(client: httpx.AsyncClient, sdk: Sdk) -> None:
    """url.query keeps the query but redacts the semconv's signature parameters' values."""
    await client.get("/api/items/1?X-Amz-Signature=abc123&page=2")
    [span] = sdk.finished()
    assert span.attributes is not None
    assert span.attributes["url.query"] == "X-Amz-Signature=REDACTED&page=2"


async def test_method_not_allowed_keeps_the_route(client: httpx.AsyncClient, sdk: Sdk) -> None:
    """A 405 on a known path is reported under that path's route."""
    assert (await client.post("/api/items/1")).status_code == 405
    [span] = sdk.finished()
    assert span.name == "POST /api/items/{item_id}"


async def test_default_exclude_list(client: httpx.AsyncClient, sdk: Sdk) -> None:
    """Health, /metrics, the monitoring API and dashboard and the docs make no spans or metrics."""
    for path in (
        "/health",
        "/metrics",
        "/monitoring/alerts",
        "/monitoring/",
        "/docs",
        "/redoc",
        "/openapi.json",
    ):
        await client.get(path)
    assert sdk.finished() == []
    assert sdk.points("http.server.request.duration") == []
    await client.get("/api/items/1")
    assert len(sdk.finished()) == 1


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "items/1,/boom"),
        ("OTEL_PYTHON_EXCLUDED_URLS", "items/1,/boom"),
    ],
)
async def test_exclude_list_from_environment(
    sdk: Sdk, monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    """OTEL_PYTHON_FASTAPI_EXCLUDED_URLS / OTEL_PYTHON_EXCLUDED_URLS replace the default list."""
    monkeypatch.setenv(env, value)
    app = build_app()
    instrument_fastapi(app, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for path in ("/api/items/1", "/boom", "/api/items/2", "/health"):
            await http.get(path)
    assert [span.name for span in sdk.finished()] == [
        "GET /api/items/{item_id}",
        "GET /health",
    ]


async def test_excluded_requests_stay_out_of_red_figures() -> None:
    """The RED span processor (request rate, errors) never sees excluded requests."""
    from paca_otel.pipeline._spans import REDSpanProcessor

    red = REDSpanProcessor(window=60.0)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(red)
    app = build_app()
    instrument_fastapi(app, tracer_provider=tracer_provider, meter_provider=MeterProvider())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for path in ("/metrics", "/monitoring/metrics", "/health", "/api/items/1", "/boom"):
            await http.get(path)
    figures = {(stats.route, stats.requests, stats.errors) for stats in red.drain()}
    assert figures == {("/api/items/{item_id}", 1, 0), ("/boom", 1, 1), (None, 2, 1)}
    tracer_provider.shutdown()


async def test_exclude_list_in_code_wins_over_environment(
    sdk: Sdk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The excluded_urls argument takes precedence over the environment."""
    monkeypatch.setenv("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "items")
    app = build_app()
    instrument_fastapi(
        app,
        tracer_provider=sdk.tracer_provider,
        meter_provider=sdk.meter_provider,
        excluded_urls=[r"/unavailable$"],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/unavailable")
        await http.get("/api/items/1")
    assert [span.name for span in sdk.finished()] == ["GET /api/items/{item_id}"]
    assert routes_of(sdk.points("http.server.request.duration")) == {"/api/items/{item_id}": 1}


def test_bad_exclude_pattern_is_a_config_error() -> None:
    """An invalid regex fails at set-up with a ConfigError (a ValueError) naming it."""
    with pytest.raises(ConfigError, match=r"excluded_urls: '\(' is not a valid regular"):
        instrument_fastapi(build_app(), excluded_urls=["("])
    assert issubclass(ConfigError, ValueError)


def test_non_starlette_app_is_a_config_error() -> None:
    """Only Starlette apps are accepted; the message points at ServerMiddleware."""
    with pytest.raises(ConfigError, match="ServerMiddleware"):
        instrument_fastapi(object())  # type: ignore[arg-type]  # the wrong type on purpose


async def test_hooks_add_user_attributes(sdk: Sdk) -> None:
    """The request hook sees the span and scope, the response hook the response start."""

    def on_request(span: Any, scope: Any) -> None:
        span.set_attribute("app.tenant", scope["path"].split("/")[-1])

    def on_response(span: Any, scope: Any, message: Any) -> None:
        span.set_attribute("app.status_seen", message["status"])

    app = build_app()
    instrument_fastapi(
        app,
        tracer_provider=sdk.tracer_provider,
        meter_provider=sdk.meter_provider,
        request_hook=on_request,
        response_hook=on_response,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/api/items/7")
    [span] = sdk.finished()
    assert span.attributes is not None
    assert span.attributes["app.tenant"] == "7"
    assert span.attributes["app.status_seen"] == 200


async def test_failing_hook_never_breaks_the_request(sdk: Sdk) -> None:
    """A hook that raises is logged once and counted; the request and its span carry on."""

    def broken(span: Any, scope: Any) -> None:
        msg = "hook bug"
        raise ValueError(msg)

    app = build_app()
    instrument_fastapi(
        app,
        tracer_provider=sdk.tracer_provider,
        meter_provider=sdk.meter_provider,
        request_hook=broken,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/api/items/7")).status_code == 200
    assert [span.name for span in sdk.finished()] == ["GET /api/items/{item_id}"]


async def test_captured_headers_from_environment_are_sanitized(
    sdk: Sdk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headers named in OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* are recorded, redacted."""
    monkeypatch.setenv(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-tenant,x-api-key"
    )
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "content-type")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "x-api-key")
    app = build_app()
    instrument_fastapi(app, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/api/items/7", headers={"x-tenant": "acme", "x-api-key": "s3cret"})
    [span] = sdk.finished()
    attributes = dict(span.attributes or {})
    assert attributes["http.request.header.x_tenant"] == ("acme",)
    assert attributes["http.request.header.x_api_key"] == ("[REDACTED]",)
    assert attributes["http.response.header.content_type"] == ("application/json",)
    assert "s3cret" not in repr(attributes)


async def test_builtin_fastapi_telemetry_is_not_doubled(sdk: Sdk) -> None:
    """With FastAPI's built-in telemetry on (app and mounted FastAPI()), only our span and metrics.

    Guards the undocumented hook this relies on: FastAPI skipping its telemetry when the scope
    carries "fastapi.telemetry". The control half shows the built-in telemetry really is on.
    """
    builtin: Any = {
        "tracer_provider": sdk.tracer_provider,
        "meter_provider": sdk.meter_provider,
        "logs": False,
    }
    control = build_app(builtin)
    transport = httpx.ASGITransport(app=control)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/api/items/1")
    assert {span.instrumentation_scope.name for span in sdk.finished()} >= {"fastapi"}
    sdk.spans.clear()

    app = build_app(builtin)
    instrument_fastapi(app, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/api/items/1")
        await http.get("/sub/x/1")
        await http.get("/sub/x/2")
    spans = sdk.finished()
    assert [span.name for span in spans] == ["GET /api/items/{item_id}"] + ["GET /sub/x/{y}"] * 2
    assert {span.instrumentation_scope.name for span in spans} == {"paca_otel.web"}
    assert routes_of(sdk.points("http.server.request.duration")) == {
        "/api/items/{item_id}": 1,
        "/sub/x/{y}": 2,
    }
    fastapi_points = routes_of(sdk.points("http.server.request.duration", scope="fastapi"))
    assert fastapi_points == {"/api/items/{item_id}": 1}  # the control request only


async def test_routers_leave_the_matched_route_in_the_scope() -> None:
    """Starlette's and FastAPI's routers set scope['route'], which the fast path reads."""
    seen: list[Any] = []
    app = build_app()

    async def probe(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        seen.append(scope.get("route"))

    transport = httpx.ASGITransport(app=probe)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/api/items/1")
        await http.get("/star/a/s/1")
    assert [getattr(route, "path_format", None) for route in seen] == [
        "/api/items/{item_id}",
        "/s/{z}",
    ]


async def test_nested_instrumented_apps_make_one_span(sdk: Sdk) -> None:
    """An instrumented app mounted in an instrumented app: the outer one reports, once."""
    app = build_app()
    inner = FastAPI(telemetry=NO_BUILTIN)

    @inner.get("/leaf")
    async def leaf() -> str:
        return "leaf"

    app.mount("/inner", inner)
    for target in (inner, app):
        instrument_fastapi(
            target, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider
        )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/inner/leaf")
    assert [span.name for span in sdk.finished()] == ["GET /inner/leaf"]


async def test_uninstrument_restores_the_app(sdk: Sdk) -> None:
    """uninstrument_fastapi gives the app back its own class: no spans afterwards."""
    app = build_app()
    instrument_fastapi(app, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider)
    instrument_fastapi(app, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider)
    assert isinstance(app, FastAPI)
    uninstrument_fastapi(app)
    assert type(app) is FastAPI
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/api/items/1")
    assert sdk.finished() == []


async def test_plain_asgi_middleware_wraps_any_app(sdk: Sdk) -> None:
    """ServerMiddleware measures a bare Starlette app; the route still comes from the router."""
    app = Starlette(routes=[Route("/hello/{name}", lambda request: PlainTextResponse("hi"))])
    wrapped = ServerMiddleware(
        app, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider
    )
    transport = httpx.ASGITransport(app=wrapped)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/hello/you")
    assert [span.name for span in sdk.finished()] == ["GET /hello/{name}"]


async def test_configured_global_providers_are_the_default() -> None:
    """With configure()'s global providers and FastAPI's defaults (built-in telemetry on),
    one span per request, ours, and no 'fastapi' metrics."""
    with testing.capture(service_name="svc", system_metrics=False) as captured:
        app = build_app(telemetry=None)  # FastAPI's defaults: its telemetry would be on
        instrument_fastapi(app)

        @app.get("/request")
        async def endpoint(request: Request) -> str:
            return request.url.path

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await http.get("/request")
            await http.get("/sub/x/1")
        spans = captured.spans.get_finished_spans()
        assert [(span.name, span.instrumentation_scope.name) for span in spans] == [
            ("GET /request", "paca_otel.web"),
            ("GET /sub/x/{y}", "paca_otel.web"),
        ]
        data = captured.metrics.get_metrics_data()
        scopes = {
            sm.scope.name
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            if any(m.name.startswith("http.") for m in sm.metrics)
        }
        assert scopes == {"paca_otel.web"}


def test_real_uvicorn_server_reports_its_address(sdk: Sdk) -> None:
    """Under a real uvicorn on 127.0.0.1 the span carries the Host's address and port."""
    port = free_port()
    app = build_app()
    instrument_fastapi(app, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        response = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/items/5", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert response is not None
        assert response.status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    [span] = sdk.finished()
    assert span.attributes is not None
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.attributes["server.port"] == port
    assert span.attributes["client.address"] == "127.0.0.1"
    assert span.attributes["http.route"] == "/api/items/{item_id}"
