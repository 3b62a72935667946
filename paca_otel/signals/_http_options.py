"""Set-up options of the HTTP server middleware: the exclude list and the captured headers.

Each comes from an ``instrument_fastapi`` argument, else from the OpenTelemetry environment
variables contrib's instrumentations read (so one deployment config serves both), else from a
default. Parsed once, when the app is instrumented; invalid patterns fail there with a
``ConfigError``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, MutableMapping
from typing import Any

from paca_otel.errors import ConfigError

__all__ = ["DEFAULT_EXCLUDED_URLS"]

DEFAULT_EXCLUDED_URLS: tuple[str, ...] = (
    r"/healthz?/?$",  # health probes, under any prefix
    r"^[a-z]+://[^/]+/metrics/?$",  # the Prometheus exposition
    r"^[a-z]+://[^/]+/monitoring(/|$)",  # the monitoring API and its dashboard
    r"^[a-z]+://[^/]+/docs(/|$)",  # Swagger UI and its OAuth2 redirect
    r"^[a-z]+://[^/]+/redoc/?$",
    r"^[a-z]+://[^/]+/openapi\.json$",
)
"""Regexes (searched in ``scheme://host/path``) of requests not measured by default."""

ENV_EXCLUDED = ("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
ENV_CAPTURE_REQUEST = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
ENV_CAPTURE_RESPONSE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
ENV_SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"

Scope = MutableMapping[str, Any]
_DECIDED_LIMIT = 1024  # exclude decisions remembered (see ExcludedUrls.request_disabled)
_DECIDED_URL_LENGTH = 256  # longer Host + path: searched every time, never remembered


class ExcludedUrls:
    """The exclude list as one compiled regex, searched in ``scheme://host/path``.

    The patterns and semantics of contrib's ``opentelemetry.util.http.ExcludeList`` (built by
    ``parse_excluded_urls``), but searched through the compiled pattern's own ``search``:
    contrib's ``url_disabled`` passes it to ``re.search``, whose cache lookup hashes the
    compiled pattern on every call, about 1 us per request, as much as the search itself.
    """

    __slots__ = ("_decided", "_search")

    def __init__(self, patterns: str) -> None:
        # Split and stripped as parse_excluded_urls does with the same comma-joined string.
        regex = "|".join(pattern.strip() for pattern in patterns.split(","))
        self._search = re.compile(regex).search
        self._decided: dict[tuple[str, bytes, str], bool] = {}

    def url_disabled(self, url: str) -> bool:
        """Whether any pattern is found in ``url``."""
        return self._search(url) is not None

    def request_disabled(self, scheme: str, host: bytes | None, scope: Scope) -> bool:
        """Whether the request's ``scheme://host/path`` is excluded.

        The answer is remembered per (scheme, Host, path): a service sees the same few URLs
        again and again, and the search (a scan of the URL per pattern) costs more than the
        lookup. Clients choose those values, so only short ones are remembered, and the
        memory is cleared when full rather than frozen: the hot URLs come back at once.
        """
        if host is None:
            return self.url_disabled(request_url(scheme, host, scope))
        path: str = scope["path"]
        key = (scheme, host, path)
        disabled = self._decided.get(key)
        if disabled is None:
            disabled = self.url_disabled(request_url(scheme, host, scope))
            if len(path) + len(host) <= _DECIDED_URL_LENGTH:
                if len(self._decided) >= _DECIDED_LIMIT:
                    self._decided.clear()
                self._decided[key] = disabled
        return disabled


def request_url(scheme: str, host: bytes | None, scope: Scope) -> str:
    """``scheme://host/path``, the string contrib's exclude lists are searched in."""
    if host is not None:
        authority = host.decode("latin-1")
    else:
        server = scope.get("server") or ("0.0.0.0", 80)
        authority = server[0] if server[1] == 80 else f"{server[0]}:{server[1]}"
    return f"{scheme}://{authority}{scope['path']}"


def exclude_list(excluded_urls: str | Iterable[str] | None) -> ExcludedUrls | None:
    """Argument > ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`` > ``OTEL_PYTHON_EXCLUDED_URLS`` > default.

    The environment value replaces the default list, as it does for contrib's instrumentors;
    ``[*DEFAULT_EXCLUDED_URLS, ...]`` extends it in code.
    """
    setting = "excluded_urls"
    if excluded_urls is None:
        for name in ENV_EXCLUDED:
            if name in os.environ:
                setting, excluded_urls = name, os.environ[name]
                break
        else:
            excluded_urls = DEFAULT_EXCLUDED_URLS
    patterns = (
        [p.strip() for p in excluded_urls.split(",")]
        if isinstance(excluded_urls, str)
        else [str(p) for p in excluded_urls]
    )
    patterns = [p for p in patterns if p]
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            msg = f"{setting}: {pattern!r} is not a valid regular expression ({exc})"
            raise ConfigError(msg) from None
    return ExcludedUrls(",".join(patterns)) if patterns else None


def header_list(value: Iterable[str] | None, env: str) -> list[str]:
    """Header-name regexes to capture: the argument, else the comma-separated ``env``."""
    from opentelemetry.util.http import get_custom_headers

    return [h for h in value if h] if value is not None else get_custom_headers(env)
