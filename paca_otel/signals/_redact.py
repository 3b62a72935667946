"""Keep credentials out of log lines: URL userinfo, query strings and configured secrets.

HTTP clients log every request at INFO (httpx: ``HTTP Request: POST http://user:pass@host/...``;
urllib3 at DEBUG), and with ``logs=True`` those lines would reach the JSON log and the exported
log records. :data:`redactor` is a ``logging.Filter`` that rewrites such records before any
handler sees them: it is attached to the HTTP clients' loggers at import (so the host's own
handlers get clean lines too) and to every handler paca-otel installs. It removes URL userinfo
and query strings, and every secret value of the settings in effect (OTLP header values, the
SMTP password, webhook URLs and their token-bearing paths), which ``configure`` registers.

Hand-written: no logging library offers redaction of arbitrary URLs in third-party records.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paca_otel.config import PacaOtelSettings, Signal

__all__ = ["CLIENT_LOGGERS", "Redactor", "redactor"]

#: Loggers of the HTTP clients paca-otel (and its exporters) use; filtered at import.
CLIENT_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "requests",
)

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@\"'<>]+@")
_QUERY = re.compile(r"(?P<url>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]*)\?[^\s#\"'<>]*")
_MIN_SECRET = 4  # shorter values (e.g. "1") would redact ordinary words


class Redactor(logging.Filter):
    """Rewrites a record's message when it holds a credential; never drops a record."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def register(self, settings: PacaOtelSettings) -> None:
        """Remember the secret values of ``settings`` (replacing the previous ones)."""
        found: set[str] = set()
        signals: tuple[Signal, ...] = ("traces", "metrics", "logs")
        for signal in signals:
            found.update(settings.otlp_headers_for(signal).values())
        if settings.smtp_password is not None:
            found.add(settings.smtp_password.get_secret_value())
        for key in ("webhook_url", "slack_webhook_url", "alertmanager_url"):
            secret = getattr(settings, key)
            if secret is None:
                continue
            url = secret.get_secret_value()
            parts = urllib.parse.urlsplit(url)
            found.update({url, parts.query})
            if key != "alertmanager_url":
                found.add(parts.path)  # Slack-style URLs carry their token in the path
            if parts.password:
                found.add(parts.password)
        usable = sorted((s for s in found if len(s.strip("/")) >= _MIN_SECRET), key=len)
        with self._lock:
            self._secrets = tuple(reversed(usable))  # longest first: a URL before its path

    def redact(self, text: str) -> str:
        """``text`` with configured secrets, URL userinfo and query strings replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        text = _USERINFO.sub(r"\g<scheme>***@", text)
        return _QUERY.sub(r"\g<url>?***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # the caller's bad %-args: the formatter reports those
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        return True


redactor = Redactor()
for _name in CLIENT_LOGGERS:
    logging.getLogger(_name).addFilter(redactor)
