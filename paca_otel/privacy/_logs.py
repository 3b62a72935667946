"""Log scrubbing at the two places a record can carry a secret out.

- :class:`ScrubbingLogFilter` (a ``logging.Filter``) scrubs a stdlib ``LogRecord`` before any
  handler formats it: ``extra=`` fields by key and value, ``%``-args (mapping args by key),
  the formatted traceback (``exc_text``) and the formatted message by value (``"token=abc"``,
  ``"Bearer ..."``). A record with args is formatted once here and keeps the scrubbed text as
  its message (``args`` become ``None``), because a secret can be split between template and
  args (``"token=%s"``). Put it on the handlers (the JSON stream handler and the OTel bridge):
  filters on a logger do not see records propagated from child loggers. It edits the record in
  place, so the first handler's filter protects every handler after it.
- :class:`ScrubbingLogRecordProcessor` (an OTel ``LogRecordProcessor``) scrubs records that
  reach the OTel logs SDK by any other route (a direct ``Logger.emit``, another bridge): it
  rewrites the record's attributes and body in ``on_emit``. The SDK calls processors in the
  order they were added and the record is read-write there, so it must be added to the
  ``LoggerProvider`` before the exporting processor.

Both are record paths: they never raise into the code that logged. If scrubbing fails, the
filter drops the record and the processor blanks its body and attributes, each counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

from paca_otel._internal import drops, handle_internal_errors
from paca_otel.privacy._scrub import Scrubber

__all__ = ["ScrubbingLogFilter", "ScrubbingLogRecordProcessor"]

_logger = logging.getLogger("paca_otel.privacy")

# Attributes every LogRecord has (plus those formatters and OTel's logging instrumentation
# add); anything else on a record came from ``extra=``.
_STANDARD: frozenset[str] = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "taskName"}
    | {"otelTraceID", "otelSpanID", "otelServiceName", "otelTraceSampled"}
)


_FORMATTER = logging.Formatter()
_JSON_LIKE = (str, int, float, bool, type(None), Mapping, list, tuple)


def _scrubbed_str(scrubber: Scrubber, value: object) -> object:
    """``value`` itself when its ``str`` holds no secret, else the scrubbed ``str``."""
    try:
        text = str(value)
    except Exception:  # a broken __str__: formatters will fall back to repr, leave it
        return value
    scrubbed = scrubber.scrub_text(text)
    return value if scrubbed is text else scrubbed


class ScrubbingLogFilter(logging.Filter):
    """Scrubs ``extra`` fields, args and the message of every record it sees, in place.

    Args:
        scrubber: The shared scrubber built from the privacy settings.
    """

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self._scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record``; keep it (``True``) unless scrubbing itself failed."""
        with handle_internal_errors("scrubbing a log record", _logger):
            self._scrub(record)
            return True
        drops.add("scrub_failed", signal="logs")  # the record is lost: count it as such
        return False

    def _scrub(self, record: logging.LogRecord) -> None:
        scrubber = self._scrubber
        fields = vars(record)
        for key in [k for k in fields if k not in _STANDARD]:
            value = fields[key]
            if scrubber.is_sensitive_key(key):
                fields[key] = scrubber.marker
            elif isinstance(value, _JSON_LIKE):
                new = scrubber.scrub_payload(value)
                if new is not value:
                    fields[key] = new
            else:  # an object handlers will str(): replace it by its scrubbed text if need be
                fields[key] = _scrubbed_str(scrubber, value)
        if record.exc_info and not record.exc_text:
            # Format the traceback once here (formatters reuse exc_text) so it can be scrubbed:
            # exception messages often quote the bad input.
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrubber.scrub_text(record.exc_text)
        args = record.args
        if isinstance(args, Mapping):
            record.args = scrubber.scrub_payload(args)  # type: ignore[assignment]  # a mapping stays a mapping
        elif isinstance(args, tuple) and args:
            record.args = tuple(scrubber.scrub_payload(arg) for arg in args)
        if not isinstance(record.msg, str):
            record.msg = scrubber.scrub_payload(record.msg)
            return
        if not record.args:
            record.msg = scrubber.scrub_text(record.msg)
            return
        # A secret can be split between template and args ("token=%s", secret): scrub the
        # formatted message, and keep it as the message so nothing re-formats the raw args.
        try:
            message = record.getMessage()
        except Exception:  # bad %-args are the caller's bug: scrub the parts instead
            record.msg = scrubber.scrub_text(record.msg)
            return
        record.msg = scrubber.scrub_text(message)
        record.args = None


class ScrubbingLogRecordProcessor(LogRecordProcessor):
    """Scrubs an OTel log record's attributes and body before later processors export it.

    Args:
        scrubber: The shared scrubber built from the privacy settings.
    """

    def __init__(self, scrubber: Scrubber) -> None:
        self._scrubber = scrubber

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Rewrite sensitive attributes and body parts of ``log_record`` in place."""
        record = log_record.log_record
        with handle_internal_errors("scrubbing an OTel log record", _logger):
            self._scrub(record)
            return
        drops.add("scrub_failed")
        record.body = self._scrubber.marker
        record.attributes = {}

    def _scrub(self, record: LogRecord) -> None:
        scrubber = self._scrubber
        attributes = record.attributes
        if attributes:
            scrubbed = scrubber.scrub_mapping(attributes)
            if scrubbed is not attributes:
                try:
                    for key, value in scrubbed.items():
                        if value is not attributes[key]:
                            attributes[key] = value  # type: ignore[index]  # read-write in on_emit; TypeError handled
                except TypeError:  # an immutable mapping: replace it whole
                    record.attributes = dict(scrubbed)  # type: ignore[arg-type]  # original values or the marker
        if record.body is not None:
            body = scrubber.scrub_payload(record.body)
            if body is not record.body:
                record.body = body  # type: ignore[assignment]  # a scrubbed AnyValue is an AnyValue

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here."""
        return True
