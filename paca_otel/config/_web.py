"""Web options: access control of the monitoring API, ``/metrics`` and the dashboard
(tokens, public routes, CORS, body limit, failed-auth limits, audit retention, sessions).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import field_validator
from pydantic_settings import NoDecode

from paca_otel.config._source import OptionGroup, _comma_list, _env


class WebOptions(OptionGroup):
    """Who may call the monitoring API and dashboard, and within which limits."""

    # --- monitoring API access control (H10: paca_otel/web) ------------------------------------
    api_tokens: Annotated[tuple[str, ...], NoDecode] = _env(
        "api_tokens", default=(),
        description="API tokens, name:role:sha256 entries (`paca-otel token create`); hashes only",
    )  # fmt: skip
    public_routes: Annotated[tuple[str, ...], NoDecode] = _env(
        "public_routes", default=("/health",),
        description="monitoring API paths (after the prefix) served without a token",
    )  # fmt: skip
    metrics_auth: bool = _env(
        "metrics_auth", default=False,
        description="require a token on /metrics, route or standalone (Prometheus: authorization)",
    )  # fmt: skip
    body_limit: int = _env(
        "body_limit", default=65_536, ge=1024, le=64 * 1024 * 1024,
        description="largest monitoring API request body in bytes (413 past it)",
    )  # fmt: skip
    auth_failure_limit: int = _env(
        "auth_failure_limit", default=10, ge=1,
        description="failed authentications a client address may make per window (then 429)",
    )  # fmt: skip
    auth_failure_window: float = _env(
        "auth_failure_window", default=60.0, gt=0,
        description="seconds over which auth_failure_limit refills",
    )  # fmt: skip
    cors_origins: Annotated[tuple[str, ...], NoDecode] = _env(
        "cors_origins", default=(),
        description="origins allowed to call the monitoring API cross-site (none: CORS off)",
    )  # fmt: skip
    audit_retention: float = _env(
        "audit_retention", default=90 * 86_400.0, gt=0,
        description="seconds audit log rows are kept",
    )  # fmt: skip
    session_ttl: float = _env(
        "session_ttl", default=8 * 3600.0, gt=0,
        description="seconds a dashboard sign-in lasts",
    )  # fmt: skip

    # --- validators ---------------------------------------------------------------------------
    @field_validator("api_tokens", mode="before")
    @classmethod
    def _api_tokens(cls, value: Any) -> Any:
        from paca_otel.security import parse_api_tokens

        return tuple(token.entry() for token in parse_api_tokens(value))

    @field_validator("public_routes", "cors_origins", mode="before")
    @classmethod
    def _string_list(cls, value: Any) -> Any:
        return _comma_list(value)
