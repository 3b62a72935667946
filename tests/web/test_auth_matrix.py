"""The access matrix of the monitoring API, generated from the app's own route table.

The table is read from the app's OpenAPI document (FastAPI builds it from the registered
routes; since 0.165 included routers are not flattened into ``app.routes``, and their
internals are private). Every operation under the prefix must declare its permission
(``x-permission``), so a new route cannot escape the matrix. Each route is called without a
token (401 unless public) and with each role's token (403 when the role lacks the permission,
anything but 401/403 when it has it), against a real uvicorn; then every one of those calls
must be in the audit log.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from paca_otel.security import MINIMUM_ROLE, Permission, Role
from paca_otel.web._routing import UNAUDITED
from tests.web.conftest import Served

_PREFIX = "/monitoring"

_SAMPLE_PARAMS = {"path": "dashboard.js"}


@dataclass(frozen=True)
class Operation:
    """One operation of the route table."""

    op_id: str
    method: str
    path: str
    permission: Permission | None
    minimum_role: str | None


def _operations(served: Served) -> list[Operation]:
    """Every operation under the prefix, from the app's OpenAPI document."""
    found = []
    for path, methods in served.app.openapi()["paths"].items():
        if not path.startswith(_PREFIX):
            continue
        for method, operation in methods.items():
            assert "x-permission" in operation, f"{method} {path} declares no permission"
            value = operation["x-permission"]
            permission = None if value == "public" else Permission(value)
            found.append(
                Operation(
                    operation["operationId"],
                    method.upper(),
                    path,
                    permission,
                    operation.get("x-minimum-role"),
                )
            )
    return found


def _concrete(path: str) -> str:
    """The route's path with each parameter filled in by a harmless sample value."""
    return re.sub(
        r"\{(\w+)(?::\w+)?\}", lambda m: _SAMPLE_PARAMS.get(m.group(1), "no-such-thing"), path
    )


def _call(client: httpx.Client, method: str, path: str, headers: dict[str, str]) -> int:
    """The status of one call; the body is not read (the event stream never ends)."""
    body: dict[str, Any] | None = {} if method in {"POST", "PUT"} else None
    with client.stream(method, path, headers=headers, json=body) as response:
        return response.status_code


def test_every_route_declares_a_permission_matching_the_policy(served: Served) -> None:
    """x-permission and x-minimum-role agree with the roles table for every route."""
    operations = _operations(served)
    assert len(operations) > 20
    assert len({op.op_id for op in operations}) == len(operations)
    for op in operations:
        if op.permission is not None:
            assert op.minimum_role == MINIMUM_ROLE[op.permission].value, op.path


def test_access_matrix_and_every_access_is_audited(served: Served) -> None:
    """No token: 401 (public routes excepted); each role: 403 exactly when it lacks the right."""
    expected: Counter[tuple[str, str | None, int]] = Counter()
    with httpx.Client(base_url=served.url, timeout=10) as client:
        for op in _operations(served):
            method, permission, path = op.method, op.permission, _concrete(op.path)
            anonymous = _call(client, method, path, {})
            if permission is None:
                assert anonymous not in {401, 403}, (method, path, anonymous)
            else:
                assert anonymous == 401, (method, path, anonymous)
            if op.op_id not in UNAUDITED:
                expected[(op.op_id, None, anonymous)] += 1
            for role in Role:
                status = _call(client, method, path, served.auth(role))
                allowed = permission is None or role.allows(permission)
                if allowed:
                    assert status not in {401, 403}, (role, method, path, status)
                else:
                    assert status == 403, (role, method, path, status)
                if op.op_id not in UNAUDITED:
                    token_name = f"{role.value}-token" if permission is not None else None
                    if op.op_id in {"getSession", "signIn"}:
                        token_name = None  # public: a Bearer header there is not a sign-in
                    expected[(op.op_id, token_name, status)] += 1
        audit = client.get("/monitoring/api/v1/audit?limit=1000", headers=served.auth(Role.ADMIN))
    assert audit.status_code == 200, audit.text
    seen = Counter(
        (item["action"], item["token_name"], item["status"]) for item in audit.json()["items"]
    )
    missing = expected - seen
    assert not missing, f"accesses missing from the audit log: {dict(missing)}"


def test_audit_log_is_admin_only(served: Served) -> None:
    """Viewers and operators get 403 from the audit log; admins read it."""
    with httpx.Client(base_url=served.url) as client:
        for role in (Role.VIEWER, Role.OPERATOR):
            reply = client.get("/monitoring/api/v1/audit", headers=served.auth(role))
            assert reply.status_code == 403
        assert client.get("/monitoring/api/v1/audit", headers=served.auth(Role.ADMIN)).is_success
