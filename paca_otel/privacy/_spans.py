"""Span scrubbing on the export path: a ``SpanExporter`` wrapper.

Why the exporter and not a span processor: by ``on_end`` a span's attributes are frozen (the SDK
hands processors an immutable ``ReadableSpan``), and attributes set after ``on_start`` never pass
through a processor at all. The exporter is the one public seam every finished span crosses on
its way out, and with a ``BatchSpanProcessor`` it runs on the export thread, off the request
path. Spans that hold nothing sensitive are passed through as they are; only a span where
something matched is copied, through ``ReadableSpan``'s public constructor (the SDK's own
processors see the original; only what leaves the process is scrubbed).

Scrubbed: span attributes, event attributes (``exception.message`` / ``exception.stacktrace``
included), link attributes and the status description. Not scrubbed: span and event names
(low-cardinality by the OTel conventions) and the resource (static configuration, set once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status
from opentelemetry.util.types import Attributes

from paca_otel._internal import drops, handle_internal_errors
from paca_otel.privacy._scrub import Scrubber

__all__ = ["ScrubbingSpanExporter"]

_logger = logging.getLogger("paca_otel.privacy")


class _ScrubbedEvent(Event):
    """An event copy with scrubbed attributes that still reports the original drop count."""

    def __init__(self, original: Event, attributes: Attributes) -> None:
        super().__init__(original.name, attributes, original.timestamp)
        self.__dropped = original.dropped_attributes

    @property
    def dropped_attributes(self) -> int:
        return self.__dropped


class _ScrubbedLink(Link):
    """A link copy with scrubbed attributes that still reports the original drop count."""

    def __init__(self, original: Link, attributes: Attributes) -> None:
        super().__init__(original.context, attributes)
        self.__dropped = original.dropped_attributes

    @property
    def dropped_attributes(self) -> int:
        return self.__dropped


class _ScrubbedSpan(ReadableSpan):
    """A span copy built with ``ReadableSpan``'s public constructor.

    The constructor cannot take drop counts (the SDK derives them from its private bounded
    containers), so the copy reports the original's counts through the public properties.
    """

    def __init__(
        self,
        original: ReadableSpan,
        attributes: Attributes,
        events: Sequence[Event],
        links: Sequence[Link],
        status: Status,
    ) -> None:
        super().__init__(
            name=original.name,
            context=original.get_span_context(),
            parent=original.parent,
            resource=original.resource,
            attributes=attributes,
            events=events,
            links=links,
            kind=original.kind,
            status=status,
            start_time=original.start_time,
            end_time=original.end_time,
            instrumentation_scope=original.instrumentation_scope,
        )
        self.__dropped = (
            original.dropped_attributes,
            original.dropped_events,
            original.dropped_links,
        )

    @property
    def dropped_attributes(self) -> int:
        return self.__dropped[0]

    @property
    def dropped_events(self) -> int:
        return self.__dropped[1]

    @property
    def dropped_links(self) -> int:
        return self.__dropped[2]


class ScrubbingSpanExporter(SpanExporter):
    """Scrubs each span before handing the batch to the wrapped exporter.

    If scrubbing itself fails (a bug), the batch is dropped and counted rather than exported
    unscrubbed: leaking a secret is worse than losing a batch.

    Args:
        exporter: The exporter that sends spans out (OTLP, console, in-memory...).
        scrubber: The shared scrubber built from the privacy settings.
        attribute_values: Whether value patterns apply to span and link attributes too. On
            by default. Off, span and link attributes are scrubbed by key only, which saves
            reading every attribute value (the costliest part; see benchmarks/bench_scrub.py);
            events (exception messages) and the status description are still value-scanned.
    """

    def __init__(
        self, exporter: SpanExporter, scrubber: Scrubber, *, attribute_values: bool = True
    ) -> None:
        self._exporter = exporter
        self._scrubber = scrubber
        self._values = attribute_values

    @property
    def wrapped(self) -> SpanExporter:
        """The exporter scrubbed spans are handed to."""
        return self._exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Scrub ``spans`` (copying only those where something matched), then export them."""
        scrubbed: list[ReadableSpan] | None = None
        with handle_internal_errors("scrubbing spans", _logger):
            scrubbed = [self.scrub_span(span) for span in spans]
        if scrubbed is None:
            # No signal= here: the FAILURE below is what a counting exporter wrapper (see
            # signals/dropcount.py) records as the batch's loss.
            drops.add("scrub_failed", len(spans))
            return SpanExportResult.FAILURE
        return self._exporter.export(scrubbed)

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self._exporter.force_flush(timeout_millis)

    def scrub_span(self, span: ReadableSpan) -> ReadableSpan:
        """``span`` itself when nothing in it is sensitive, else a scrubbed copy."""
        scrubber = self._scrubber
        attributes = span.attributes
        events = span.events
        links = span.links
        description = span.status.description
        dirty = scrubber.needs_scrub(attributes, values=self._values)  # type: ignore[arg-type]  # ReadableSpan.attributes is never None (an empty proxy at least)
        if not dirty and events:
            dirty = any(e.attributes and scrubber.needs_scrub(e.attributes) for e in events)
        if not dirty and links:
            dirty = any(
                k.attributes and scrubber.needs_scrub(k.attributes, values=self._values)
                for k in links
            )
        if not dirty and description:
            dirty = scrubber.scrub_text(description) is not description
        if not dirty:
            return span
        return _ScrubbedSpan(
            span,
            attributes=self._attributes(attributes, self._values),
            events=[self._event(e) for e in events],
            links=[self._link(k) for k in links],
            status=(
                Status(span.status.status_code, scrubber.scrub_text(description))
                if description
                else span.status
            ),
        )

    def _event(self, event: Event) -> Event:
        new = self._attributes(event.attributes, True)
        return event if new is event.attributes else _ScrubbedEvent(event, new)

    def _link(self, link: Link) -> Link:
        new = self._attributes(link.attributes, self._values)
        return link if new is link.attributes else _ScrubbedLink(link, new)

    def _attributes(self, attributes: Attributes, values: bool) -> Attributes:
        if not attributes:
            return attributes
        scrubbed: Mapping[str, object] = self._scrubber.scrub_mapping(attributes, values=values)
        return attributes if scrubbed is attributes else scrubbed  # type: ignore[return-value]  # values are the original attribute values or the marker string
