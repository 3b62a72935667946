"""The middleware's set-up options: exclude list and captured headers, argument > env > default."""

from __future__ import annotations

import pytest

from paca_otel import ConfigError
from paca_otel.signals._http_options import DEFAULT_EXCLUDED_URLS, exclude_list, header_list


@pytest.mark.parametrize(
    ("url", "excluded"),
    [
        ("http://svc/health", True),
        ("http://svc/api/v1/healthz", True),
        ("http://svc/metrics", True),
        ("http://svc/monitoring/", True),
        ("http://svc/monitoring/alerts/history", True),
        ("https://svc:8443/docs/oauth2-redirect", True),
        ("http://svc/openapi.json", True),
        ("http://svc/redoc", True),
        ("http://svc/api/metrics", False),
        ("http://svc/monitoringx", False),
        ("http://svc/documents", False),
        ("http://svc/healthy-food", False),
    ],
)
def test_default_list_matches_only_the_service_own_endpoints(url: str, excluded: bool) -> None:
    """The defaults catch health, /metrics, /monitoring and the docs, not look-alike paths."""
    excludes = exclude_list(None)
    assert excludes is not None
    assert excludes.url_disabled(url) is excluded


@pytest.mark.parametrize(
    ("scheme", "host", "path", "excluded"),
    [
        ("http", b"svc", "/health", True),
        ("https", b"svc:8443", "/docs/oauth2-redirect", True),
        ("http", b"svc", "/api/metrics", False),
        ("http", None, "/metrics", True),  # no Host header: the socket's address
        ("http", None, "/items/1", False),
        ("http", b"svc", "/x" * 300 + "/healthz", True),  # too long to remember
        ("http", b"svc", "/x" * 300, False),
    ],
)
def test_request_decision_is_the_url_search_and_stays_so_when_remembered(
    scheme: str, host: bytes | None, path: str, excluded: bool
) -> None:
    """request_disabled answers as url_disabled on scheme://host/path, first time and later."""
    excludes = exclude_list(None)
    assert excludes is not None
    scope = {"path": path, "server": ("10.0.0.1", 8000)}
    authority = host.decode() if host is not None else "10.0.0.1:8000"
    assert excludes.url_disabled(f"{scheme}://{authority}{path}") is excluded
    for _ in range(2):
        assert excludes.request_disabled(scheme, host, scope) is excluded


def test_remembered_decisions_are_bounded_and_stay_right() -> None:
    """Past the memory's bound (it is cleared), requests are still decided correctly."""
    excludes = exclude_list([r"/private/"])
    assert excludes is not None
    for round_ in range(2):
        for i in range(3000):
            path = f"/private/{i}" if i % 2 else f"/public/{i}"
            assert excludes.request_disabled("http", b"svc", {"path": path}) is bool(i % 2), round_


def test_fastapi_variable_wins_over_the_generic_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_PYTHON_FASTAPI_EXCLUDED_URLS beats OTEL_PYTHON_EXCLUDED_URLS; both replace defaults."""
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "generic")
    monkeypatch.setenv("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "specific, other")
    excludes = exclude_list(None)
    assert excludes is not None
    assert excludes.url_disabled("http://svc/specific")
    assert not excludes.url_disabled("http://svc/generic")
    assert not excludes.url_disabled("http://svc/health")


def test_empty_list_excludes_nothing() -> None:
    """An empty argument turns exclusion off entirely."""
    assert exclude_list([]) is None
    assert exclude_list("") is None


def test_bad_pattern_from_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken regex in the environment fails at set-up naming the variable."""
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "ok,[")
    with pytest.raises(ConfigError, match="OTEL_PYTHON_EXCLUDED_URLS: '\\[' is not a valid"):
        exclude_list(None)


def test_extending_the_defaults_in_code() -> None:
    """[*DEFAULT_EXCLUDED_URLS, ...] keeps the defaults and adds patterns."""
    excludes = exclude_list([*DEFAULT_EXCLUDED_URLS, r"/internal/"])
    assert excludes is not None
    assert excludes.url_disabled("http://svc/internal/x")
    assert excludes.url_disabled("http://svc/metrics")


def test_header_list_argument_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Captured header names come from the argument, else the comma-separated variable."""
    monkeypatch.setenv("X_HEADERS", "x-a, x-b")
    assert header_list(None, "X_HEADERS") == ["x-a", "x-b"]
    assert header_list(["x-c", ""], "X_HEADERS") == ["x-c"]
    assert header_list(None, "UNSET_VARIABLE") == []
