"""Where the Prometheus exposition is served: a route on the user's app, or a standalone server.

Both serve the one registry :func:`~paca_otel.telemetry._providers._metric_consumers` builds
over the shared collection, and both answer a scrape alike: the format is negotiated from the
``Accept`` header and written by :func:`~paca_otel.pipeline._promtext.exposition` (the cost of a
scrape is there), and with ``metrics_auth`` a token is wanted (401, or 429 after too many
failures from one address).

The standalone server (no app given) is a small WSGI app of ours on the stdlib's ``wsgiref``
server, threaded and quiet as prometheus_client's ``start_http_server`` is. Why not that one:
it renders through ``generate_latest``, 2-4x slower with 10k series, and has no token check.
Its HTTP behaviour is kept, as scrape configs and probes may rely on it: every path serves the
metrics, ``/favicon.ico`` is an empty 200, ``OPTIONS`` a 200 with ``Allow``, other methods a
405, ``?name[]=`` keeps only the named families, and the body is gzipped when the client
accepts it (every Prometheus does).
"""

from __future__ import annotations

import gzip
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from paca_otel._internal import handle_internal_errors
from paca_otel.config import PacaOtelSettings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from starlette.requests import Request
    from starlette.responses import Response

    from paca_otel.security import Authenticator

logger = logging.getLogger("paca_otel")

_UNAUTHORIZED: Final = b"unauthorized\n"
_PLAIN: Final = "text/plain; charset=utf-8"  # what Starlette sends for media_type="text/plain"
_ALLOW: Final = ("Allow", "OPTIONS,GET")
# gzip level 1, not gzip's (and prometheus_client's) 9: a 1.28 MB exposition of 10k series
# compresses to 57 kB in 3 ms at level 1 and to 50 kB in 10-16 ms at level 9.
_GZIP_LEVEL: Final = 1


def _metrics_guard(settings: PacaOtelSettings) -> Authenticator | None:
    """The token check of ``metrics_auth`` (any role may scrape), or None without it."""
    if not settings.metrics_auth:
        return None
    from paca_otel.security import Authenticator, FailedAuthLimiter, TokenRegistry, parse_api_tokens

    limiter = FailedAuthLimiter(
        limit=settings.auth_failure_limit, window=settings.auth_failure_window
    )
    return Authenticator(TokenRegistry(parse_api_tokens(settings.api_tokens)), limiter)


def _refusal(
    guard: Authenticator, authorization: str | None, client: str
) -> tuple[int, dict[str, str]] | None:
    """The status and headers refusing a scrape, or None when its token is good."""
    result = guard.authenticate(authorization, client)
    if result.ok:
        return None
    if result.retry_after:
        return result.outcome.status, {"Retry-After": str(int(result.retry_after) + 1)}
    return result.outcome.status, {"WWW-Authenticate": 'Bearer realm="metrics"'}


def _scrape_endpoint(
    registry_of: Callable[[], CollectorRegistry | None], settings: PacaOtelSettings
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving ``registry_of()`` at an exact path (a mount would redirect).

    A scrape runs every metric callback (psutil included), so it runs in a worker thread.
    With ``metrics_auth`` it wants ``Authorization: Bearer <token>`` of any role; Prometheus
    sends it with ``authorization: {credentials: <token>}`` in its scrape config.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    from paca_otel.pipeline._promtext import exposition

    guard = _metrics_guard(settings)

    async def scrape(request: Request) -> Response:
        if guard is not None:
            client = request.client.host if request.client is not None else "unknown"
            refused = _refusal(guard, request.headers.get("authorization"), client)
            if refused is not None:
                status, headers = refused
                return Response(_UNAUTHORIZED, status_code=status,
                                media_type="text/plain", headers=headers)  # fmt: skip
        registry = registry_of() or CollectorRegistry()
        accept = request.headers.get("accept", "")
        body, content_type = await run_in_threadpool(exposition, registry, accept)
        return Response(body, media_type=content_type)

    return scrape


class _Restricted(Collector):
    """The samples ``?name[]=`` names, by sample name as prometheus_client's server keeps them.

    By hand, not by ``CollectorRegistry.restricted_registry``: that one looks collectors up by
    the names they describe, and paca-otel's collector describes none (its series are known only
    once collected), so it would keep nothing.
    """

    def __init__(self, registry: CollectorRegistry, names: Iterable[str]) -> None:
        self.registry = registry
        self.names = frozenset(names)

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            samples = [sample for sample in family.samples if sample.name in self.names]
            if samples:
                kept = Metric(family.name, family.documentation, family.type)
                kept.samples = samples
                yield kept


def _gzip_accepted(accept_encoding: str | None) -> bool:
    """Whether ``Accept-Encoding`` names gzip (as prometheus_client's server reads it)."""
    return any(
        coding.split(";")[0].strip().lower() == "gzip"
        for coding in (accept_encoding or "").split(",")
    )


class _ScrapeApp:
    """The standalone server's WSGI app (see the module docstring for what it answers)."""

    def __init__(self, registry: CollectorRegistry, settings: PacaOtelSettings) -> None:
        self.registry = registry
        self.guard = _metrics_guard(settings)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":
            return _reply(start_response, "200 OK", [_ALLOW], b"")
        if method != "GET":
            body = f"# HTTP 405 Method Not Allowed: {method}; use OPTIONS or GET\n".encode()
            return _reply(start_response, "405 Method Not Allowed", [_ALLOW], body)
        if environ.get("PATH_INFO") == "/favicon.ico":  # browsers ask for it
            return _reply(start_response, "200 OK", [], b"")
        if self.guard is not None:
            client = environ.get("REMOTE_ADDR") or "unknown"
            refused = _refusal(self.guard, environ.get("HTTP_AUTHORIZATION"), client)
            if refused is not None:
                status, headers = refused
                head = [("Content-Type", _PLAIN), *headers.items()]
                line = f"{status} {HTTPStatus(status).phrase}"
                return _reply(start_response, line, head, _UNAUTHORIZED)
        return self._scrape(environ, start_response)

    def _scrape(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        from paca_otel.pipeline._promtext import exposition

        registry: Collector = self.registry
        names = parse_qs(environ.get("QUERY_STRING", "")).get("name[]")
        if names:
            registry = _Restricted(self.registry, names)
        rendered = None
        with handle_internal_errors("prometheus_scrape", logger):
            rendered = exposition(registry, environ.get("HTTP_ACCEPT"))
        if rendered is None:
            body = b"# scrape failed; see the application's log\n"
            return _reply(start_response, "500 Internal Server Error", [], body)
        body, content_type = rendered
        headers = [("Content-Type", content_type)]
        if _gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING")):
            body = gzip.compress(body, compresslevel=_GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        return _reply(start_response, "200 OK", headers, body)


def _reply(
    start_response: StartResponse, status: str, headers: list[tuple[str, str]], body: bytes
) -> list[bytes]:
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]


class _QuietHandler(WSGIRequestHandler):
    """Writes no access log: a scrape every few seconds would fill the host's stderr."""

    def log_message(self, format: str, *args: object) -> None:
        """Log nothing."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One daemon thread per request: a slow scrape does not hold the next one up."""

    daemon_threads = True


def _serve_prometheus(
    settings: PacaOtelSettings, registry: CollectorRegistry
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``registry`` on ``prometheus_host:prometheus_port`` from a daemon thread.

    Raises:
        OSError: The address cannot be resolved or bound (the port is busy).
    """
    host, port = settings.prometheus_host, settings.prometheus_port
    # The address family of the host (an IPv6 address needs AF_INET6), as http.server does.
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(_ThreadingServer):
        address_family = family

    server = make_server(
        str(address[0]), port, _ScrapeApp(registry, settings), Server, _QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="paca-otel-prometheus", daemon=True)
    thread.start()
    return server, thread


def _start_prometheus(
    settings: PacaOtelSettings, registry: CollectorRegistry
) -> tuple[WSGIServer, threading.Thread] | None:
    """:func:`_serve_prometheus`, or None with a warning: a busy port must not stop the app."""
    try:
        return _serve_prometheus(settings, registry)
    except OSError as exc:
        # A busy port must not stop the application from starting (principle 4).
        logger.warning(
            "paca-otel: cannot serve Prometheus metrics on %s:%s (%s); scrape endpoint disabled",
            settings.prometheus_host,
            settings.prometheus_port,
            exc,
        )
        return None
