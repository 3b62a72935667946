"""The public surface: __all__ is exactly the names the package exports, every public module's
__all__ matches the committed tests/public_api.txt, and the README and examples import only
names listed there."""

from __future__ import annotations

import ast
import difflib
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import paca_otel
from tests.public_api import FILE, read_surface, render_surface

ROOT = Path(__file__).resolve().parent.parent


def test_all_matches_public_names() -> None:
    """Every public name is in __all__ and every __all__ entry exists (changes are visible)."""
    for name in paca_otel.__all__:
        getattr(paca_otel, name)  # lazy names resolve
    public = {name for name in vars(paca_otel) if not name.startswith("_")}
    public -= {"annotations", "TYPE_CHECKING", "Any"}  # from __future__ and typing
    modules = {name for name in public if type(getattr(paca_otel, name)).__name__ == "module"}
    assert set(paca_otel.__all__) - {"__version__"} == public - modules
    assert dir(paca_otel) == sorted(paca_otel.__all__)


def test_import_loads_no_alerting_export_or_yaml() -> None:
    """``import paca_otel`` alone loads neither the channels, PromQL export, YAML nor httpx."""
    import subprocess
    import sys

    code = (
        "import sys, paca_otel; heavy = [m for m in sys.modules if m in "
        "('yaml', 'httpx', 'paca_otel.rules._promql', 'paca_otel.delivery.channels', "
        "'fastapi', 'opentelemetry.sdk.metrics')]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_seed_names_are_importable() -> None:
    """The seed API imports from the package root."""
    from paca_otel import AlertManager, MetricsCollector, MonitoringManager

    assert callable(AlertManager)
    assert callable(MetricsCollector)
    assert callable(MonitoringManager)


def test_public_modules_match_the_committed_file() -> None:
    """Each module in tests/public_api.txt exports exactly the names listed there."""
    committed = FILE.read_text(encoding="utf-8")
    surface = {}
    for module_name in read_surface(committed):
        exported = list(importlib.import_module(module_name).__all__)
        assert len(exported) == len(set(exported)), f"{module_name}.__all__ repeats a name"
        surface[module_name] = exported
    actual = render_surface(surface)
    if actual != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                "tests/public_api.txt (committed)",
                "the code's __all__",
            )
        )
        pytest.fail(
            "the public surface changed; if intended, run `python scripts/public-api` and "
            f"commit tests/public_api.txt with the change:\n{diff}"
        )


def test_every_listed_name_exists() -> None:
    """No module lists a name in __all__ that it does not define (lazy names resolve)."""
    for module_name, names in read_surface().items():
        module = importlib.import_module(module_name)
        missing = [name for name in names if not hasattr(module, name)]
        assert missing == [], f"{module_name} lists undefined names {missing}"


def _documented_code() -> Iterator[tuple[str, ast.Module]]:
    """(where, parsed code) of every Python block of the README and every example script."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for number, block in enumerate(re.findall(r"```python\n(.*?)```", readme, re.S), 1):
        yield f"README.md python block {number}", ast.parse(block)
    for path in sorted((ROOT / "examples").glob("*.py")):
        yield f"examples/{path.name}", ast.parse(path.read_text(encoding="utf-8"))


def test_readme_and_examples_use_only_public_names() -> None:
    """Every ``from paca_otel.X import Y`` (and ``paca_otel.Y``) the docs show is listed public."""
    surface = read_surface()
    problems = []
    for where, tree in _documented_code():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("paca_otel"):
                module = str(node.module)
                for alias in node.names:
                    if alias.name not in surface.get(module, ()):
                        problems.append(f"{where}: from {module} import {alias.name}")
            elif isinstance(node, ast.Import):
                problems += [
                    f"{where}: import {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("paca_otel") and alias.name not in surface
                ]
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "paca_otel"
                and node.attr not in surface["paca_otel"]
            ):
                problems.append(f"{where}: paca_otel.{node.attr}")
    assert problems == [], "not in tests/public_api.txt: " + "; ".join(problems)


def test_the_docs_are_checked_at_all() -> None:
    """The README check above sees the README's imports (a guard against a broken regex)."""
    imported = {
        node.module
        for _where, tree in _documented_code()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert {"paca_otel", "paca_otel.web.api", "paca_otel.analysis.history"} <= imported
