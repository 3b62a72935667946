"""The semconv values read from an ASGI request: server address, query, headers, routes."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from paca_otel.signals._http_semconv import (
    ASGI_GETTER,
    exception_type,
    resolve_route,
    server_address,
    url_query,
)


@pytest.mark.parametrize(
    ("host", "scope", "expected"),
    [
        (b"example.com:8443", {"scheme": "https"}, ("example.com", 8443)),
        (b"example.com", {"scheme": "https"}, ("example.com", 443)),
        (b"example.com", {"scheme": "http"}, ("example.com", 80)),
        (b"[::1]:8000", {}, ("::1", 8000)),
        (b"[::1]", {"scheme": "http"}, ("::1", 80)),
        (b"example.com:bad", {}, ("example.com", None)),
        (b"[::1", {}, (None, None)),
        (None, {"server": ("10.0.0.1", 9000)}, ("10.0.0.1", 9000)),
        (None, {}, (None, None)),
    ],
)
def test_server_address_from_host_header_or_socket(
    host: bytes | None, scope: dict[str, object], expected: tuple[str | None, int | None]
) -> None:
    """server.address/port come from Host (default port by scheme), else the socket."""
    assert server_address(host, scope) == expected


def test_url_query_redacts_only_sensitive_values() -> None:
    """Plain queries pass through untouched; signature values become REDACTED."""
    assert url_query(b"a=1&b=%20x") == "a=1&b=%20x"
    assert url_query(b"sig=s3cret&a=1") == "sig=REDACTED&a=1"
    assert "s3cret" not in url_query(b"AWSAccessKeyId=k&Signature=s3cret")


def test_getter_reads_raw_asgi_headers() -> None:
    """Header lookups are case-insensitive; repeated baggage headers are joined."""
    headers = [(b"traceparent", b"00-x"), (b"baggage", b"a=1"), (b"baggage", b"b=2")]
    assert ASGI_GETTER.get(headers, "TraceParent") == ["00-x"]
    assert ASGI_GETTER.get(headers, "baggage") == ["a=1,b=2"]
    assert ASGI_GETTER.get(headers, "tracestate") is None
    assert ASGI_GETTER.keys(headers) == ["traceparent", "baggage", "baggage"]


def test_exception_type_is_qualified_outside_builtins() -> None:
    """error.type names builtins bare and other exceptions by module and class."""
    assert exception_type(ValueError()) == "ValueError"
    assert exception_type(ConnectionError()) == "ConnectionError"
    assert exception_type(json.JSONDecodeError("x", "", 0)) == "json.decoder.JSONDecodeError"


def test_resolve_route_joins_mount_templates() -> None:
    """A request through mounts resolves to the joined template; a routeless app keeps {path}."""

    async def asgi(scope: object, receive: object, send: object) -> None:
        return None

    inner = FastAPI()

    @inner.get("/items/{item_id}")
    async def item(item_id: int) -> int:
        return item_id

    app = Starlette(
        routes=[
            Route("/plain", lambda request: PlainTextResponse("")),
            Mount("/t/{tenant}", app=inner),
            Mount("/static", app=asgi),
        ]
    )

    def scope(path: str) -> dict[str, object]:
        return {"type": "http", "path": path, "root_path": "", "method": "GET"}

    assert resolve_route(app.routes, scope("/plain")) == "/plain"
    assert resolve_route(app.routes, scope("/t/acme/items/3")) == "/t/{tenant}/items/{item_id}"
    assert resolve_route(app.routes, scope("/static/css/site.css")) == "/static/{path}"
    assert resolve_route(app.routes, scope("/nowhere")) is None
