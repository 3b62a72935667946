"""Prometheus exposition that passes ``promtool check metrics``.

OpenTelemetry's semantic conventions name some gauges ``*.count`` (``process.thread.count``,
``process.unix.file_descriptor.count``, ``system.network.connection.count``). The OTel
Prometheus exporter turns them into ``*_count`` gauges, which Prometheus reserves for histogram
and summary samples: promtool flags them and PromQL users misread them. This collector sits
between the exporter's registry and the scrape endpoint and exposes such gauges as ``<stem>s``
(``process_threads``, ``process_unix_file_descriptors``), the way node_exporter and the Go
client name counts of things. Only the exposition changes; OTLP keeps the semconv names.
Written by hand because neither prometheus_client nor the OTel exporter can rename families.

It is also the scrape's safety net for label values UTF-8 cannot encode (a lone surrogate from
a ``surrogateescape``-decoded device name, or from the raw OTel API): prometheus_client would
raise ``UnicodeEncodeError`` for the whole scrape, so such code points become U+FFFD here.
``MetricsCollector`` already cleans its labels at record time; this covers everything else.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from paca_otel.signals.labels import safe_text

_RESERVED_TYPES = frozenset({"histogram", "summary", "gaugehistogram"})


def exposition_name(name: str, metric_type: str) -> str:
    """The name a family is exposed under (changed only for ``*_count`` non-histograms)."""
    if metric_type not in _RESERVED_TYPES and name.endswith("_count"):
        return name[: -len("_count")] + "s"
    return name


class PromLintCollector(Collector):
    """Re-exposes every family of ``source``, renaming ``*_count`` gauges (see module doc)."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        for family in self._source.collect():
            new = exposition_name(family.name, family.type)
            unsafe = not family.documentation.isascii() or any(
                not _ascii_labels(sample) for sample in family.samples
            )
            if new != family.name or unsafe:
                documentation = safe_text(family.documentation)
                renamed = Metric(new, documentation, family.type, family.unit)
                for sample in family.samples:
                    sample_name = new + sample.name[len(family.name) :]
                    labels = sample.labels
                    if unsafe:
                        labels = {safe_text(k): safe_text(v) for k, v in labels.items()}
                    renamed.samples.append(sample._replace(name=sample_name, labels=labels))
                yield renamed
            else:
                yield family


def _ascii_labels(sample: Sample) -> bool:
    """Whether every label of ``sample`` is plain ASCII (the cheap, common case)."""
    return all(key.isascii() and value.isascii() for key, value in sample.labels.items())
