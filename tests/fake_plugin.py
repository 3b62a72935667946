"""A throw-away installed distribution registering OTel SDK entry points, for plug-in tests.

Writes ``paca_fake_plugin`` (a span exporter and a sampler factory) plus a ``.dist-info`` with
``entry_points.txt`` into a temporary folder on ``sys.path``: ``importlib.metadata`` then finds
it exactly as it finds a pip-installed exporter such as zipkin's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

MODULE = """
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

EXPORTED = []
SAMPLER_ARGS = []


class FakeSpanExporter(SpanExporter):
    def export(self, spans):
        EXPORTED.extend(span.name for span in spans)
        return SpanExportResult.SUCCESS


def fake_sampler(arg):
    SAMPLER_ARGS.append(arg)
    return ALWAYS_OFF if arg == "0.0" else ALWAYS_ON
"""

ENTRY_POINTS = """\
[opentelemetry_traces_exporter]
fakezipkin = paca_fake_plugin:FakeSpanExporter

[opentelemetry_traces_sampler]
fake_sampler = paca_fake_plugin:fake_sampler
"""


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the fake plug-in importable and discoverable for the rest of the test."""
    import sys

    from paca_otel.config import _telemetry

    root = tmp_path / "site"
    dist = root / "paca_fake_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (root / "paca_fake_plugin.py").write_text(MODULE)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: paca-fake-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "paca_fake_plugin", raising=False)
    _telemetry._entry_point_names.cache_clear()


def uninstall() -> None:
    """Forget the cached entry-point names (call after the test's monkeypatch undid sys.path)."""
    from paca_otel.config import _telemetry

    _telemetry._entry_point_names.cache_clear()
