"""Fixtures every test shares: a clean OpenTelemetry global state per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from paca_otel import testing


@pytest.fixture(autouse=True)
def _clean_paca_otel() -> Iterator[None]:
    """Each test starts and ends with paca-otel unconfigured."""
    testing.reset()
    yield
    testing.reset()
