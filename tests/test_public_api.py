"""The public surface: __all__ is exactly the names the package exports."""

from __future__ import annotations

import paca_otel


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
        "('yaml', 'httpx', 'paca_otel.alerting.promql', 'paca_otel.alerting.channels', "
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
