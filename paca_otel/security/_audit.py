"""The audit record: who did what to which target, with what result, from where, and when.

An :class:`AuditRecord` is built by the web layer for every API access and every change, then
stored through the storage layer and written as one structured JSON log line
(:func:`render_audit_line`, logger ``paca_otel.audit``). It holds a token's *name* and role,
never the token: the fields are names, and the free-text ones (action, target) are passed
through the scrubber on the way out, so even a secret pasted into a rule name or a URL does not
reach the log or the store.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Final

from paca_otel.privacy import Scrubber

__all__ = ["AUDIT_LOGGER", "AuditRecord", "render_audit_line"]

AUDIT_LOGGER: Final = "paca_otel.audit"
_MAX_TEXT: Final = 512  # a target longer than this is cut: no audit line echoes a huge input
# Scrubbed before the final cut (so a secret straddling the cut is not left half-visible), but
# only this much of it, so a huge input costs bounded time.
_MAX_SCANNED: Final = 65_536


def _clean(scrubber: Scrubber, text: str) -> str:
    cleaned = scrubber.scrub_text(text[:_MAX_SCANNED])
    return cleaned if len(cleaned) <= _MAX_TEXT else cleaned[: _MAX_TEXT - 1] + "…"


def _rfc3339(epoch: float) -> str:
    seconds = int(epoch)
    millis = int((epoch - seconds) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited API access or change.

    Attributes:
        action: What was attempted, e.g. ``rules.create``, ``silences.expire``,
            ``GET /api/v1/alerts``.
        target: What it was done to, e.g. a rule name or a silence id ("" when none).
        result: ``ok``, ``missing``, ``invalid``, ``forbidden``, ``rate_limited``,
            ``conflict``, ``invalid_input``, ``error``... (an :class:`AuthOutcome` value or a
            route's own word).
        client: The client address.
        token_name: The name of the token used (``None`` when unauthenticated).
        role: That token's role.
        status: The HTTP status returned, when there is one.
        time: Epoch seconds; defaults to now.
    """

    action: str
    target: str
    result: str
    client: str
    token_name: str | None = None
    role: str | None = None
    status: int | None = None
    time: float = field(default_factory=time.time)

    def to_dict(self, scrubber: Scrubber) -> dict[str, Any]:
        """The record as a JSON-ready dict, free text scrubbed and clipped.

        The keys are what the storage layer and the ``GET /api/v1/audit`` route return.
        """
        return {
            "time": _rfc3339(self.time),
            "token_name": _clean(scrubber, self.token_name) if self.token_name else None,
            "role": str(self.role) if self.role is not None else None,
            "action": _clean(scrubber, self.action),
            "target": _clean(scrubber, self.target),
            "result": str(self.result),
            "status": self.status,
            "client": _clean(scrubber, self.client),
        }


def render_audit_line(record: AuditRecord, scrubber: Scrubber) -> str:
    """``record`` as one JSON line (``"event": "audit"`` first), ready for a log handler."""
    return json.dumps({"event": "audit", **record.to_dict(scrubber)}, ensure_ascii=False)
