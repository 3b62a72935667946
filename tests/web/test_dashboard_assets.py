"""The dashboard's static files ship in the wheel: the page works offline after `pip install`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.peers import ROOT

_ASSETS = (
    "paca_otel/web/static/dashboard.html",
    "paca_otel/web/static/dashboard.js",
    "paca_otel/web/static/dashboard.css",
    "paca_otel/web/static/vendor/uplot/uPlot.iife.min.js",
    "paca_otel/web/static/vendor/uplot/uPlot.min.css",
    "paca_otel/web/static/vendor/uplot/LICENSE",
)


def test_wheel_contains_the_dashboard_and_vendored_uplot(tmp_path: Path) -> None:
    """A wheel built from the tree holds the page, its script and uPlot with its licence."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [asset for asset in _ASSETS if asset not in names]
    assert not missing, missing
