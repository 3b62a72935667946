"""The examples in examples/ run as a user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", ["quickstart.py", "custom_metrics.py"])
def test_example_runs(script: str) -> None:
    """The example exits 0 and prints what it promises."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_quickstart_prints_the_seed_aliases() -> None:
    """The seed example shows cpu, memory and disk percentages and the custom metrics."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "cpu" in result.stdout
    assert "request_count=1.0" in result.stdout
