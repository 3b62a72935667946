"""Sensitive-data scrubbing for every surface paca-otel emits.

One :class:`Scrubber`, built at set-up from the privacy settings, is shared by the span
exporter wrapper (:class:`ScrubbingSpanExporter`), the log filter and log-record processor
(:class:`ScrubbingLogFilter`, :class:`ScrubbingLogRecordProcessor`), metric labels
(:meth:`Scrubber.scrub_labels`) and JSON-like payloads such as alert notifications, audit
records, reports and API output (:meth:`Scrubber.scrub_payload`).
"""

from __future__ import annotations

from paca_otel.privacy._logs import ScrubbingLogFilter, ScrubbingLogRecordProcessor
from paca_otel.privacy._scrub import (
    BUILTIN_DETECTORS,
    DEFAULT_ALLOW_KEYS,
    DEFAULT_KEY_PATTERNS,
    DEFAULT_VALUE_PATTERNS,
    REDACTED,
    Scrubber,
    build_scrubber,
    luhn_valid,
)
from paca_otel.privacy._spans import ScrubbingSpanExporter

__all__ = [
    "BUILTIN_DETECTORS",
    "DEFAULT_ALLOW_KEYS",
    "DEFAULT_KEY_PATTERNS",
    "DEFAULT_VALUE_PATTERNS",
    "REDACTED",
    "Scrubber",
    "ScrubbingLogFilter",
    "ScrubbingLogRecordProcessor",
    "ScrubbingSpanExporter",
    "build_scrubber",
    "luhn_valid",
]
