"""The public surface: __all__ is exactly the names the package exports."""

from __future__ import annotations

import paca_otel


def test_all_matches_public_names() -> None:
    """Every public name is in __all__ and every __all__ entry exists (changes are visible)."""
    public = {name for name in vars(paca_otel) if not name.startswith("_")}
    public -= {"annotations"}  # from __future__
    modules = {name for name in public if type(getattr(paca_otel, name)).__name__ == "module"}
    assert set(paca_otel.__all__) - {"__version__"} == public - modules


def test_seed_names_are_importable() -> None:
    """The seed API imports from the package root."""
    from paca_otel import AlertManager, MetricsCollector, MonitoringManager

    assert callable(AlertManager)
    assert callable(MetricsCollector)
    assert callable(MonitoringManager)
