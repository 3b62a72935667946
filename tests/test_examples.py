"""The examples in examples/ run as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"


def _readme_block(heading: str, first_line: str = "") -> str:
    """The first ```python block after ``heading`` (starting with ``first_line``, if given)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    for block in re.findall(r"```python\n(.*?)```", section, re.DOTALL):
        if block.startswith(first_line):
            return str(block)
    msg = f"no python block starting with {first_line!r} after {heading!r} in README.md"
    raise AssertionError(msg)


def _env(*paths: Path) -> dict[str, str]:
    """A user's environment: no paca-otel settings, this checkout's ``paca_otel`` importable.

    Only the scrape port is moved (another process may hold the default 9464); without SMTP
    settings the run shows what a new user gets.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACA_OTEL_", "OTEL_"))}
    env["PACA_OTEL_PROMETHEUS_PORT"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (*paths, ROOT))
    return env


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script, the way a user pastes it into a file and runs it."""
    script = cwd / "pasted.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, env=_env(cwd),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


#: The seed's lines as users paste them (inside a coroutine, as ``await`` needs).
SEED_LINES = (
    "import asyncio",
    "from paca.monitoring import MonitoringManager, MetricsCollector, AlertManager",
    "async def main():",
    "    monitoring = MonitoringManager(); await monitoring.start()",
    "    await monitoring.start_monitoring()",
    "    metrics = await monitoring.get_current_metrics(); print(metrics)",
    '    await monitoring.setup_alert(metric="cpu_usage", threshold=80.0,'
    ' notification_channel="email")',
    '    collector = MetricsCollector(); await collector.record_metric(name="response_time",'
    ' value=0.5, labels={"endpoint": "/api/users"})',
    '    alert_manager = AlertManager(); await alert_manager.add_rule(name="high_memory_usage",'
    ' condition="memory_usage > 90", action="send_email", cooldown=300)',
    "    await monitoring.stop()",
    "asyncio.run(main())",
)


def test_readme_quick_start_runs_when_pasted(tmp_path: Path) -> None:
    """The README's quick start, exactly as printed, exits 0 without SMTP settings."""
    result = _run(_readme_block("## Quick start\n", "import asyncio"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cpu_usage" in result.stdout
    assert "latency_p95" in result.stdout
    assert "Traceback" not in result.stderr
    assert "smtp_host" in result.stderr  # the one warning naming the settings


def test_seed_runs_through_the_readme_reexport(tmp_path: Path) -> None:
    """The README's paca/monitoring/__init__.py makes the seed's imports and calls work."""
    package = tmp_path / "paca" / "monitoring"
    package.mkdir(parents=True)
    (tmp_path / "paca" / "__init__.py").write_text("", encoding="utf-8")
    init = _readme_block("## Quick start\n", "# paca/monitoring/__init__.py")
    (package / "__init__.py").write_text(init, encoding="utf-8")
    seed = "\n".join(SEED_LINES)
    result = _run(seed, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "error_rate" in result.stdout


@pytest.mark.parametrize("script", ["quickstart.py", "custom_metrics.py"])
def test_example_runs(script: str) -> None:
    """The example exits 0 and prints what it promises."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], env=_env(),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_quickstart_prints_the_seed_aliases() -> None:
    """The seed example shows cpu, memory and disk percentages and the custom metrics."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")], env=_env(),
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "cpu" in result.stdout
    assert "orders_placed=1.0" in result.stdout
