"""Tests for paca_otel.signals._logs: JSON lines and the OTel log bridge (in-memory exporter)."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import re
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from paca_otel.signals._logs import (
    JsonFormatter,
    LoggingHandles,
    OTelBridgeHandler,
    install_logging,
)

RFC3339_MS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def tracer() -> Iterator[Tracer]:
    provider = TracerProvider()
    yield provider.get_tracer("test")
    provider.shutdown()


@pytest.fixture
def log_exporter() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK leaves it untyped


@pytest.fixture
def logger_provider(log_exporter: InMemoryLogRecordExporter) -> Iterator[LoggerProvider]:
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A private, non-propagating logger, so tests neither see nor touch the root's handlers."""
    log = logging.getLogger(f"paca_test.{request.node.name}")
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
    log.setLevel(logging.NOTSET)


def _ours(log: logging.Logger) -> list[logging.Handler]:
    """The logger's handlers without pytest's (pytest >= 9.2 also attaches its capture to
    non-propagating loggers)."""
    from _pytest.logging import LogCaptureHandler

    return [h for h in log.handlers if not isinstance(h, LogCaptureHandler)]


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def installed(
    logger: logging.Logger, logger_provider: LoggerProvider, stream: io.StringIO
) -> Iterator[LoggingHandles]:
    handles = install_logging(
        logger_provider=logger_provider, service_name="checkout", logger=logger, stream=stream
    )
    yield handles
    handles.uninstall()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _format(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter("svc").format(record)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def _record(msg: object = "hello", args: Any = (), **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("app.module", logging.WARNING, "f.py", 3, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_json_line_has_core_fields() -> None:
    """A record becomes one JSON object with timestamp, level, logger, message, service."""
    record = _record("user %s logged in", ("ann",))
    record.created = 1_700_000_000.1234
    data = _format(record)
    assert data == {
        "timestamp": "2023-11-14T22:13:20.123Z",
        "level": "WARNING",
        "logger": "app.module",
        "message": "user ann logged in",
        "service.name": "svc",
    }


def test_timestamp_is_rfc3339_utc_ms() -> None:
    """Timestamps are RFC 3339 in UTC with millisecond precision."""
    assert RFC3339_MS_UTC.fullmatch(_format(_record())["timestamp"])


def test_trace_ids_of_current_span(tracer: Tracer) -> None:
    """Inside a span the line carries its trace_id (32 hex) and span_id (16 hex)."""
    with tracer.start_as_current_span("work") as current:
        data = _format(_record())
    context = current.get_span_context()
    assert data["trace_id"] == f"{context.trace_id:032x}"
    assert data["span_id"] == f"{context.span_id:016x}"
    assert re.fullmatch(r"[0-9a-f]{32}", data["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", data["span_id"])


def test_no_trace_ids_outside_spans() -> None:
    """Without a valid current span there are no id keys at all."""
    data = _format(_record())
    assert "trace_id" not in data
    assert "span_id" not in data


def test_trace_ids_stamped_on_record_win(tracer: Tracer) -> None:
    """Ids stamped by OTel's logging instrumentation are used when present."""
    record = _record(otelTraceID="ab" * 16, otelSpanID="cd" * 8)
    with tracer.start_as_current_span("other"):
        data = _format(record)
    assert (data["trace_id"], data["span_id"]) == ("ab" * 16, "cd" * 8)
    assert "otelTraceID" not in data


def test_extras_are_included() -> None:
    """Every extra= field is a key; clashes with core keys are kept as extra.<name>."""

    @dataclasses.dataclass
    class Order:
        id: int

    ident = uuid.UUID(int=1)
    data = _format(
        _record(
            user_id=7,
            tags={"a"},
            nested={"k": [1, 2]},
            ident=ident,
            order=Order(3),
            obj=object(),
            level="shadow",
        )
    )
    assert data["user_id"] == 7
    assert data["tags"] == ["a"]
    assert data["nested"] == {"k": [1, 2]}
    assert data["ident"] == str(ident)
    assert data["order"] == "test_extras_are_included.<locals>.Order(id=3)"
    assert data["obj"].startswith("<object object at")
    assert data["level"] == "WARNING"
    assert data["extra.level"] == "shadow"


def test_unserialisable_extras_fall_back_per_field() -> None:
    """NaN, circular structures and non-str keys become strings; other fields stay intact."""
    circular: list[Any] = []
    circular.append(circular)
    data = _format(_record(n=math.nan, c=circular, k={(1, 2): "x"}, fine=1))
    assert data["n"] == "nan"
    assert data["c"] == "[[...]]"
    assert data["k"] == "{(1, 2): 'x'}"
    assert data["fine"] == 1


def test_exception_and_stack_text() -> None:
    """exc_info renders as 'exception' text, stack_info as 'stack'."""
    try:
        raise ZeroDivisionError("nope")
    except ZeroDivisionError:
        record = logging.LogRecord("x", logging.ERROR, "f.py", 1, "failed", (), sys.exc_info())
    record.stack_info = "Stack (most recent call last):\n  here"
    data = _format(record)
    assert data["exception"].startswith("Traceback")
    assert "ZeroDivisionError: nope" in data["exception"]
    assert data["stack"].endswith("here")


def test_weird_records_never_raise() -> None:
    """Bad %-args, non-str messages and broken reprs still produce a JSON line."""

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

        def __str__(self) -> str:
            raise RuntimeError("no str")

    bad_args = _format(_record("%d items", ("many",)))
    assert "'%d items'" in bad_args["message"]
    assert _format(_record({"a": 1}))["message"] == "{'a': 1}"
    assert "message" in _format(_record(Broken()))
    assert _format(_record("x", broken=Broken()))["broken"] == "<unrepresentable Broken>"
    record = _record()
    record.created = "not a time"  # type: ignore[assignment]  # a corrupted record is the test
    assert _format(record)["format_error"]


def test_install_writes_json_and_bridges(
    installed: LoggingHandles,
    logger: logging.Logger,
    stream: io.StringIO,
    log_exporter: InMemoryLogRecordExporter,
    tracer: Tracer,
) -> None:
    """install_logging() sends each record both as a JSON line and to the LoggerProvider."""
    with tracer.start_as_current_span("req") as current:
        logger.info("paid %s", "EUR 3", extra={"order_id": 12})
    logger.debug("below the level")
    (line,) = _lines(stream)
    assert line["message"] == "paid EUR 3"
    assert line["service.name"] == "checkout"
    assert line["order_id"] == 12
    (exported,) = log_exporter.get_finished_logs()
    record = exported.log_record
    assert record.body == "paid EUR 3"
    assert record.severity_text == "INFO"
    assert (record.attributes or {})["order_id"] == 12
    assert record.trace_id == current.get_span_context().trace_id
    assert f"{record.trace_id:032x}" == line["trace_id"]


def test_bridge_stringifies_unsupported_extras(
    installed: LoggingHandles,
    logger: logging.Logger,
    log_exporter: InMemoryLogRecordExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Extras OTel attributes cannot hold are exported as strings, without SDK warnings."""
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        logger.warning("x", extra={"ident": uuid.UUID(int=2), "plain": "p"})
    attributes = log_exporter.get_finished_logs()[0].log_record.attributes or {}
    assert attributes["ident"] == str(uuid.UUID(int=2))
    assert attributes["plain"] == "p"
    assert [r for r in caplog.records if r.name.startswith("opentelemetry")] == []


def test_bridge_keeps_records_with_bad_format_args(
    installed: LoggingHandles, logger: logging.Logger, log_exporter: InMemoryLogRecordExporter
) -> None:
    """A record whose %-formatting fails is still exported, with a readable body."""
    for handler in set(logger.handlers) - set(_ours(logger)):
        logger.removeHandler(handler)  # pytest >= 9.2's capture handler raises on such records
    logger.error("%d items", "many")
    (exported,) = log_exporter.get_finished_logs()
    assert "'%d items'" in str(exported.log_record.body)


def test_install_is_idempotent(
    installed: LoggingHandles,
    logger: logging.Logger,
    logger_provider: LoggerProvider,
    stream: io.StringIO,
    log_exporter: InMemoryLogRecordExporter,
) -> None:
    """Installing twice leaves one JSON handler and one bridge; each record goes out once."""
    again = install_logging(
        logger_provider=logger_provider, service_name="checkout", logger=logger, stream=stream
    )
    assert len(_ours(logger)) == 2
    assert again.stream_handler in _ours(logger)
    assert again.otel_handler in _ours(logger)
    logger.warning("once")
    assert len(_lines(stream)) == 1
    assert len(log_exporter.get_finished_logs()) == 1


def test_uninstall_removes_both_and_restores_level(
    logger: logging.Logger, logger_provider: LoggerProvider, stream: io.StringIO
) -> None:
    """uninstall() removes both handlers and the original level, even after re-installs."""
    logger.setLevel(logging.ERROR)
    first = install_logging(
        logger_provider=logger_provider, service_name="s", logger=logger, stream=stream
    )
    second = install_logging(
        logger_provider=logger_provider,
        service_name="s",
        logger=logger,
        stream=stream,
        level=logging.DEBUG,
    )
    assert logger.level == logging.DEBUG
    second.uninstall()
    second.uninstall()
    first.uninstall()
    assert _ours(logger) == []
    assert logger.level == logging.ERROR


def test_options_select_handlers(logger: logging.Logger, stream: io.StringIO) -> None:
    """No provider means no bridge; json_to_stderr=False means no JSON handler."""
    handles = install_logging(logger_provider=None, service_name="s", logger=logger, stream=stream)
    assert handles.otel_handler is None
    assert _ours(logger) == [handles.stream_handler]
    handles = install_logging(
        logger_provider=None, service_name="s", logger=logger, json_to_stderr=False
    )
    assert _ours(logger) == []
    handles.uninstall()


def test_bridge_skips_the_sdks_own_records(
    logger_provider: LoggerProvider, log_exporter: InMemoryLogRecordExporter
) -> None:
    """Records from opentelemetry.* loggers are not fed back into the OTel pipeline."""
    handler = OTelBridgeHandler(logger_provider)
    sdk_logger = logging.getLogger("opentelemetry.sdk._logs.test")
    app_logger = logging.getLogger("paca_test.app")
    handler.handle(sdk_logger.makeRecord(sdk_logger.name, logging.ERROR, "f", 1, "x", (), None))
    handler.handle(app_logger.makeRecord(app_logger.name, logging.ERROR, "f", 1, "y", (), None))
    assert [r.log_record.body for r in log_exporter.get_finished_logs()] == ["y"]


def test_bridge_drops_records_logged_while_emitting(
    logger_provider: LoggerProvider, logger: logging.Logger
) -> None:
    """A record logged from inside the bridge's own emit is dropped, not recursed on."""
    bodies: list[Any] = []

    class Reentrant(InMemoryLogRecordExporter):
        def export(self, batch: Any) -> Any:
            bodies.extend(r.log_record.body for r in batch)
            logger.error("logged during export")
            return super().export(batch)

    reentrant = Reentrant()  # type: ignore[no-untyped-call]  # SDK base class is untyped
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(reentrant))
    handles = install_logging(logger_provider=logger_provider, service_name="s", logger=logger)
    try:
        logger.error("outer")
    finally:
        handles.uninstall()
    assert bodies == ["outer"]
