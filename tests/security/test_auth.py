"""Tests for Authenticator: header parsing, outcomes, permissions and the failure limit."""

from __future__ import annotations

import pytest

from paca_otel.security import (
    ApiToken,
    Authenticator,
    AuthOutcome,
    FailedAuthLimiter,
    Permission,
    Role,
    TokenRegistry,
    generate_token,
    hash_token,
)

VIEWER = generate_token()
ADMIN = generate_token()


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def auth() -> Authenticator:
    """A viewer and an admin token; 3 failures per minute per address."""
    registry = TokenRegistry(
        [
            ApiToken("dash", Role.VIEWER, hash_token(VIEWER)),
            ApiToken("ops", Role.ADMIN, hash_token(ADMIN)),
        ]
    )
    return Authenticator(registry, FailedAuthLimiter(limit=3, window=60.0, clock=FakeClock()))


def test_valid_bearer_token_is_let_in(auth: Authenticator) -> None:
    """A known token with the needed permission: ok, with its name and role."""
    result = auth.authenticate(f"Bearer {VIEWER}", "10.0.0.1")
    assert result.ok
    assert (result.name, result.role, result.outcome.status) == ("dash", Role.VIEWER, 200)
    assert auth.authenticate(f"bearer   {ADMIN}  ", "10.0.0.1", Permission.WRITE_RULES).ok


def test_missing_wrong_and_malformed_credentials(auth: Authenticator) -> None:
    """No header 401 missing; unknown token 401 invalid; other schemes 401 malformed."""
    assert auth.authenticate(None, "a").outcome is AuthOutcome.MISSING
    assert auth.authenticate("", "a").outcome is AuthOutcome.MISSING
    assert auth.authenticate(f"Bearer {generate_token()}", "b").outcome is AuthOutcome.INVALID
    assert auth.authenticate(f"Basic {VIEWER}", "c").outcome is AuthOutcome.MALFORMED
    assert auth.authenticate("Bearer", "d").outcome is AuthOutcome.MALFORMED
    assert auth.authenticate(f"Bearer {VIEWER} extra", "e").outcome is AuthOutcome.MALFORMED
    assert {o.status for o in (AuthOutcome.MISSING, AuthOutcome.INVALID)} == {401}


def test_role_without_permission_is_forbidden(auth: Authenticator) -> None:
    """A viewer writing rules or reading audit gets 403, still named for the audit log."""
    for permission in (Permission.WRITE_RULES, Permission.WRITE_SILENCES, Permission.READ_AUDIT):
        result = auth.authenticate(f"Bearer {VIEWER}", "a", permission)
        assert result.outcome is AuthOutcome.FORBIDDEN
        assert result.outcome.status == 403
        assert result.name == "dash"


def test_session_cookie_token_is_used_without_header(auth: Authenticator) -> None:
    """The dashboard's cookie token authenticates when no Authorization header is sent."""
    assert auth.authenticate(None, "a", token=ADMIN).ok
    assert auth.authenticate(
        f"Bearer {VIEWER}", "a", Permission.READ_AUDIT, token=ADMIN
    ).outcome is (AuthOutcome.FORBIDDEN)


def test_failed_attempts_are_rate_limited_per_address(auth: Authenticator) -> None:
    """After 3 wrong tokens an address gets 429 with Retry-After, even with a good token."""
    for _ in range(3):
        assert auth.authenticate("Bearer nope", "10.0.0.9").outcome is AuthOutcome.INVALID
    limited = auth.authenticate(f"Bearer {VIEWER}", "10.0.0.9")
    assert limited.outcome is AuthOutcome.RATE_LIMITED
    assert limited.outcome.status == 429
    assert limited.retry_after == pytest.approx(20.0)
    assert auth.authenticate(f"Bearer {VIEWER}", "10.0.0.10").ok


def test_missing_credentials_do_not_count_as_failures(auth: Authenticator) -> None:
    """A browser opening the page without a token is not locked out."""
    for _ in range(10):
        auth.authenticate(None, "10.0.0.5")
    assert auth.authenticate(f"Bearer {VIEWER}", "10.0.0.5").ok


def test_results_and_reprs_never_hold_the_token(auth: Authenticator) -> None:
    """Neither the result nor the authenticator's repr contains a presented token."""
    result = auth.authenticate(f"Bearer {ADMIN}", "a")
    for text in (repr(result), repr(auth), str(result)):
        assert ADMIN not in text
        assert hash_token(ADMIN) not in text
