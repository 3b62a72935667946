"""Server-side HTTP telemetry for FastAPI/Starlette apps: one span and two instruments per request.

``instrument_fastapi(app)`` is paca-otel's own lean ASGI middleware. Why not contrib's
``FastAPIInstrumentor``: measured per request it costs about 6x an uninstrumented app
(receive/send child spans, old and new semconv dicts rebuilt per request, a linear route scan
before every request), where the budget of a monitoring library is about 2x. This module
records the same names and stable-semconv attributes (a conformance test runs both side by
side), with these decisions taken once, at set-up:

- tracer and instruments are created once; per-route attribute dicts and span names are
  built on first sight and reused (dict inserts only, no lock: a race builds an equal dict
  twice);
- ``http.server.active_requests`` is an observable up-down counter over plain ints, so a
  request makes one SDK measurement (the duration), not three;
- the span ends when the app returns (background tasks included, as contrib does); the
  duration is recorded while the span is still current, so exemplars can link to it;
- the route comes from ``scope["route"]``, which Starlette's and FastAPI's routers set when
  they match; only requests that went through a mount (their ``root_path`` grew) resolve
  the full template through the public ``matches()`` API, cached per mount path;
- one exclude list (regexes searched in ``scheme://host/path``, the semantics of
  ``opentelemetry.util.http.get_excluded_urls``) keeps a request out of spans and metrics,
  and so out of the RED figures and alerts built from them; its decision is remembered per
  (scheme, Host, path) in a bounded memo (``_http_options.ExcludedUrls``);
- at the first request the start-up heap is frozen out of the cyclic GC
  (``signals/_gcfreeze.py``): full collections of a FastAPI heap pause 25-60 ms, and the spans
  waiting for export would otherwise trigger them.

Websocket and lifespan scopes pass through untouched.

The middleware wraps the app *outside* FastAPI's own entry point by giving the instance a
subclass whose ``__call__`` runs the middleware first (``uninstrument_fastapi`` restores the
class). Being outermost lets it see the 500 that Starlette's ``ServerErrorMiddleware`` sends
and lets it switch off FastAPI's built-in telemetry for the request: FastAPI (0.165+) skips
its native spans and metrics — in the app and in every ``FastAPI()`` mounted under it — when
the scope already carries ``"fastapi.telemetry"``, the marker FastAPI itself sets for
excluded requests. That key is not a documented API, so
``tests/signals/test_http_server.py::test_builtin_fastapi_telemetry_is_not_doubled`` fails loudly
if a FastAPI release stops honouring it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextvars import Token
from time import perf_counter
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from paca_otel._internal import drops, raise_internal, warn_once
from paca_otel._version import __version__
from paca_otel.errors import ConfigError
from paca_otel.signals._gcfreeze import freeze_startup_heap
from paca_otel.signals._http_options import (
    DEFAULT_EXCLUDED_URLS,
    ENV_CAPTURE_REQUEST,
    ENV_CAPTURE_RESPONSE,
    ENV_SANITIZE,
    exclude_list,
    header_list,
)
from paca_otel.signals._http_semconv import (
    ASGI_GETTER,
    decoded_headers,
    exception_type,
    resolve_route,
    route_template,
    server_address,
    url_query,
)

if TYPE_CHECKING:  # imported when instrumenting: `import paca_otel` stays light
    from starlette.applications import Starlette

__all__ = [
    "DEFAULT_EXCLUDED_URLS",
    "DURATION_BUCKETS",
    "RequestHook",
    "ResponseHook",
    "ServerMiddleware",
    "instrument_fastapi",
    "uninstrument_fastapi",
]

_logger = logging.getLogger("paca_otel.web")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RequestHook = Callable[[Span, Scope], None]
"""Called with the server span and the ASGI scope when the request starts."""
ResponseHook = Callable[[Span, Scope, Message], None]
"""Called with the server span, the scope and the ``http.response.start`` message."""


DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""The semconv's advised boundaries for ``http.server.request.duration`` (seconds)."""

_SCHEMA_URL = "https://opentelemetry.io/schemas/1.21.0"  # the one contrib's http mode uses
_HANDLED = "paca_otel.server_span"  # scope marker: an outer instrumented app owns this request
_FASTAPI_TELEMETRY = "fastapi.telemetry"  # FastAPI skips its built-in telemetry when present
_METHODS = "CONNECT DELETE GET HEAD OPTIONS PATCH POST PUT QUERY TRACE"
_KNOWN_METHODS = {method: method for method in _METHODS.split()}
_CACHE_LIMIT = 4096  # attribute sets and mount routes remembered; beyond, built per request


class ServerMiddleware:
    """The ASGI middleware behind ``instrument_fastapi``; wraps any ASGI app the same way.

    Args:
        app: the ASGI app to measure.
        routes_owner: the app whose ``routes`` resolve mounted routes (defaults to ``app``
            when it has ``routes``).
        See ``instrument_fastapi`` for the rest.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        excluded_urls: str | Iterable[str] | None = None,
        request_hook: RequestHook | None = None,
        response_hook: ResponseHook | None = None,
        capture_request_headers: Iterable[str] | None = None,
        capture_response_headers: Iterable[str] | None = None,
        sanitize_headers: Iterable[str] | None = None,
        routes_owner: Any = None,
        gc_freeze: bool = True,
    ) -> None:
        from opentelemetry.propagate import extract
        from opentelemetry.util.http import (
            SanitizeValue,
            get_custom_headers,
            normalise_request_header_name,
            normalise_response_header_name,
        )

        self._extract = extract  # the global propagators, looked up per request
        self._request_header_name = normalise_request_header_name
        self._response_header_name = normalise_response_header_name
        self._app = app
        self._routes_owner = routes_owner if routes_owner is not None else app
        self._excluded = exclude_list(excluded_urls)
        tracer = trace.get_tracer(
            "paca_otel.web", __version__, tracer_provider, schema_url=_SCHEMA_URL
        )
        self._tracer = tracer
        self._tracing = not isinstance(tracer, trace.NoOpTracer)
        meter = metrics.get_meter("paca_otel.web", __version__, meter_provider, _SCHEMA_URL)
        self._duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        # Counted in plain ints and observed at collection: two SDK measurements per
        # request (and their re-aggregation on every reader) saved; exported the same way,
        # as a non-monotonic cumulative sum.
        self._active: dict[tuple[str, str], _Active] = {}
        meter.create_observable_up_down_counter(
            "http.server.active_requests",
            callbacks=[self._observe_active],
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        self._request_hook = request_hook
        self._response_hook = response_hook
        self._capture_request = header_list(capture_request_headers, ENV_CAPTURE_REQUEST)
        self._capture_response = header_list(capture_response_headers, ENV_CAPTURE_RESPONSE)
        self._sanitize = SanitizeValue(
            list(sanitize_headers)
            if sanitize_headers is not None
            else get_custom_headers(ENV_SANITIZE)
        )
        self.on_response = bool(response_hook or self._capture_response)
        self._freeze_pending = gc_freeze  # see signals/_gcfreeze.py: once, at the first request
        self._duration_attrs: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}
        self._span_names: dict[tuple[str, str | None], str] = {}
        self._mount_routes: dict[tuple[str, int], str | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Measure one HTTP request; other scopes and nested instrumented apps pass through."""
        if scope["type"] != "http" or _HANDLED in scope:
            await self._app(scope, receive, send)
            return
        scope[_HANDLED] = True
        scope[_FASTAPI_TELEMETRY] = None
        if self._freeze_pending:
            self._freeze_pending = False
            freeze_startup_heap()
        try:
            request = self._start(scope, send)
        except Exception as exc:
            _internal_error("request start", exc)
            request = None
        if request is None:
            await self._app(scope, receive, send)
            return
        error: BaseException | None = None
        try:
            await self._app(scope, receive, request.send_status)
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                self._finish(request, error)
            except Exception as exc:
                _internal_error("request end", exc)
            finally:
                if request.token is not None:
                    otel_context.detach(request.token)
                request.active.value -= 1

    def _start(self, scope: Scope, send: Send) -> _Request | None:
        """Start measuring, or None when the request is excluded."""
        host = user_agent = None
        headers = scope["headers"]
        for name, value in headers:
            if name == b"host":
                host = value
            elif name == b"user-agent":
                user_agent = value
        scheme = scope.get("scheme") or "http"
        if self._excluded is not None and self._excluded.request_disabled(scheme, host, scope):
            return None
        raw_method = scope["method"]
        method = _KNOWN_METHODS.get(raw_method) or _other_method(raw_method)
        request = _Request(self, scope, send, method, scheme)
        version = request.version = scope.get("http_version")
        request.root_path = scope.get("root_path", "")
        if self._tracing:
            parent = self._extract(headers, getter=ASGI_GETTER)
            attributes: dict[str, Any] = {
                "http.request.method": method,
                "url.scheme": scheme,
                "url.path": scope["path"],
            }
            if raw_method != method:
                attributes["http.request.method_original"] = raw_method
            query = scope.get("query_string")
            if query:
                attributes["url.query"] = url_query(query)
            address, port = server_address(host, scope)
            if address:
                attributes["server.address"] = address
                if port is not None:
                    attributes["server.port"] = port
            client = scope.get("client")
            if client:
                attributes["client.address"] = client[0]
                attributes["client.port"] = client[1]
            if user_agent is not None:
                attributes["user_agent.original"] = user_agent.decode("latin-1")
            if version:
                attributes["network.protocol.version"] = version
            if self._capture_request:
                attributes.update(
                    self._sanitize.sanitize_header_values(
                        decoded_headers(headers),
                        self._capture_request,
                        self._request_header_name,
                    )
                )
            span = request.span = self._tracer.start_span(
                "HTTP" if method == "_OTHER" else method,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
            )
            request.token = otel_context.attach(trace.set_span_in_context(span, parent))
            if self._request_hook is not None and span.is_recording():
                _call_hook(self._request_hook, span, scope)
        # Counted last, once nothing above can raise: a failed start counts no request.
        active = self._active.get((method, scheme))
        if active is None:
            active = self._new_active(method, scheme)
        active.value += 1
        request.active = active
        request.start = perf_counter()
        return request

    def response_started(self, span: Span, scope: Scope, message: Message) -> None:
        """Response headers and the response hook, on ``http.response.start``."""
        if not span.is_recording():
            return
        try:
            if self._capture_response:
                span.set_attributes(
                    self._sanitize.sanitize_header_values(
                        decoded_headers(message.get("headers") or ()),
                        self._capture_response,
                        self._response_header_name,
                    )
                )
        except Exception as exc:
            _internal_error("response headers", exc)
        if self._response_hook is not None:
            _call_hook(self._response_hook, span, scope, message)

    def _finish(self, request: _Request, error: BaseException | None) -> None:
        """Name and close the span and record the duration, while the span is current."""
        elapsed = perf_counter() - request.start
        status = request.status
        method = request.method
        route = self._route(request.scope, request.root_path, status)
        if status is None:
            error_type = exception_type(error) if error is not None else "_OTHER"
        elif status >= 500:
            error_type = str(status)
        elif error is not None:
            error_type = exception_type(error)
        else:
            error_type = None
        key = (method, request.scheme, request.version, route, status, error_type)
        cached = self._duration_attrs.get(key)
        if cached is None:
            cached = self._cache_duration(key)
        attributes, span_attributes = cached
        span = request.span
        if span is not None and span.is_recording():
            name = self._span_names.get((method, route))
            if name is None:
                name = self._cache_name(method, route)
            span.update_name(name)
            span.set_attributes(span_attributes)
            if isinstance(error, Exception):
                span.record_exception(error)
            if error_type is not None:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__ if error else None))
        self._duration.record(elapsed, attributes)
        if span is not None:
            span.end()

    def _route(self, scope: Scope, root_path: str, status: int | None) -> str | None:
        """The route template that served the request; None groups unmatched requests."""
        matched = scope.get("route")
        final_root = scope.get("root_path", "")
        if final_root == root_path and matched is not None:
            return route_template(matched)
        routes = getattr(self._routes_owner, "routes", None)
        if routes is None:
            return route_template(matched) if matched is not None else None
        probe = dict(scope)
        probe["root_path"] = root_path
        if final_root == root_path:
            # No router left a route (404, a trailing-slash redirect): scan, rarely, uncached.
            return None if status == 404 else resolve_route(routes, probe)
        # Through a mount: the template depends only on the mount path and the inner route.
        key = (final_root, id(matched))
        if key in self._mount_routes:
            return self._mount_routes[key]
        template = resolve_route(routes, probe)
        if len(self._mount_routes) < _CACHE_LIMIT:
            self._mount_routes[key] = template
        return template

    def _new_active(self, method: str, scheme: str) -> _Active:
        active = _Active({"http.request.method": method, "url.scheme": scheme})
        if len(self._active) < _CACHE_LIMIT:
            self._active[(method, scheme)] = active
        return active

    def _observe_active(self, options: CallbackOptions) -> list[Observation]:
        """The ``http.server.active_requests`` callback: one observation per attribute set."""
        return [Observation(a.value, a.attributes) for a in list(self._active.values())]

    def _cache_duration(self, key: tuple[Any, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The histogram's attribute set and the attributes the span lacks until the end."""
        method, scheme, version, route, status, error_type = key
        outcome: dict[str, Any] = {}
        if route is not None:
            outcome["http.route"] = route
        if status is not None:
            outcome["http.response.status_code"] = status
        if error_type is not None:
            outcome["error.type"] = error_type
        attributes: dict[str, Any] = {"http.request.method": method, "url.scheme": scheme}
        if version:
            attributes["network.protocol.version"] = version
        attributes.update(outcome)
        if len(self._duration_attrs) < _CACHE_LIMIT:
            self._duration_attrs[key] = (attributes, outcome)
        return attributes, outcome

    def _cache_name(self, method: str, route: str | None) -> str:
        verb = "HTTP" if method == "_OTHER" else method
        name = f"{verb} {route}" if route is not None else verb
        if len(self._span_names) < _CACHE_LIMIT:
            self._span_names[(method, route)] = name
        return name


class _Active:
    """Requests in flight for one attribute set.

    Changed only on the event-loop thread that serves the request (``+=`` on an int: no
    lock); read by the metric callback.
    """

    __slots__ = ("attributes", "value")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.value = 0


_NOT_COUNTED = _Active({})  # placeholder until a request is counted


class _Request:
    """One request's measurement state; ``send_status`` is the ``send`` the app gets."""

    __slots__ = (
        "active",
        "method",
        "middleware",
        "root_path",
        "scheme",
        "scope",
        "send",
        "span",
        "start",
        "status",
        "token",
        "version",
    )

    def __init__(
        self, middleware: ServerMiddleware, scope: Scope, send: Send, method: str, scheme: str
    ) -> None:
        self.middleware = middleware
        self.scope = scope
        self.send = send
        self.method = method
        self.scheme = scheme
        self.version: str | None = None
        self.root_path = ""
        self.active = _NOT_COUNTED
        self.span: Span | None = None
        self.token: Token[Context] | None = None
        self.status: int | None = None
        self.start = 0.0

    def send_status(self, message: Message) -> Awaitable[None]:
        """Note the status (and run response hooks) on ``http.response.start``, then send.

        A plain function returning the server's ``send`` awaitable, which the app awaits: a
        coroutine of its own would add a frame to every ``send`` for nothing.
        """
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self.span is not None and self.middleware.on_response:
                self.middleware.response_started(self.span, self.scope, message)
        return self.send(message)


def _other_method(raw_method: str) -> str:
    """Normalise a method outside the known set: upper-cased if known, else ``_OTHER``."""
    upper = raw_method.upper()
    return upper if upper in _KNOWN_METHODS else "_OTHER"


def _call_hook(hook: Callable[..., None], *args: Any) -> None:
    """Run a user hook; its exceptions are logged once and counted, never raised."""
    try:
        hook(*args)
    except Exception as exc:
        drops.add("http_server_hook_error")
        warn_once(
            _logger,
            f"http-hook:{getattr(hook, '__qualname__', hook)!r}",
            "paca-otel: HTTP server hook %r raised %s; its attributes are dropped "
            "(further errors are counted in paca_otel.dropped only)",
            hook,
            type(exc).__name__,
        )


def _internal_error(where: str, exc: Exception) -> None:
    """Our own bug on the request path: re-raised under pytest, else logged once and counted."""
    if raise_internal():
        raise exc
    drops.add(f"internal_error:http_server_{where.replace(' ', '_')}")
    warn_once(_logger, f"http-server:{where}", "paca-otel internal error at %s", where)


def instrument_fastapi(
    app: Starlette,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    excluded_urls: str | Iterable[str] | None = None,
    request_hook: RequestHook | None = None,
    response_hook: ResponseHook | None = None,
    capture_request_headers: Iterable[str] | None = None,
    capture_response_headers: Iterable[str] | None = None,
    sanitize_headers: Iterable[str] | None = None,
    gc_freeze: bool = True,
) -> None:
    """Give every HTTP request of ``app`` (FastAPI or any Starlette app) a server span and metrics.

    Calling it again replaces the previous settings. ``FastAPI(telemetry=...)`` and mounted
    ``FastAPI()`` sub-apps stay quiet for the requests measured here, so nothing is counted
    twice; websockets and lifespan pass through untouched.

    Args:
        app: the application object the server runs.
        tracer_provider: defaults to the global one (what ``paca_otel.configure`` set).
        meter_provider: defaults to the global one.
        excluded_urls: regexes (a list, or one comma-separated string) searched in
            ``scheme://host/path``; matching requests get no span and no metrics. Default:
            ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS``, else ``OTEL_PYTHON_EXCLUDED_URLS``, else
            ``DEFAULT_EXCLUDED_URLS`` (health, ``/metrics``, ``/monitoring``, the docs).
        request_hook: ``hook(span, scope)`` when a request starts, to add attributes.
        response_hook: ``hook(span, scope, message)`` on ``http.response.start``.
        capture_request_headers: header-name regexes recorded as
            ``http.request.header.<name>``; default
            ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``.
        capture_response_headers: likewise for ``http.response.header.<name>``; default
            ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE``.
        sanitize_headers: header-name regexes whose captured values become ``[REDACTED]``;
            default ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS``.
        gc_freeze: at the first request, ``gc.freeze()`` the heap built so far (unless
            something is frozen already), so full GC collections skip the start-up objects:
            their 25-60 ms pauses otherwise set an instrumented FastAPI app's p99.
            ``configure()`` passes its ``gc_freeze`` setting.

    Raises:
        ConfigError: ``app`` is not a Starlette app, or an exclude pattern is not a regex.
    """
    from starlette.applications import Starlette

    if not isinstance(app, Starlette):
        msg = (
            f"instrument_fastapi: app must be a FastAPI or Starlette application, "
            f"not {type(app).__name__}; wrap other ASGI apps in ServerMiddleware"
        )
        raise ConfigError(msg)
    uninstrument_fastapi(app)
    base = type(app)
    middleware = ServerMiddleware(
        functools.partial(base.__call__, app),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        excluded_urls=excluded_urls,
        request_hook=request_hook,
        response_hook=response_hook,
        capture_request_headers=capture_request_headers,
        capture_response_headers=capture_response_headers,
        sanitize_headers=sanitize_headers,
        routes_owner=app,
        gc_freeze=gc_freeze,
    )
    instrumented = type(
        base.__name__,
        (base,),
        {
            # A static callable: app(scope, receive, send) goes straight to the middleware.
            "__call__": staticmethod(middleware.__call__),
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "_paca_otel_base": base,
        },
    )
    app.__class__ = instrumented


def uninstrument_fastapi(app: Starlette) -> None:
    """Undo ``instrument_fastapi``: ``app`` is served by its own class again (no-op if not)."""
    base = type(app).__dict__.get("_paca_otel_base")
    if base is not None:
        app.__class__ = base
