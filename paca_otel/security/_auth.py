"""Authentication of one request: Authorization header -> token -> outcome.

:class:`Authenticator` ties the :class:`~paca_otel.security.TokenRegistry` to the
:class:`~paca_otel.security.FailedAuthLimiter`, so the web layer's FastAPI dependency is a thin
adapter: call :meth:`Authenticator.authenticate` with the header (or the session cookie's
token) and the client address, then map the outcome to 401 / 403 / 429 and an audit record.
It is pure and framework-free, so every branch is tested without a server.

Only presented-but-wrong credentials count against the rate limit: a request without any
token (a browser opening the dashboard before sign-in) is a 401 but not a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from paca_otel.security._ratelimit import FailedAuthLimiter
from paca_otel.security._roles import Permission, Role
from paca_otel.security._tokens import ApiToken, TokenRegistry

__all__ = ["AuthOutcome", "AuthResult", "Authenticator"]


class AuthOutcome(str, Enum):
    """Why a request was or was not let in; also the audit record's ``result``."""

    OK = "ok"
    MISSING = "missing"  # no credentials: 401
    MALFORMED = "malformed"  # not "Bearer <token>": 401, counts as a failure
    INVALID = "invalid"  # no such token: 401, counts as a failure
    RATE_LIMITED = "rate_limited"  # too many failures from this address: 429
    FORBIDDEN = "forbidden"  # a valid token whose role lacks the permission: 403

    @property
    def status(self) -> int:
        """The HTTP status this outcome maps to."""
        return _STATUS[self]


_STATUS = {
    AuthOutcome.OK: 200,
    AuthOutcome.MISSING: 401,
    AuthOutcome.MALFORMED: 401,
    AuthOutcome.INVALID: 401,
    AuthOutcome.RATE_LIMITED: 429,
    AuthOutcome.FORBIDDEN: 403,
}


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of one authentication; never holds the presented token.

    Attributes:
        outcome: What happened.
        token: The matched token's entry (name, role, hash) when one matched.
        retry_after: Seconds to send in ``Retry-After`` with a 429, else 0.
    """

    outcome: AuthOutcome
    token: ApiToken | None = None
    retry_after: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the request may proceed."""
        return self.outcome is AuthOutcome.OK

    @property
    def name(self) -> str | None:
        """The token's name, for the audit log."""
        return self.token.name if self.token else None

    @property
    def role(self) -> Role | None:
        """The token's role, for the audit log."""
        return self.token.role if self.token else None


class Authenticator:
    """Checks ``Authorization: Bearer <token>`` and a permission, with failure rate limiting.

    Args:
        registry: The configured tokens.
        limiter: The per-address failed-authentication limiter.
    """

    def __init__(self, registry: TokenRegistry, limiter: FailedAuthLimiter) -> None:
        self.registry = registry
        self.limiter = limiter

    def __repr__(self) -> str:
        return f"Authenticator({self.registry!r}, {self.limiter!r})"

    def authenticate(
        self,
        authorization: str | None,
        client: str,
        permission: Permission = Permission.READ,
        *,
        token: str | None = None,
    ) -> AuthResult:
        """Authenticate a request and check it holds ``permission``.

        Args:
            authorization: The ``Authorization`` header, if any.
            client: The client address (the limiter's key).
            permission: What the route needs.
            token: A token from elsewhere (the dashboard's session cookie), used when there
                is no ``Authorization`` header.
        """
        retry = self.limiter.retry_after(client)
        if retry > 0:
            return AuthResult(AuthOutcome.RATE_LIMITED, retry_after=retry)
        presented = token
        if authorization is not None and authorization.strip():
            scheme, _, credentials = authorization.strip().partition(" ")
            credentials = credentials.strip()
            if scheme.lower() != "bearer" or not credentials or " " in credentials:
                return self._failed(AuthOutcome.MALFORMED, client)
            presented = credentials
        if not presented:
            return AuthResult(AuthOutcome.MISSING)
        found = self.registry.verify(presented)
        if found is None:
            return self._failed(AuthOutcome.INVALID, client)
        if not found.role.allows(permission):
            return AuthResult(AuthOutcome.FORBIDDEN, token=found)
        return AuthResult(AuthOutcome.OK, token=found)

    def _failed(self, outcome: AuthOutcome, client: str) -> AuthResult:
        self.limiter.record_failure(client)
        return AuthResult(outcome)
