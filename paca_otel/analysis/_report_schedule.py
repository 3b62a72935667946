"""Scheduled reports: the analysis report sent through the notification channels.

A team that reads its Monday report in its inbox should not need a cron job: with
``report_every`` set (``"24h"`` for a daily report), a background thread builds the report of
the last period and enqueues it in the same durable outbox the alerts use, so delivery gets the
same retries, dead letters and idempotency keys. The report travels as one informational event
(``alertname="ServiceReport"``) whose annotations carry the summary and the Markdown text, which
every built-in channel already knows how to show. Alertmanager is not a report channel (it
would hold the report as a firing alert); naming it is a configuration error.

Periods are aligned to a grid of ``every`` seconds since the epoch (a daily report covers one
UTC day), not to when the process started. Every worker of a service (``uvicorn --workers``)
runs a scheduler, and all of them then build the report of the same period, whose idempotency
key (alert fingerprint + period end) is the same: the shared outbox keeps the first and ignores
the others, so the service sends one report per period, whichever worker lives.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

from paca_otel._internal import handle_internal_errors
from paca_otel.analysis._report_model import Report
from paca_otel.analysis.report_render import render_markdown
from paca_otel.delivery._notify import NotificationSink
from paca_otel.errors import ConfigError
from paca_otel.rules._models import AlertEvent, AlertState, Notification, Severity

logger = logging.getLogger("paca_otel.analysis")

REPORT_RULE = "ServiceReport"
"""The ``alertname`` a scheduled report is sent under (silence it like any alert)."""

MAX_TEXT = 60_000
"""Characters of Markdown sent with a report: chat channels and mail servers cap message size."""


def report_notifications(
    report: Report, channels: Sequence[str], *, service: str = ""
) -> list[Notification]:
    """One notification per channel carrying ``report`` (summary and Markdown text)."""
    text = render_markdown(report)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "\n\n… (truncated; the full report: paca-otel report)"
    labels = {"alertname": REPORT_RULE, "severity": Severity.INFO.value}
    if service:
        labels["service"] = service
    event = AlertEvent(
        rule=REPORT_RULE,
        state=AlertState.FIRING,
        labels=labels,
        annotations={"summary": " ".join(report.summary), "description": text},
        value=None,
        severity=Severity.INFO,
        starts_at=report.end,
        ends_at=report.end,
    )
    return [
        Notification(
            channel=channel,
            group_key=f"{REPORT_RULE}|{report.end:.0f}",
            events=(event,),
            created_at=report.generated_at,
            summary=f"Service report: {report.summary[0] if report.summary else report.title}",
            extra={"kind": "report", "sent_at": report.end},
        )
        for channel in channels
    ]


class ReportScheduler:
    """Builds the report of the last ``every`` seconds every ``every`` seconds and sends it.

    Args:
        build: Returns the report of the period ending at the given time.
        sink: The outbox.
        channels: Channel names to send to (not ``alertmanager``).
        every: Seconds between reports, also the period each covers.
        service: The service name, as a label of the report event.
    """

    def __init__(
        self,
        build: Callable[[float], Report],
        sink: NotificationSink,
        channels: Sequence[str],
        *,
        every: float,
        service: str = "",
        on_sent: Callable[[], object] | None = None,
    ) -> None:
        if "alertmanager" in channels:
            msg = (
                "report_channels: alertmanager cannot carry reports (it would hold them as "
                f"firing alerts); choose among the other channels, got {list(channels)}"
            )
            raise ConfigError(msg)
        if not every > 0:
            msg = f"report_every must be a positive duration, got {every!r}"
            raise ConfigError(msg)
        self._build = build
        self._sink = sink
        self._channels = tuple(channels)
        self._every = float(every)
        self._service = service
        self._on_sent = on_sent
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def send_now(self, now: float | None = None) -> int:
        """Build and enqueue one report now; how many notifications were stored."""
        at = time.time() if now is None else now
        stored = 0
        with handle_internal_errors("report_schedule", logger):
            report = self._build(at)
            for notification in report_notifications(report, self._channels, service=self._service):
                stored += bool(self._sink.enqueue(notification))
            self.sent += 1
            if self._on_sent is not None:
                self._on_sent()
        return stored

    def next_due(self, now: float) -> float:
        """The end of the period running at ``now``: the next multiple of ``every``."""
        return (math.floor(now / self._every) + 1) * self._every

    def start(self) -> None:
        """Send the report of each period, at its end, from a daemon thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="paca-otel-report", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (idempotent); a report being built finishes first."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)

    def _run(self) -> None:
        due = self.next_due(time.time())
        while not self._stop.wait(max(0.0, due - time.time())):
            if time.time() < due:  # woken early (clock adjusted): wait for the period's end
                continue
            self.send_now(due)
            due = self.next_due(max(due, time.time()))
