"""Fixtures every test shares: a clean OpenTelemetry global state per test."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest

from paca_otel import testing
from tests.peers import peers_required


@pytest.fixture(autouse=True)
def _clean_paca_otel() -> Iterator[None]:
    """Each test starts and ends with paca-otel unconfigured."""
    testing.reset()
    yield
    testing.reset()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    """With PACA_OTEL_REQUIRE_PEERS=1 (CI) a skipped test fails: nothing is silently skipped."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and peers_required() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (PACA_OTEL_REQUIRE_PEERS=1): {report.longrepr}"
