"""Access control for the monitoring API: tokens, roles, failed-auth rate limit, audit records.

Framework-free building blocks; the web layer's FastAPI dependency adapts them to requests:

- :func:`generate_token` / :func:`hash_token` / :func:`parse_api_tokens` /
  :class:`TokenRegistry`: random ``paca_`` tokens, the ``api_tokens`` setting (name, role,
  SHA-256 only), constant-time verification;
- :class:`Role` / :class:`Permission` / :data:`MINIMUM_ROLE`: viewer < operator < admin;
- :class:`FailedAuthLimiter`: per-address token bucket for failed authentications (429);
- :class:`Authenticator` / :class:`AuthResult`: one request's outcome (401/403/429/ok);
- :class:`AuditRecord` / :func:`render_audit_line`: the audit log's record and JSON line.
"""

from __future__ import annotations

from paca_otel.security._audit import AUDIT_LOGGER, AuditRecord, render_audit_line
from paca_otel.security._auth import Authenticator, AuthOutcome, AuthResult
from paca_otel.security._ratelimit import FailedAuthLimiter
from paca_otel.security._roles import MINIMUM_ROLE, Permission, Role, parse_role
from paca_otel.security._tokens import (
    TOKEN_PREFIX,
    ApiToken,
    TokenRegistry,
    generate_token,
    hash_token,
    parse_api_tokens,
)

__all__ = [
    "AUDIT_LOGGER",
    "MINIMUM_ROLE",
    "TOKEN_PREFIX",
    "ApiToken",
    "AuditRecord",
    "AuthOutcome",
    "AuthResult",
    "Authenticator",
    "FailedAuthLimiter",
    "Permission",
    "Role",
    "TokenRegistry",
    "generate_token",
    "hash_token",
    "parse_api_tokens",
    "parse_role",
    "render_audit_line",
]
