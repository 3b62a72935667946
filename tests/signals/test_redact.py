"""Credentials never reach log lines: URL userinfo, query strings and configured secrets."""

from __future__ import annotations

import logging

import pytest

from paca_otel.config import load_settings
from paca_otel.signals._redact import Redactor, redactor


def test_userinfo_and_query_are_redacted() -> None:
    """user:pass@ and ?token=... disappear from any URL in a message."""
    clean = Redactor().redact('HTTP Request: POST http://u:p4ss@h:80/x?token=abc "HTTP/1.1 200"')
    assert clean == 'HTTP Request: POST http://***@h:80/x?*** "HTTP/1.1 200"'


def test_configured_secrets_are_redacted_wherever_they_appear() -> None:
    """A Slack token path, header values and the SMTP password are replaced by ***."""
    r = Redactor()
    r.register(
        load_settings(
            slack_webhook_url="https://hooks.example/services/T0/B0/slacktoken",
            otlp_headers="authorization=Bearer abcdef",
            smtp_password="hunter22",
        )
    )
    text = r.redact("posting to https://hooks.example/services/T0/B0/slacktoken with hunter22")
    assert "slacktoken" not in text
    assert "hunter22" not in text
    assert "Bearer abcdef" not in r.redact("header Bearer abcdef")


def test_httpx_logger_records_are_rewritten(caplog: pytest.LogCaptureFixture) -> None:
    """The filter sits on httpx's logger, so even the host's own handlers get clean lines."""
    caplog.set_level(logging.INFO, logger="httpx")
    logging.getLogger("httpx").info("HTTP Request: %s %s", "POST", "http://a:b@h/x?k=v")
    assert "a:b" not in caplog.text
    assert "k=v" not in caplog.text
    assert redactor in logging.getLogger("httpx").filters
