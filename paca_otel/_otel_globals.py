"""Re-arming the OpenTelemetry API's set-once guards, the one private hook paca-otel uses.

The OTel API lets each global provider be set once per process and offers no public way to
replace it. paca-otel supports re-configuration (``configure`` again after ``shutdown``, a
``MonitoringManager`` stopped and started, test suites), which needs the global replaced. The
only public alternative, a delegating provider installed once, would change what
``trace.get_tracer_provider()`` returns for every user (no more SDK ``TracerProvider`` to call
``add_span_processor`` on), so this module re-arms the guards instead, with a fallback: if the
guards are not where they are expected, it changes nothing, warns once, and the first
configuration's globals stay (each :class:`~paca_otel._setup.Telemetry` still works through its
own providers). ``tests/test_otel_globals.py`` fails loudly when the hook moves.
"""

from __future__ import annotations

import importlib
import logging

from paca_otel._internal import warn_once

logger = logging.getLogger("paca_otel")

#: (module, attribute) of each set-once guard in opentelemetry-api (stable since 1.0).
GUARDS: tuple[tuple[str, str], ...] = (
    ("opentelemetry.trace", "_TRACER_PROVIDER_SET_ONCE"),
    ("opentelemetry.metrics._internal", "_METER_PROVIDER_SET_ONCE"),
    ("opentelemetry._logs._internal", "_LOGGER_PROVIDER_SET_ONCE"),
)


def guards_present() -> bool:
    """Whether every guard exists and is the API's ``Once`` (what the hook relies on)."""
    try:
        once_type = importlib.import_module("opentelemetry.util._once").Once
        return all(
            isinstance(getattr(importlib.import_module(module), name, None), once_type)
            for module, name in GUARDS
        )
    except (ImportError, AttributeError):
        return False


def rearm_global_providers() -> bool:
    """Let the next ``set_*_provider`` calls take effect; False (and a warning) if impossible."""
    if not guards_present():
        warn_once(
            logger,
            "otel-globals-hook",
            "paca-otel: this opentelemetry-api no longer exposes its set-once guards; the "
            "first configure()'s providers stay the OTel globals (the handle's own providers "
            "still work)",
        )
        return False
    once_type = importlib.import_module("opentelemetry.util._once").Once
    for module, name in GUARDS:
        setattr(importlib.import_module(module), name, once_type())
    return True
