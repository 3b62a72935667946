"""Tests for roles and permissions: viewer < operator < admin."""

from __future__ import annotations

import pytest

from paca_otel.errors import ConfigError
from paca_otel.security import MINIMUM_ROLE, Permission, Role, parse_role

# The matrix, written out independently of MINIMUM_ROLE.
EXPECTED = {
    Role.VIEWER: {Permission.READ},
    Role.OPERATOR: {Permission.READ, Permission.WRITE_SILENCES},
    Role.ADMIN: {
        Permission.READ,
        Permission.WRITE_SILENCES,
        Permission.WRITE_RULES,
        Permission.READ_AUDIT,
    },
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_role_matrix(role: Role, permission: Permission) -> None:
    """Viewer reads all but audit; operator also silences; admin also rules and audit."""
    assert role.allows(permission) is (permission in EXPECTED[role])


def test_every_permission_has_a_minimum_role() -> None:
    """A new permission cannot be added without a place in the policy table."""
    assert set(MINIMUM_ROLE) == set(Permission)


def test_roles_are_ordered_by_rank_not_alphabet() -> None:
    """viewer < operator < admin, although "admin" sorts first as a string."""
    assert Role.VIEWER < Role.OPERATOR < Role.ADMIN
    assert Role.ADMIN >= Role.OPERATOR > Role.VIEWER
    assert sorted([Role.ADMIN, Role.VIEWER, Role.OPERATOR]) == [
        Role.VIEWER,
        Role.OPERATOR,
        Role.ADMIN,
    ]
    assert str(Role.ADMIN) == "admin"


def test_parse_role_is_case_insensitive_and_errors_name_choices() -> None:
    """Role names parse in any case; anything else is a ConfigError listing the roles."""
    assert parse_role(" Admin ") is Role.ADMIN
    with pytest.raises(
        ConfigError, match=r"role must be one of viewer, operator, admin; got 'root'"
    ):
        parse_role("root")
    with pytest.raises(ConfigError) as info:
        parse_role("x" * 100)
    assert "x" * 100 not in str(info.value)
