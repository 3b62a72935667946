"""schemathesis over every operation of the monitoring API, with and without a token: no 5xx.

The cases are generated from the app's own OpenAPI document and sent to a real uvicorn. The
number of examples per operation is small so the suite stays fast; the total is printed for
the report (``-s``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from paca_otel.security import Role
from tests.web.conftest import Served

schemathesis = pytest.importorskip("schemathesis")

pytestmark = pytest.mark.filterwarnings(
    # schemathesis' own strategies use `random`; hypothesis warns about it, not about our code
    "ignore::hypothesis.errors.HypothesisDeprecationWarning"
)

_EXAMPLES = 6
_LENIENT = {"auth_failure_limit": 1_000_000}  # fuzzed sign-ins must not lock the fuzzer out


def _send(kwargs: dict[str, Any]) -> int:
    """Send one case with httpx, streaming: only the status is read (the event stream never
    ends, so a client that reads the whole body would wait forever)."""
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        body["content"] = kwargs["data"]
    try:
        with (
            httpx.Client(timeout=10, cookies=kwargs.get("cookies") or None) as client,
            client.stream(
                kwargs["method"], kwargs["url"], headers=kwargs.get("headers"),
                params=kwargs.get("params"), **body,
            ) as response,
        ):  # fmt: skip
            return response.status_code
    except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError):
        return 0  # a header or URL no HTTP client sends (e.g. "Bearer " with nothing after)


def _run(served: Served, headers: dict[str, str]) -> tuple[Counter[int], list[str]]:
    """Fuzz every operation; return the statuses seen and the 5xx replies."""
    schema = schemathesis.openapi.from_dict(served.app.openapi())
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/monitoring"):
            continue

        @settings(
            max_examples=_EXAMPLES, deadline=None, database=None, derandomize=True,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            status = _send(case.as_transport_kwargs(base_url=served.url, headers=headers))
            statuses[status] += 1
            if status >= 500:
                errors.append(f"{case.method} {case.formatted_path}: {status}")

        check()
    return statuses, errors


@pytest.mark.parametrize("served", [_LENIENT], indirect=True)
def test_no_server_errors_without_a_token(served: Served) -> None:
    """Anonymous fuzzing of every operation gets 2xx/4xx only."""
    statuses, errors = _run(served, {})
    print(f"schemathesis without a token: {statuses.total()} cases, statuses {dict(statuses)}")
    assert statuses[401] > 0
    assert errors == []


@pytest.mark.parametrize("served", [_LENIENT], indirect=True)
def test_no_server_errors_with_an_admin_token(served: Served) -> None:
    """Fuzzing every operation as an admin (rules and silences really change) gets no 5xx."""
    statuses, errors = _run(served, served.auth(Role.ADMIN))
    print(f"schemathesis with an admin token: {statuses.total()} cases, statuses {dict(statuses)}")
    assert sum(n for status, n in statuses.items() if 200 <= status < 300) > 0
    assert errors == []
