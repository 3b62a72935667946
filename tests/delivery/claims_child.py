"""Child process of the multi-worker outbox tests: one service worker with its own dispatcher.

Run as ``python claims_child.py PATH URL LEASE ENQUEUE GROUPS BATCH``. It opens the shared
outbox at PATH and a webhook channel posting to URL, prints ``ready OWNER`` (its claim id), and
waits for ``go`` on stdin. Then it enqueues the first ENQUEUE of :func:`notifications` (every
child enqueues the same ones: they must dedupe to one row each), starts its dispatcher (claim
lease LEASE seconds, BATCH rows per claim) and prints ``started``. When stdin closes it stops
the dispatcher cleanly and exits 0; the tests SIGKILL it to play a crashed worker.
"""

from __future__ import annotations

import sys

from paca_otel.delivery._dispatcher import Dispatcher
from paca_otel.delivery._outbox import Outbox
from paca_otel.delivery.channels import WebhookChannel
from paca_otel.rules._models import AlertEvent, AlertState, Notification, Severity

T0 = 1_700_000_000.0


def notifications(n: int, groups: int) -> list[Notification]:
    """``n`` distinct webhook notifications spread round-robin over ``groups`` groups."""
    return [
        Notification(
            channel="webhook",
            group_key=f"g{i % groups}",
            events=(
                AlertEvent(
                    rule=f"Rule{i}",
                    state=AlertState.FIRING,
                    labels={"seq": str(i)},
                    annotations={"summary": f"notification {i}"},
                    value=float(i),
                    severity=Severity.WARNING,
                    starts_at=T0 + i,
                ),
            ),
            created_at=T0 + i,
        )
        for i in range(n)
    ]


def main(argv: list[str]) -> None:
    """Wait for ``go``, enqueue, dispatch until stdin closes."""
    path, url = argv[0], argv[1]
    lease, enqueue, groups, batch = float(argv[2]), int(argv[3]), int(argv[4]), int(argv[5])
    outbox = Outbox(path)
    channel = WebhookChannel(url, timeout=30)  # longer than any test: a stall stays a stall
    dispatcher = Dispatcher(
        outbox,
        {"webhook": channel},
        base_delay=0.05,
        max_delay=0.2,
        poll_interval=0.05,
        lease=lease,
        claim_batch=batch,
    )
    print("ready", dispatcher.claim_owner, flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    for note in notifications(enqueue, groups):
        outbox.enqueue(note)
    dispatcher.start()
    print("started", flush=True)
    sys.stdin.read()  # until the test closes stdin
    dispatcher.stop(timeout=10)
    channel.close()
    outbox.close()


if __name__ == "__main__":
    main(sys.argv[1:])
