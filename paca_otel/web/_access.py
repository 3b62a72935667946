"""Access control of the monitoring API: who is calling, what they may do, and sign-in sessions.

Built once per settings object from :mod:`paca_otel.security`'s primitives (token registry,
constant-time verification, roles, failed-auth limiter) and kept by the composition root the
API serves (an :class:`AccessSlot`, one per root), so the limiter's memory survives from request
to request and independent roots share no tokens, sessions or audit log. The FastAPI
dependencies in :mod:`paca_otel.web._deps` adapt it to requests; this module knows nothing of
FastAPI.

Dashboard sessions: signing in with a token creates a random session id (256 bits) held in
memory with the token's name and role and a CSRF token. The browser keeps the session id in an
``HttpOnly; SameSite=Strict`` cookie, never the API token. A cookie-authenticated request
that changes state must also send the CSRF token in ``X-CSRF-Token``. Sessions end after
``session_ttl``, on sign-out, or when their token is removed from the settings.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from paca_otel.privacy import Scrubber
from paca_otel.security import (
    ApiToken,
    Authenticator,
    AuthOutcome,
    AuthResult,
    FailedAuthLimiter,
    Permission,
    TokenRegistry,
    parse_api_tokens,
)
from paca_otel.web._audit import AuditLog

if TYPE_CHECKING:
    from paca_otel.config import PacaOtelSettings

__all__ = ["SESSION_COOKIE", "AccessControl", "AccessSlot", "Principal", "Session"]

SESSION_COOKIE: Final = "paca_session"
CSRF_HEADER: Final = "x-csrf-token"
_MAX_SESSIONS: Final = 1_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: a token's name and role, and how it was presented."""

    name: str | None
    role: str | None
    via: str  # "bearer", "session" or "public"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in dashboard: the token it was opened with, its CSRF token, its end."""

    token: ApiToken
    csrf: str
    expires: float


class AccessControl:
    """Tokens, limiter, public routes, sessions and the audit log for one settings object.

    Args:
        settings: The settings the tokens, limits and routes are read from.
    """

    def __init__(self, settings: PacaOtelSettings) -> None:
        self.settings = settings
        self.tokens = frozenset(parse_api_tokens(settings.api_tokens))
        self.authenticator = Authenticator(
            TokenRegistry(self.tokens),
            FailedAuthLimiter(
                limit=settings.auth_failure_limit, window=settings.auth_failure_window
            ),
        )
        self.public_routes = tuple(settings.public_routes)
        self.session_ttl = settings.session_ttl
        from paca_otel.privacy import build_scrubber

        # the audit log is scrubbed even with scrub_enabled=False: it must never hold a secret
        scrubber = build_scrubber(settings) or Scrubber()
        self.audit = AuditLog(
            settings.state_path, retention=settings.audit_retention, scrubber=scrubber
        )
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AccessControl(tokens={len(self.tokens)}, public={self.public_routes!r})"

    def is_public(self, route_path: str) -> bool:
        """Whether a route (its path template, prefix included) is configured public."""
        return any(route_path == p or route_path.endswith(p) for p in self.public_routes if p)

    def authenticate(
        self,
        authorization: str | None,
        session_id: str | None,
        client: str,
        permission: Permission,
    ) -> tuple[AuthResult, Session | None]:
        """Check the Bearer header, else the session cookie, against ``permission``."""
        session = None
        if not (authorization and authorization.strip()) and session_id:
            session = self.session(session_id)
            if session is None:
                # an expired or unknown cookie is "not signed in", not a guessed token
                return AuthResult(AuthOutcome.MISSING), None
            if not session.token.role.allows(permission):
                return AuthResult(AuthOutcome.FORBIDDEN, token=session.token), session
            return AuthResult(AuthOutcome.OK, token=session.token), session
        return self.authenticator.authenticate(authorization, client, permission), None

    # ------------------------------------------------------------------ sessions

    def sign_in(self, token: str, client: str) -> tuple[AuthResult, str | None, Session | None]:
        """Open a session for a valid ``token``; returns the outcome, session id and session."""
        result = self.authenticator.authenticate(f"Bearer {token}", client, Permission.READ)
        if not result.ok or result.token is None:
            return result, None, None
        session_id = secrets.token_urlsafe(32)
        session = Session(result.token, secrets.token_urlsafe(32), time.time() + self.session_ttl)
        with self._lock:
            self._sessions[session_id] = session
            while len(self._sessions) > _MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return result, session_id, session

    def session(self, session_id: str) -> Session | None:
        """The live session with this id, if any (expired or revoked ones are forgotten)."""
        with self._lock:
            found = self._sessions.get(session_id)
            if found is None:
                return None
            if found.expires <= time.time() or found.token not in self.tokens:
                del self._sessions[session_id]
                return None
            return found

    def sign_out(self, session_id: str) -> None:
        """End a session."""
        with self._lock:
            self._sessions.pop(session_id, None)

    @staticmethod
    def csrf_ok(session: Session, presented: str | None) -> bool:
        """Whether ``presented`` is the session's CSRF token (constant-time)."""
        return presented is not None and hmac.compare_digest(
            session.csrf.encode(), presented.encode("utf-8", "replace")
        )

    def close(self) -> None:
        """Release the audit log's file."""
        self.audit.close()


def _key(settings: PacaOtelSettings) -> tuple[object, ...]:
    """The settings an :class:`AccessControl` is built from: a change means a new one."""
    return (
        settings.api_tokens, settings.public_routes, settings.auth_failure_limit,
        settings.auth_failure_window, settings.state_path, settings.audit_retention,
        settings.session_ttl,
    )  # fmt: skip


class AccessSlot:
    """The access control of one composition root, rebuilt when its settings change.

    The root keeps one (``Runtime.component(AccessSlot)``, reached through the facade), so the
    limiter's memory, the sessions and the audit log belong to that root: two apps on
    independent roots (``configure(set_global=False)``) accept only their own tokens and audit
    into their own logs. The root closes it with itself.
    """

    def __init__(self) -> None:
        self._current: AccessControl | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AccessSlot({self._current!r})"

    def current(self, settings: PacaOtelSettings) -> AccessControl | None:
        """The access control if it was built for these settings (no I/O, no lock), else None."""
        found = self._current
        return found if found is not None and _key(found.settings) == _key(settings) else None

    def for_settings(self, settings: PacaOtelSettings) -> AccessControl:
        """The access control for ``settings``, rebuilt (the old one closed) when they changed.

        Building opens the audit table (SQLite): call it from a worker thread (``access``).
        """
        with self._lock:
            old = self._current
            if old is not None and _key(old.settings) == _key(settings):
                return old
            self._current = fresh = AccessControl(settings)
        if old is not None:
            old.close()
        return fresh

    def after_fork_in_child(self) -> None:
        """In a forked child: a new lock (a thread of the parent may have held this one)."""
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the access control's audit log and forget it."""
        with self._lock:
            old, self._current = self._current, None
        if old is not None:
            old.close()
