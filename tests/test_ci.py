"""CI (.ci/run) tests what a new user gets: a fresh venv with the newest allowed versions."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_builds_a_fresh_venv_and_runs_the_readme_test_command_in_it() -> None:
    """.ci/run recreates its own venv, upgrades eagerly, and runs scripts/test with its python."""
    script = (ROOT / ".ci" / "run").read_text()
    assert "-m venv --clear" in script
    assert "--upgrade-strategy eager" in script
    assert 'export PYTHON="$PY"' in script
    assert script.rstrip().endswith("bash scripts/test")
    assert "PACA_OTEL_REQUIRE_PEERS=1" in script


def test_ci_venv_folder_is_ignored_by_git() -> None:
    """The venv CI creates inside the repository never shows up as a change."""
    result = subprocess.run(
        ["git", "check-ignore", "-q", ".venv-ci/bin/python"], cwd=ROOT, check=False
    )
    assert result.returncode == 0
