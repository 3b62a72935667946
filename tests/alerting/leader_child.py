"""Child process of the leader election tests: one worker of a service sharing a directory.

Run with ``PACA_OTEL_MULTIPROCESS_DIR``, ``PACA_OTEL_EVALUATION_INTERVAL`` and
``PACA_OTEL_WEBHOOK_URL`` set. It builds the default root's ``AlertingRuntime`` from them, adds
the rules every worker adds in code (the same in each), feeds ``up 1`` into its series store, starts
evaluating (delivery is left to the test's one dispatcher), prints ``ready`` and then answers
one JSON command per stdin line with one JSON line:

- ``{"op": "status"}``: pid, whether it leads, when it last started to lead and evaluated
  first after that, its rules, silences and active alerts;
- ``{"op": "feed", "name": N, "value": V}``: append a point to its store;
- ``{"op": "add_rule", "rule": {...}}``: ``AlertManager.add_rule_data``, the API's path;
- ``{"op": "load_rules_file", "path": P}``: ``AlertManager.add_rules_from_file``, what
  ``rules_file`` does at start; replies the file's rule names;
- ``{"op": "silence", "matchers": {...}, "duration": S}``: a silence; replies its id.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from paca_otel._manager import AlertManager
from paca_otel._runtime import default_runtime


class Watch:
    """Notes when this worker became leader and when it first evaluated after that."""

    def __init__(self) -> None:
        self.leading_since: float | None = None
        self.evaluating_since: float | None = None
        self.lock = threading.Lock()

    def run(self) -> None:
        engine = default_runtime().alerting().engine
        was_leading = False
        base = engine.cycles  # cycles run before this worker last started to lead
        while True:
            leading = engine.leading
            cycles = engine.cycles
            with self.lock:
                if leading and not was_leading:
                    self.leading_since = engine.scheduler.leading_since
                    self.evaluating_since = None
                if leading and self.evaluating_since is None and cycles > base:
                    self.evaluating_since = time.time()  # at most one poll (5 ms) late
            if not leading:
                base = cycles  # a follower runs no cycles: this stays put until it leads
            was_leading = leading
            time.sleep(0.005)


def status(watch: Watch) -> dict[str, Any]:
    runtime = default_runtime().alerting()
    engine = runtime.engine
    with watch.lock:
        since, evaluating = watch.leading_since, watch.evaluating_since
    return {
        "pid": os.getpid(),
        "leader": runtime.leader,
        "leading_since": since,
        "evaluating_since": evaluating,
        "rules": sorted(engine.rules),
        "silences": [s.id for s in engine.silences.all()],
        "active": [
            {
                "rule": a.rule,
                "state": a.state.value,
                "active_since": a.active_since,
                "silenced_by": a.silenced_by,
            }
            for a in engine.active_alerts()
        ],
    }


def main() -> None:
    # The runtime is built from the environment the test sets: PACA_OTEL_MULTIPROCESS_DIR,
    # PACA_OTEL_EVALUATION_INTERVAL and PACA_OTEL_WEBHOOK_URL, as a deployment would.
    runtime = default_runtime().alerting()
    alerts = AlertManager()
    alerts.add_rule_sync("Always", "up > 0", "webhook", 3600)
    alerts.add_rule_sync("Slow", "slow > 0", "webhook", 3600, for_=2)
    runtime.engine.store.append("up", (), 1.0, time.time())
    watch = Watch()
    threading.Thread(target=watch.run, daemon=True).start()
    runtime.engine.start()
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        reply: Any = None
        if op == "status":
            reply = status(watch)
        elif op == "feed":
            runtime.engine.store.append(command["name"], (), command["value"], time.time())
        elif op == "add_rule":
            reply = alerts.add_rule_data(command["rule"]).name
        elif op == "load_rules_file":
            reply = [rule.name for rule in alerts.add_rules_from_file(command["path"])]
        elif op == "silence":
            reply = alerts.silence(command["matchers"], duration=command["duration"])
        print(json.dumps({"reply": reply}), flush=True)


if __name__ == "__main__":
    main()
