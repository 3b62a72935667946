"""Child process for the durability test: enqueue one alert, fail to send it, wait to be killed.

Run as ``python outbox_child.py OUTBOX_PATH WEBHOOK_URL`` while nothing listens at the URL. It
prints ``enqueued`` and the idempotency key once the row is committed and one attempt failed,
then keeps its dispatcher running until the test SIGKILLs it.
"""

from __future__ import annotations

import sys
import time

from paca_otel.delivery._dispatcher import Dispatcher
from paca_otel.delivery._outbox import Outbox
from paca_otel.delivery.channels import WebhookChannel
from paca_otel.rules._models import AlertEvent, AlertState, Notification, Severity


def main(path: str, url: str) -> None:
    """Enqueue, try once, report, then idle with the workers running."""
    outbox = Outbox(path)
    channel = WebhookChannel(url, timeout=2)
    dispatcher = Dispatcher(outbox, {"webhook": channel}, base_delay=30, max_delay=60)
    alert = AlertEvent(
        rule="DiskFull",
        state=AlertState.FIRING,
        labels={"mount": "/var"},
        annotations={"summary": "disk 97% full"},
        value=0.97,
        severity=Severity.CRITICAL,
        starts_at=1_700_000_000.0,
    )
    note = Notification(
        channel="webhook", group_key="disk", events=(alert,), created_at=time.time()
    )
    outbox.enqueue(note)
    dispatcher.deliver_due()
    dispatcher.start()
    print("enqueued", flush=True)
    print(note.idempotency_key, flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
