"""Child process for the shared-history tests: one worker of a service with history on.

Run as ``python history_child.py DIR PUBLISH N``. It configures paca-otel with
``multiprocess_dir=DIR`` and ``history_enabled`` (a tick every :data:`TICK` s), makes the
shared recorder publish every PUBLISH seconds (instead of a minute), adds N to the counter
``mph.requests`` and prints ``ready``; then it answers one JSON line per command from stdin:

* ``add K``: adds K to ``mph.requests`` (answers ``"added"``);
* ``state``: ``{"pid", "recording", "shared"}`` of this worker's history;
* ``query``: the ``(timestamp, value)`` points of ``mph.requests`` in the history as this
  worker reads it (the last ten minutes, raw);
* ``exit``: shuts telemetry down cleanly and exits.
"""

from __future__ import annotations

import json
import os
import sys
import time

import paca_otel
from paca_otel.analysis import _history_shared

TICK = 0.2


def main(directory: str, publish: float, n: int) -> None:
    """Record, report ``ready``, then serve commands until ``exit`` or a signal."""
    _history_shared.PUBLISH_EVERY = publish  # the test's stand-in for the minute
    telemetry = paca_otel.configure(
        service_name="mph-test",
        multiprocess_dir=directory,
        history_enabled=True,
        history_interval=TICK,
        system_metrics=False,
        metrics_exporter="none",
        traces_exporter="none",
        logs_exporter="none",
    )
    history = telemetry.history
    assert history is not None
    counter = telemetry.meter_provider.get_meter("mph.test").create_counter("mph.requests")
    counter.add(n, {"route": "/work"})
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command.startswith("add "):
            counter.add(int(command.split()[1]), {"route": "/work"})
            reply: object = "added"
        elif command == "state":
            reply = {"pid": os.getpid(), "recording": history.recording, "shared": history.shared}
        elif command == "query":
            now = time.time()
            found = history.query_range("mph.requests", start=now - 600, end=now + 1, step=0.001)
            reply = [
                {"labels": dict(s.labels), "points": [[p.timestamp, p.value] for p in s.points]}
                for s in found
            ]
        elif command == "exit":
            telemetry.shutdown()
            reply = "bye"
        else:
            reply = f"unknown command {command!r}"
        print(json.dumps(reply), flush=True)
        if command == "exit":
            return


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
