"""Fixtures shared by the alerting tests: the local HTTP receiver channels deliver to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.delivery.test_channels import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP receiver, stopped after the test."""
    peer = Receiver()
    yield peer
    peer.stop()
