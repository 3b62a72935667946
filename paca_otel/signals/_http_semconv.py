"""Reading the stable HTTP semantic-convention values out of an ASGI request.

The server middleware (``paca_otel.signals.http_server``) needs a handful of values per request:
the propagation carrier, ``server.address``/``server.port`` from the ``Host`` header, a
``url.query`` with the semconv's sensitive parameters redacted, and the route template that
served the request. They live here so the middleware module keeps to the request lifecycle.

Hand-written because the public helpers that exist work on other shapes: contrib's ASGI
getter and ``collect_request_attributes`` build a full attribute dict (old and new
conventions) per request, and ``starlette.datastructures.Headers`` decodes every header;
both cost more than the whole budget of a lean middleware. Route templates come from
Starlette's public routing API: ``scope["route"]`` (set by Starlette's and FastAPI's routers
on a match) for the common case, and ``fastapi.routing.iter_route_contexts`` +
``BaseRoute.matches`` / ``Mount.routes`` to add the templates of the mounts a request went
through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from opentelemetry.propagators.textmap import Getter

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

Scope = MutableMapping[str, Any]
RawHeaders = Sequence[tuple[bytes, bytes]]

# https://opentelemetry.io/docs/specs/semconv/http/http-spans/ (url.query): values of these
# parameters are redacted.
_SENSITIVE_QUERY_PARAMETERS = frozenset(
    {"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature", "X-Amz-Signature"}
    | {"X-Amz-Credential", "X-Amz-Security-Token"}
)
# A cheap substring test first: most queries carry none of them and skip the parse.
_SENSITIVE_QUERY_RE = re.compile("|".join(map(re.escape, sorted(_SENSITIVE_QUERY_PARAMETERS))))
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_MOUNT_SUFFIX = "/{path}"
_NAMES_LIMIT = 256  # header names and Host values remembered


class AsgiHeadersGetter(Getter[RawHeaders]):
    """Reads propagation headers straight from the ASGI ``headers`` list (no decoding pass)."""

    def __init__(self) -> None:
        # The propagators ask for the same few keys on every request.
        self._names: dict[str, bytes] = {}

    def get(self, carrier: RawHeaders, key: str) -> list[str] | None:
        """All values of header ``key`` (ASGI names are lower-case bytes), or None."""
        name = self._names.get(key)
        if name is None:
            name = key.lower().encode("latin-1")
            if len(self._names) < _NAMES_LIMIT:
                self._names[key] = name
        # A plain loop: cheaper than a list comprehension's frame when, as for most keys a
        # propagator asks for, nothing matches (three lookups per request).
        values: list[str] | None = None
        for header, value in carrier:
            if header == name:
                if values is None:
                    values = [value.decode("latin-1")]
                else:
                    values.append(value.decode("latin-1"))
        if values is None:
            return None
        if name == b"baggage" and len(values) > 1:
            # The W3C baggage propagator reads only the first value; repeated headers join.
            return [",".join(values)]
        return values

    def keys(self, carrier: RawHeaders) -> list[str]:
        """Every header name in the carrier."""
        return [header.decode("latin-1") for header, _ in carrier]


ASGI_GETTER = AsgiHeadersGetter()


_HOSTS: dict[tuple[bytes, str], tuple[str | None, int | None]] = {}


def server_address(host: bytes | None, scope: Scope) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port``: from the ``Host`` header, else the socket.

    The semconv takes them from the authority the client asked for, so a proxy's or a
    virtual host's name is reported rather than the bind address. A service sees few Host
    values, so the parsed ones are remembered (a bounded number: clients choose them).
    """
    if host is not None:
        key = (host, scope.get("scheme", "http"))
        parsed = _HOSTS.get(key)
        if parsed is None:
            parsed = _parse_host(host, key[1])
            if len(_HOSTS) < _NAMES_LIMIT:
                _HOSTS[key] = parsed
        return parsed
    server = scope.get("server")
    if not server:
        return None, None
    return server[0], server[1]


def _parse_host(host: bytes, scheme: str) -> tuple[str | None, int | None]:
    """``(address, port)`` of a Host value (IPv6 literals in brackets), or ``(None, None)``."""
    text = host.decode("latin-1")
    if text.startswith("["):  # IPv6 literal: [::1]:8000
        end = text.find("]")
        if end < 0:
            return None, None
        address, rest = text[1:end], text[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        address, _, port_text = text.partition(":")
    if not address:
        return None, None
    if port_text:
        return address, int(port_text) if port_text.isdigit() else None
    return address, _DEFAULT_PORTS.get(scheme)


def url_query(query_string: bytes) -> str:
    """``url.query``: the raw query, with the semconv's sensitive parameter values redacted."""
    query = query_string.decode("utf-8", "replace")  # as contrib does
    if _SENSITIVE_QUERY_RE.search(query) is None:
        return query
    return urlencode(
        [
            (key, "REDACTED" if key in _SENSITIVE_QUERY_PARAMETERS else value)
            for key, value in parse_qsl(query, keep_blank_values=True)
        ],
        safe="/:",
    )


def decoded_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """Every header as ``{name: [values]}`` (only when headers are captured)."""
    headers: dict[str, list[str]] = {}
    for name, value in raw:
        headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return headers


def exception_type(exc: BaseException) -> str:
    """``error.type`` for an exception: its fully qualified class name (builtins bare)."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def route_template(route: Any) -> str | None:
    """The template of a matched route object (``Route``/``APIRoute``/``Mount`` …)."""
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) else None


def resolve_route(routes: Iterable[BaseRoute], scope: Scope) -> str | None:
    """The full route template ``scope`` matches in ``routes``, through any mounts.

    Used only when a request went through a mount (its ``root_path`` grew) or when a
    router did not leave ``scope["route"]``: a mount's own template (``/sub/{path}``) is
    joined with the template matched inside it, so ``/sub/items/{id}`` is reported for both
    a FastAPI and a Starlette sub-app. A mounted app without routes keeps ``/{path}``.
    """
    # Imported here: only the slow path needs them, and `import paca_otel` stays light.
    from fastapi.routing import iter_route_contexts
    from starlette.routing import Match, Mount

    partial: str | None = None
    for context in iter_route_contexts(list(routes)):
        match, child_scope = context.matches(scope)
        if match == Match.NONE:
            continue
        template = context.path_format
        if not isinstance(template, str):
            continue
        original = context.original_route
        if isinstance(original, Mount) and template.endswith(_MOUNT_SUFFIX):
            prefix = template[: -len(_MOUNT_SUFFIX)]
            inner = resolve_route(original.routes, {**scope, **child_scope})
            template = prefix + (inner if inner is not None else _MOUNT_SUFFIX)
        if match == Match.FULL:
            return template
        if partial is None:
            partial = template
    return partial
