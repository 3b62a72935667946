"""Tests for log scrubbing: the logging.Filter and the OTel LogRecordProcessor."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from paca_otel.privacy import REDACTED, Scrubber, ScrubbingLogFilter, ScrubbingLogRecordProcessor
from paca_otel.signals._logs import JsonFormatter, OTelBridgeHandler

SECRET = "hunter2-s3cr3t-VALUE"


@pytest.fixture
def otel_logs() -> Iterator[tuple[LoggerProvider, InMemoryLogRecordExporter]]:
    """A LoggerProvider that scrubs, then exports to memory (processor order matters)."""
    provider = LoggerProvider()
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK leaves __init__ unannotated
    provider.add_log_record_processor(ScrubbingLogRecordProcessor(Scrubber()))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A private logger, not propagating, cleaned up afterwards."""
    log = logging.getLogger("tests.privacy.logs")
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


def emitted(exporter: InMemoryLogRecordExporter) -> str:
    """Every rendering of the exported records: JSON and OTLP protobuf bytes."""
    records = exporter.get_finished_logs()
    encoded = encode_logs(records).SerializeToString().decode("latin-1")
    return "\n".join([*(r.to_json() for r in records), encoded])


def test_filter_scrubs_extras_args_and_message_before_every_handler(
    logger: logging.Logger, otel_logs: tuple[LoggerProvider, InMemoryLogRecordExporter]
) -> None:
    """A token extra, a bearer arg and token=... in the message reach neither JSON nor OTLP."""
    provider, exporter = otel_logs
    stream = io.StringIO()
    json_handler = logging.StreamHandler(stream)
    json_handler.setFormatter(JsonFormatter("svc"))
    bridge = OTelBridgeHandler(provider)
    scrub = ScrubbingLogFilter(Scrubber())
    for handler in (json_handler, bridge):
        handler.addFilter(scrub)
        logger.addHandler(handler)
    logger.info(
        "login for %s with header %s, retry token=%s",
        "bob",
        f"Bearer {SECRET}",
        SECRET,
        extra={"token": SECRET, "user": "bob", "payload": {"password": SECRET, "n": 1}},
    )
    text = stream.getvalue()
    assert SECRET not in text
    assert SECRET not in emitted(exporter)
    assert '"token": "[REDACTED]"' in text
    assert '"user": "bob"' in text
    assert "login for bob" in text


def test_filter_scrubs_objects_whose_text_holds_a_secret(logger: logging.Logger) -> None:
    """An extra object whose str() carries a credential is replaced by its scrubbed text."""

    class Conn:
        def __str__(self) -> str:
            return f"postgres://bob:{SECRET}@db/app"

    class Plain:
        def __str__(self) -> str:
            return "plain"

    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    handler.addFilter(ScrubbingLogFilter(Scrubber()))
    logger.addHandler(handler)
    plain = Plain()
    logger.info("connecting", extra={"conn": Conn(), "other": plain})
    assert vars(records[0])["conn"] == f"postgres://bob:{REDACTED}@db/app"
    assert vars(records[0])["other"] is plain


def test_filter_scrubs_logged_exceptions(logger: logging.Logger) -> None:
    """A traceback whose message quotes a secret is written scrubbed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("svc"))
    handler.addFilter(ScrubbingLogFilter(Scrubber()))
    logger.addHandler(handler)
    try:
        raise PermissionError(f"rejected api_key={SECRET}")
    except PermissionError:
        logger.exception("call failed")
    text = stream.getvalue()
    assert SECRET not in text
    assert f"api_key={REDACTED}" in text


def test_filter_scrubs_mapping_args_by_key(logger: logging.Logger) -> None:
    """%(password)s-style mapping args are scrubbed by key."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubbingLogFilter(Scrubber()))
    logger.addHandler(handler)
    logger.info("user %(user)s pw %(password)s", {"user": "bob", "password": SECRET})
    assert stream.getvalue().strip() == f"user bob pw {REDACTED}"


def test_filter_keeps_clean_records_unchanged(logger: logging.Logger) -> None:
    """A record without secrets keeps its message, args and extras as they were."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubbingLogFilter(Scrubber()))
    logger.addHandler(handler)
    logger.info("served %s in %d ms", "/items/1", 12, extra={"route": "/items/{id}"})
    assert stream.getvalue().strip() == "served /items/1 in 12 ms"


def test_processor_scrubs_records_emitted_directly(
    otel_logs: tuple[LoggerProvider, InMemoryLogRecordExporter],
) -> None:
    """A record emitted through the OTel Logs API has its attributes and body scrubbed."""
    provider, exporter = otel_logs
    provider.get_logger("direct").emit(
        LogRecord(
            body={"msg": "hi", "api_key": SECRET},
            attributes={"session": SECRET, "http.route": "/a", "note": f"Bearer {SECRET}"},
        )
    )
    assert SECRET not in emitted(exporter)
    (record,) = exporter.get_finished_logs()
    assert record.log_record.attributes is not None
    assert dict(record.log_record.attributes) == {
        "session": REDACTED,
        "http.route": "/a",
        "note": REDACTED,
    }
    assert record.log_record.body == {"msg": "hi", "api_key": REDACTED}


def test_filter_failure_drops_the_record(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If scrubbing raises, the record is dropped rather than written unscrubbed."""
    monkeypatch.setenv("PACA_OTEL_RAISE_INTERNAL", "0")

    class Broken(Scrubber):
        def scrub_text(self, text: str) -> str:
            raise RuntimeError("boom")

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubbingLogFilter(Broken()))
    logger.addHandler(handler)
    logging.getLogger("paca_otel.privacy").disabled = True
    try:
        logger.info("token=%s", SECRET)
    finally:
        logging.getLogger("paca_otel.privacy").disabled = False
    assert stream.getvalue() == ""
