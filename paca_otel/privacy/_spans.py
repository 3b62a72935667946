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
        # no value patterns configured: the same as keys only, and the attributes need no copy
        self._values = attribute_values and bool(scrubber.value_patterns)

    @property
    def wrapped(self) -> SpanExporter:
        """The exporter scrubbed spans are handed to."""
        return self._exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Scrub ``spans`` (copying only those where something matched), then export them."""
        scrubbed: list[ReadableSpan] | None = None
        with handle_internal_errors("scrubbing spans", _logger):
            scrubbed = self._scrub_batch(spans)
        if scrubbed is None:
            # No signal= here: the FAILURE below is what a counting exporter wrapper (see
            # signals/_dropcount.py) records as the batch's loss.
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
        return self._scrub_batch((span,))[0]

    def _scrub_batch(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        """Each span as it is when clean, else its scrubbed copy.

        The loop body is the fast path written out in full, with no call of our own but the
        attribute copy: a span whose keys are all known plain and whose values are all known
        clean, with no events, links or status description, costs the public reads plus two
        C-level set tests. Calling a method per span instead cost about 200 ns more per span
        (benchmarks/bench_scrub.py). New values alone (an id in a path) cost one scan of them;
        anything else goes to :meth:`_scrub_read`.
        """
        scrubber = self._scrubber
        values = self._values
        plain_keys, clean_values = scrubber.known_clean()
        values_need_scrub = scrubber.values_need_scrub
        out: list[ReadableSpan] = []
        append = out.append
        for span in spans:
            attributes: Mapping[str, object] = span.attributes  # type: ignore[assignment]  # never None on a ReadableSpan (an empty proxy at least)
            if values:  # keys alone are read as fast through the proxy as from a copy
                attributes = _snapshot(attributes)
            events = span.events
            links = span.links
            description = span.status.description
            keys_known = plain_keys.issuperset(attributes)
            if keys_known and not events and not links and not description:
                try:
                    if not values or clean_values.issuperset(attributes.values()):
                        append(span)  # the common case: everything seen before
                        continue
                except TypeError:  # an unhashable value (a list): judged one by one
                    pass
                if not values_need_scrub(attributes.values()):
                    append(span)  # new values (an id in a path, a client port), all clean
                    continue
            append(self._scrub_read(span, attributes, events, links, keys_known=keys_known))
        return out

    def _scrub_read(
        self,
        span: ReadableSpan,
        attributes: Mapping[str, object],
        events: Sequence[Event],
        links: Sequence[Link],
        *,
        keys_known: bool,
    ) -> ReadableSpan:
        """``span`` or its scrubbed copy, given what the batch loop has read and found known."""
        scrubber = self._scrubber
        values = self._values
        description = span.status.description
        if (
            (keys_known or not scrubber.needs_scrub(attributes, values=False))
            and not (values and scrubber.values_need_scrub(attributes.values()))
            and not (events and any(_dirty(scrubber, e.attributes, True) for e in events))
            and not (links and any(_dirty(scrubber, k.attributes, values) for k in links))
            and not (description and scrubber.scrub_text(description) is not description)
        ):
            return span
        return _ScrubbedSpan(
            span,
            attributes=self._attributes(span.attributes, values),
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


def _snapshot(attributes: Mapping[str, object]) -> Mapping[str, object]:
    """``attributes`` as a plain ``dict`` when that is cheap, else the mapping itself.

    ``ReadableSpan.attributes`` is a ``MappingProxyType`` over the SDK's ``BoundedAttributes``,
    whose every read is a Python call; the proxy's public ``copy()`` asks the mapping for a
    copy, and ``BoundedAttributes.copy()`` (public too) returns a ``dict`` copied in C. On a
    ``dict`` the scrubber reads keys and values in two C-level set tests: for a span with 11
    attributes that is about 1 us less than reading the values through the proxy (13,700
    fewer instructions, measured with benchmarks/bench_scrub.py's spans).
    """
    try:
        copy = attributes.copy()  # type: ignore[attr-defined]  # MappingProxyType, dict, BoundedAttributes
    except (AttributeError, TypeError):  # some other Mapping: read it as it is
        return attributes
    return copy if type(copy) is dict else attributes


def _dirty(scrubber: Scrubber, attributes: Attributes, values: bool) -> bool:
    """Whether an event's or link's attributes hold anything to scrub."""
    return bool(attributes) and scrubber.needs_scrub(_snapshot(attributes), values=values)  # type: ignore[arg-type]  # not None after the test
