"""The examples in examples/ run as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The examples import this checkout's paca_otel, not whichever one is installed (editable
# installs may point at another worktree).
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}


@pytest.mark.parametrize("script", ["quickstart.py", "custom_metrics.py"])
def test_example_runs(script: str) -> None:
    """The example exits 0 and prints what it promises."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True, text=True, timeout=120, check=False, env=ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_quickstart_prints_the_seed_aliases() -> None:
    """The seed example shows cpu, memory and disk percentages and the custom metrics."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True, text=True, timeout=120, check=True, env=ENV,
    )  # fmt: skip
    assert "cpu" in result.stdout
    assert "request_count=1.0" in result.stdout
