"""Roles and what each may do: ``viewer`` < ``operator`` < ``admin``.

The whole access policy is the table :data:`MINIMUM_ROLE` (permission -> least role holding
it), so the auth matrix tests and the API docs read one source:

- ``viewer`` reads everything except the audit log;
- ``operator`` also creates and expires silences;
- ``admin`` also creates, changes and deletes rules, and reads the audit log.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from paca_otel.errors import ConfigError

__all__ = ["MINIMUM_ROLE", "Permission", "Role", "parse_role"]


class Role(str, Enum):
    """A token's role. Roles are ordered: each holds every permission of the ones below it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for operator, 2 for admin."""
        return _RANK[self]

    def allows(self, permission: Permission) -> bool:
        """Whether this role holds ``permission``."""
        return self.rank >= MINIMUM_ROLE[permission].rank

    # str's ordering would compare the names alphabetically ("admin" < "viewer"): rank instead.
    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank >= other.rank

    def __str__(self) -> str:
        return self.value


_RANK: Final = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class Permission(str, Enum):
    """What a request needs; each API route declares one."""

    READ = "read"
    """Metrics, series, alerts, rules, silences, reports, the dashboard, ``/metrics``."""
    WRITE_SILENCES = "silences:write"
    """Create and expire silences."""
    WRITE_RULES = "rules:write"
    """Create, update and delete rules."""
    READ_AUDIT = "audit:read"
    """Read the audit log."""

    def __str__(self) -> str:
        return self.value


MINIMUM_ROLE: Final[dict[Permission, Role]] = {
    Permission.READ: Role.VIEWER,
    Permission.WRITE_SILENCES: Role.OPERATOR,
    Permission.WRITE_RULES: Role.ADMIN,
    Permission.READ_AUDIT: Role.ADMIN,
}


def parse_role(value: str | Role, *, setting: str = "role") -> Role:
    """``value`` as a :class:`Role` (case-insensitive), or a ConfigError naming the choices."""
    if isinstance(value, Role):
        return value
    try:
        return Role(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(role.value for role in Role)
        shown = value if isinstance(value, str) and len(value) <= 32 else "<value>"
        msg = f"{setting} must be one of {choices}; got {shown!r}"
        raise ConfigError(msg) from None
