"""Tests for audit records and their JSON log line."""

from __future__ import annotations

import json
import logging

import pytest

from paca_otel.privacy import REDACTED, Scrubber
from paca_otel.security import AUDIT_LOGGER, AuditRecord, Role, generate_token, render_audit_line


def test_audit_line_is_one_json_object_with_every_field() -> None:
    """Token name, role, action, target, result, status, client and time, on one line."""
    record = AuditRecord(
        action="rules.create",
        target="HighLatency",
        result="ok",
        client="10.0.0.1",
        token_name="ops",
        role=Role.ADMIN,
        status=201,
        time=1_764_547_200.25,
    )
    line = render_audit_line(record, Scrubber())
    assert "\n" not in line
    assert json.loads(line) == {
        "event": "audit",
        "time": "2025-12-01T00:00:00.250Z",
        "token_name": "ops",
        "role": "admin",
        "action": "rules.create",
        "target": "HighLatency",
        "result": "ok",
        "status": 201,
        "client": "10.0.0.1",
    }


def test_audit_record_never_carries_a_token_or_secret() -> None:
    """A token or secret pasted into target or action is scrubbed from the line."""
    token = generate_token()
    record = AuditRecord(
        action=f"GET /api/v1/rules?api_key=hunter2secret&x={token}",
        target=f"rule {token}",
        result="invalid",
        client="10.0.0.1",
    )
    line = render_audit_line(record, Scrubber())
    assert token not in line
    assert "hunter2secret" not in line
    assert REDACTED in line
    assert json.loads(line)["token_name"] is None


def test_audit_dict_survives_payload_scrubbing() -> None:
    """The token_name key is on the default allow-list: scrubbing API output keeps it."""
    record = AuditRecord(action="a", target="t", result="ok", client="c", token_name="ops")
    scrubber = Scrubber()
    data = record.to_dict(scrubber)
    assert scrubber.scrub_payload(data) == data


def test_huge_target_is_clipped() -> None:
    """A 10 MB target is not echoed: the line stays small."""
    record = AuditRecord(
        action="rules.create", target="x" * 10_000_000, result="invalid_input", client="c"
    )
    assert len(render_audit_line(record, Scrubber())) < 2_000


def test_audit_line_goes_through_the_audit_logger(caplog: pytest.LogCaptureFixture) -> None:
    """The rendered line is what the paca_otel.audit logger writes."""
    record = AuditRecord(action="silences.expire", target="s1", result="ok", client="c")
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        logging.getLogger(AUDIT_LOGGER).info(render_audit_line(record, Scrubber()))
    assert json.loads(caplog.records[0].getMessage())["action"] == "silences.expire"


def test_record_is_frozen() -> None:
    """Audit records cannot be altered after the fact."""
    record = AuditRecord(action="a", target="t", result="ok", client="c")
    with pytest.raises(AttributeError):
        record.result = "denied"  # type: ignore[misc]  # the point of the test
