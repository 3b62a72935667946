"""Child process for the Alertmanager dedup test: one instance of a service sends its alert.

Run as ``python alertmanager_sender.py ALERTMANAGER_URL`` by three processes at once: each is
an instance (another host, another worker) whose own rule engine fired the same rule with the
same labels. It enqueues the notification in its own outbox, delivers it once through
``AlertmanagerChannel`` and prints ``sent``.
"""

from __future__ import annotations

import sys
import time

from paca_otel.delivery._dispatcher import Dispatcher
from paca_otel.delivery._outbox import Outbox
from paca_otel.delivery.channels import AlertmanagerChannel
from paca_otel.rules._models import AlertEvent, AlertState, Notification, Severity


def main(url: str) -> None:
    """Deliver this instance's notification of ``CheckoutErrors`` and report it."""
    outbox = Outbox()
    channel = AlertmanagerChannel(url, timeout=5)
    dispatcher = Dispatcher(outbox, {"alertmanager": channel})
    now = time.time()
    alert = AlertEvent(
        rule="CheckoutErrors",
        state=AlertState.FIRING,
        labels={"service": "shop", "route": "/checkout"},
        annotations={"summary": "error rate above 5 %"},
        value=0.08,
        severity=Severity.CRITICAL,
        starts_at=now - 30,  # each instance saw it start at its own moment
    )
    note = Notification(
        channel="alertmanager", group_key="checkout", events=(alert,), created_at=now
    )
    try:
        outbox.enqueue(note)
        delivered = dispatcher.deliver_due()
    finally:
        channel.close()
        outbox.close()
    print("sent" if delivered == 1 else f"delivered {delivered}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
