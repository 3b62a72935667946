"""Structured logs: JSON lines on stderr and the stdlib -> OpenTelemetry log bridge.

:class:`JsonFormatter` renders each ``logging`` record as one JSON object per line, carrying the
ids of the span that was current when the record was logged, so a log line can be joined to its
trace by any log shipper. :func:`install_logging` attaches that formatter on a stream handler
and, next to it, OTel's bridge handler so the same records leave over OTLP; calling it again
replaces what it attached instead of doubling every line.

Logging is a record path: nothing here raises into the code that called ``logger.info``.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.trace import format_span_id, format_trace_id

from paca_otel import _internal
from paca_otel.signals._redact import redactor

__all__ = ["JsonFormatter", "LoggingHandles", "OTelBridgeHandler", "install_logging"]

# Attributes every LogRecord has (plus the ones Formatter.format and OTel's logging
# instrumentation add); anything else on a record came from ``extra=``.
_RESERVED: frozenset[str] = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "taskName"}
    | {"otelTraceID", "otelSpanID", "otelServiceName", "otelTraceSampled"}
)

# Loggers whose records the OTel bridge must not forward: the SDK's own (an exporter that logs
# its failure would otherwise queue a record that fails to export, forever).
_BRIDGE_EXCLUDED_PREFIX = "opentelemetry"


def _rfc3339(created: float) -> str:
    """``created`` (epoch seconds) as RFC 3339 UTC with milliseconds, e.g. ``...T12:00:00.123Z``."""
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def _to_json(value: object) -> object:
    """``json.dumps`` fallback: sets become lists, other objects their ``str``/``repr``.

    ``str`` where the type defines a readable one (datetime, UUID, Path, Decimal, enums...),
    ``repr`` otherwise, so an object without one still says what it was.
    """
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if type(value).__str__ is not object.__str__:
        try:
            return str(value)
        except Exception:  # a broken __str__ must not break logging; try repr instead
            pass
    return _safe_repr(value)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not break logging
        return f"<unrepresentable {type(value).__name__}>"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line.

    Keys, in order: ``timestamp`` (RFC 3339 UTC, ms), ``level``, ``logger``, ``message``,
    ``service.name``, then ``trace_id``/``span_id`` (32/16 lowercase hex) when a valid span is
    current, ``exception``/``stack`` when present, then every ``extra=`` field. An extra whose
    name clashes with one of those keys is kept as ``extra.<name>``. Values JSON cannot carry
    are rendered with ``str``/``repr``; NaN and infinities become strings (bare ``NaN`` is not
    JSON). The formatter never raises: a record it cannot render still yields a line saying so.

    Args:
        service_name: Value of the ``service.name`` key, as in the OTel resource.
    """

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record``; falls back to a minimal line if anything about it is broken."""
        try:
            return self._format(record)
        except Exception as exc:  # formatting is a record path: never raise
            return self._fallback(record, exc)

    def _format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception as exc:  # bad %-args are the caller's bug, keep the line
            message = f"{_safe_repr(record.msg)} % {_safe_repr(record.args)} ({exc!r})"
        payload: dict[str, Any] = {
            "timestamp": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "service.name": self.service_name,
        }
        self._add_trace_ids(record, payload)
        if record.exc_info and not record.exc_text:
            # Cache like logging.Formatter does, so several handlers format the traceback once.
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)

        extras: dict[str, Any] = {}
        for key, value in vars(record).items():
            if key in _RESERVED:
                continue
            extras[f"extra.{key}" if key in payload else key] = value
        payload.update(extras)
        try:
            return json.dumps(payload, default=_to_json, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            # Some extra is unserialisable (NaN, circular, non-str keys): fix just those.
            for key, value in extras.items():
                try:
                    json.dumps(value, default=_to_json, allow_nan=False)
                except Exception:  # whatever broke (even a raising __repr__), keep the line
                    payload[key] = _safe_repr(value)
            return json.dumps(payload, default=_to_json, allow_nan=False)

    @staticmethod
    def _add_trace_ids(record: logging.LogRecord, payload: dict[str, Any]) -> None:
        """Add the ids of the span current when ``record`` was logged.

        Prefers ids OTel's logging instrumentation stamped on the record at creation time
        (right even if this formatter runs later on another thread, behind a QueueHandler),
        else reads the context of the thread that is formatting.
        """
        trace_id = getattr(record, "otelTraceID", None)
        span_id = getattr(record, "otelSpanID", None)
        if isinstance(trace_id, str) and isinstance(span_id, str) and trace_id.strip("0"):
            payload["trace_id"] = trace_id
            payload["span_id"] = span_id
            return
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            payload["trace_id"] = format_trace_id(context.trace_id)
            payload["span_id"] = format_span_id(context.span_id)

    def _fallback(self, record: logging.LogRecord, exc: BaseException) -> str:
        def attr(name: str) -> str:
            try:
                return str(getattr(record, name, "?"))
            except Exception:  # even str() of the attribute may be broken
                return "?"

        return json.dumps(
            {
                "timestamp": _rfc3339(time.time()),
                "level": attr("levelname"),
                "logger": attr("name"),
                "message": _safe_repr(getattr(record, "msg", None)),
                "service.name": self.service_name,
                "format_error": _safe_repr(exc),
            }
        )


class _NotFromOTel(logging.Filter):
    """Rejects the OTel SDK's own records, so the bridge never feeds on its own failures."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(_BRIDGE_EXCLUDED_PREFIX)


class OTelBridgeHandler(logging.Handler):
    """OTel's stdlib bridge, guarded against feeding back into itself and against bad values.

    Wraps the ``LoggingHandler`` of ``opentelemetry-instrumentation-logging`` (the SDK's own
    handler is deprecated) instead of subclassing it, so only its public ``emit`` is used.
    Two loops are cut: the SDK's own records (``opentelemetry.*`` loggers, e.g. an exporter
    reporting a failed export from its worker thread) are filtered out, and a record logged
    *while* this handler emits on the same thread is dropped and counted. Before a record is
    handed on, ``extra=`` values OTel cannot carry become strings (else the SDK warns per
    record and exports ``None``), credentials are redacted, and broken %-formatting is
    rendered; errors inside the bridge are counted instead of raised into the code that logged.

    Args:
        logger_provider: The SDK provider whose processors export the records.
        level: Minimum level forwarded.
    """

    def __init__(self, logger_provider: LoggerProvider, level: int = logging.NOTSET) -> None:
        super().__init__(level=level)
        self.inner = LoggingHandler(level=level, logger_provider=logger_provider)
        self.addFilter(_NotFromOTel())
        self.addFilter(redactor)
        self._emitting = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        """Forward ``record`` to the LoggerProvider unless this thread is already emitting."""
        if getattr(self._emitting, "active", False):
            _internal.drops.add("log_bridge_reentrant")
            return
        self._emitting.active = True
        try:
            with _internal.handle_internal_errors("logs.bridge"):
                self.inner.emit(_exportable(record))
        finally:
            self._emitting.active = False

    def flush(self) -> None:
        """Nothing to flush here: the LoggerProvider's processors own the buffering."""

    def close(self) -> None:
        self.inner.close()
        super().close()


def _exportable(record: logging.LogRecord) -> logging.LogRecord:
    """``record`` itself, or a copy whose message and extras OTel can carry as they are."""
    repaired = _with_safe_message(record)
    target = repaired if repaired is not None else record
    bad = {
        key: value
        for key, value in vars(target).items()
        if key not in _RESERVED and not isinstance(value, _OTEL_VALUE_TYPES)
    }
    if not bad:
        return target
    copied = copy.copy(target)
    for key, value in bad.items():
        setattr(copied, key, _to_json(value))
    return copied


_OTEL_VALUE_TYPES = (str, bool, int, float, bytes, type(None), Sequence, Mapping)


def _with_safe_message(record: logging.LogRecord) -> logging.LogRecord | None:
    """A copy of ``record`` with a pre-rendered message if its %-formatting fails, else None."""
    try:
        record.getMessage()
    except Exception as exc:  # the caller's bad %-args; keep the record readable
        repaired = copy.copy(record)
        repaired.msg = f"{_safe_repr(record.msg)} % {_safe_repr(record.args)} ({exc!r})"
        repaired.args = None
        return repaired
    return None


if TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[IO[str]]
else:  # StreamHandler is only subscriptable at runtime from Python 3.11
    _StreamHandler = logging.StreamHandler


class _JsonStreamHandler(_StreamHandler):
    """Marker subclass so :func:`install_logging` can find the handler it attached."""


@dataclass
class LoggingHandles:
    """What :func:`install_logging` attached, to inspect or to :meth:`uninstall`.

    Attributes:
        logger: The logger the handlers were attached to.
        stream_handler: The JSON-lines handler, or ``None`` if ``json_to_stderr`` was false.
        otel_handler: The OTel bridge, or ``None`` if no ``logger_provider`` was given.
        previous_level: The logger's level before the first install, restored on uninstall.
    """

    logger: logging.Logger
    stream_handler: logging.Handler | None
    otel_handler: OTelBridgeHandler | None
    previous_level: int
    _installed: bool = field(default=True, repr=False)

    def _detach(self) -> None:
        for handler in (self.stream_handler, self.otel_handler):
            if handler is None:
                continue
            self.logger.removeHandler(handler)
            try:
                handler.flush()
                handler.close()
            except Exception:  # a stream already closed must not block uninstall
                _internal.drops.add("log_handler_close_error")
        self._installed = False

    def uninstall(self) -> None:
        """Remove both handlers and restore the logger's level; safe to call twice.

        The LoggerProvider is not shut down: whoever created it owns its lifetime.
        """
        with _install_lock:
            if not self._installed:
                return
            self._detach()
            self.logger.setLevel(self.previous_level)
            if _registry.get(self.logger) is self:
                del _registry[self.logger]


_install_lock = threading.RLock()
_registry: dict[logging.Logger, LoggingHandles] = {}


def install_logging(
    *,
    logger_provider: LoggerProvider | None,
    service_name: str,
    level: int = logging.INFO,
    json_to_stderr: bool = True,
    logger: logging.Logger | None = None,
    stream: IO[str] | None = None,
    log_filter: logging.Filter | None = None,
) -> LoggingHandles:
    """Attach JSON-lines output and the OTel log bridge to ``logger`` (default: the root).

    Idempotent: a second call on the same logger first removes what the previous call
    attached (the new arguments win), so records are never written or exported twice.

    Args:
        logger_provider: SDK provider that exports records over OTLP; ``None`` attaches no
            bridge (logs export disabled).
        service_name: ``service.name`` written on every JSON line.
        level: Level set on ``logger``.
        json_to_stderr: Whether to attach the JSON stream handler.
        logger: The logger to attach to; the root logger catches every library's records.
        stream: Where JSON lines go instead of ``sys.stderr`` (tests, or stdout in containers).
        log_filter: Applied on both handlers after the redactor (the privacy scrubber's
            :class:`~paca_otel.privacy.ScrubbingLogFilter`), so neither output holds a secret.

    Returns:
        Handles to the attached handlers, with :meth:`LoggingHandles.uninstall`.
    """
    target = logger if logger is not None else logging.getLogger()
    with _install_lock:
        previous = _registry.pop(target, None)
        previous_level = target.level
        if previous is not None:
            previous_level = previous.previous_level
            previous._detach()
        # Handlers of ours that escaped the registry (e.g. handles dropped mid-reload).
        for stray in list(target.handlers):
            if isinstance(stray, _JsonStreamHandler | OTelBridgeHandler):
                target.removeHandler(stray)

        stream_handler: logging.Handler | None = None
        if json_to_stderr:
            stream_handler = _JsonStreamHandler(stream if stream is not None else sys.stderr)
            stream_handler.setFormatter(JsonFormatter(service_name))
            stream_handler.addFilter(redactor)
            if log_filter is not None:
                stream_handler.addFilter(log_filter)
            target.addHandler(stream_handler)
        otel_handler: OTelBridgeHandler | None = None
        if logger_provider is not None:
            otel_handler = OTelBridgeHandler(logger_provider)
            if log_filter is not None:
                otel_handler.addFilter(log_filter)
            target.addHandler(otel_handler)
        target.setLevel(level)
        handles = LoggingHandles(target, stream_handler, otel_handler, previous_level)
        _registry[target] = handles
        return handles
