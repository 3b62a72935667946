"""paca-otel's own span processors behind one slot of the TracerProvider.

Why: the SDK calls ``on_start``, ``_on_ending`` and ``on_end`` on every registered processor
for every span, each a Python call through its multi-processor loop, whether the processor
does anything there or not: registering one more no-op processor measured +0.4 us per span.
Ours (the RED processor, one counted batch processor per exporter) act on finished spans
only. Registered as one :class:`SpanFanOut`, they cost the SDK's dispatch once, and each of
them only its ``on_end``; the ``on_start`` hooks to call are decided once, at set-up (only
those a processor overrides). With the RED processor and one exporter the saving is within
the noise of ``benchmarks/bench_span_processor.py``; it grows with every exporter.

Only processors paca-otel builds go here. A user's own processors are registered on the
provider directly, so the SDK keeps calling every hook they implement.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

__all__ = ["SpanFanOut"]


class SpanFanOut(SpanProcessor):
    """Calls ``processors`` in order, as the SDK would if each were registered on its own.

    Like the SDK's own loop, an exception in one processor propagates (ours never raise on the
    span path). ``shutdown`` and ``force_flush`` reach every processor.
    """

    def __init__(self, processors: Sequence[SpanProcessor]) -> None:
        self.processors = tuple(processors)
        self._on_start = tuple(
            p.on_start for p in self.processors if type(p).on_start is not SpanProcessor.on_start
        )
        self._on_end = tuple(p.on_end for p in self.processors)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """The ``on_start`` of the processors that implement one (often none)."""
        for on_start in self._on_start:
            on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        """Each processor's ``on_end``, in order."""
        for on_end in self._on_end:
            on_end(span)

    def shutdown(self) -> None:
        """Shut every processor down, in order."""
        for processor in self.processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush every processor within one shared deadline; False if any did not finish."""
        deadline = time.monotonic() + timeout_millis / 1e3
        done = True
        for processor in self.processors:
            remaining = int((deadline - time.monotonic()) * 1e3)
            if remaining <= 0 or not processor.force_flush(remaining):
                done = False
        return done
