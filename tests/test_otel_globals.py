"""The one private OTel hook (set-once guards) is checked, and nothing else private is used."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from opentelemetry import trace

from paca_otel import _otel_globals, configure

PACKAGE = Path(__file__).resolve().parent.parent / "paca_otel"


def test_set_once_guards_are_where_the_hook_expects_them() -> None:
    """Fails loudly when opentelemetry-api moves or renames its set-once guards."""
    assert _otel_globals.guards_present(), (
        "opentelemetry-api changed its set-once guards; update paca_otel/_otel_globals.py"
    )


def test_reconfiguration_replaces_the_global_providers() -> None:
    """A second configure() after shutdown installs its providers as the OTel globals."""
    first = configure(metrics_exporter="none", system_metrics=False)
    first.shutdown(timeout_millis=500)
    second = configure(metrics_exporter="none", system_metrics=False)
    assert trace.get_tracer_provider() is second.tracer_provider


def test_missing_guards_fall_back_to_keeping_the_first_globals(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If the guards disappear, nothing private is written, and one warning says why."""
    module = importlib.import_module("opentelemetry.trace")
    monkeypatch.setattr(module, "_TRACER_PROVIDER_SET_ONCE", None)
    assert _otel_globals.rearm_global_providers() is False
    assert module._TRACER_PROVIDER_SET_ONCE is None
    assert "set-once guards" in caplog.text


# Private names of dependencies the package must not use (issue 6, section 1).
_FORBIDDEN = [
    r"_extract_field_info",
    r"_PROVIDER_SET_ONCE",
    r"\b_Gauge\b",
    r"span\._(attributes|kind|name|status|start_time|end_time)\b",
    r"LoggingHandler\._get_attributes",
    r"\._batch_processor\b",
]


def test_package_uses_no_private_dependency_api_outside_the_hook() -> None:
    """No module but _otel_globals.py names a dependency's private attribute."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_otel_globals.py":
            continue
        text = path.read_text()
        offenders += [f"{path.name}: {p}" for p in _FORBIDDEN if re.search(p, text)]
    assert offenders == []
