"""Tests for `paca-otel token create`."""

from __future__ import annotations

import json
import re

import pytest

from paca_otel.cli import main
from paca_otel.security import Role, TokenRegistry, parse_api_tokens


def test_token_create_prints_token_once_and_its_settings_entry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The token appears exactly once; the printed entry verifies it with the right role."""
    assert main(["token", "create", "--name", "ci-bot", "--role", "operator"]) == 0
    out = capsys.readouterr().out
    tokens = re.findall(r"paca_[A-Za-z0-9_-]{43}", out)
    assert len(tokens) == 1
    assert out.count(tokens[0]) == 1
    entry = re.search(r"PACA_OTEL_API_TOKENS='([^']+)'", out)
    assert entry is not None
    found = TokenRegistry(parse_api_tokens(entry.group(1))).verify(tokens[0])
    assert found is not None
    assert (found.name, found.role) == ("ci-bot", Role.OPERATOR)
    assert "Authorization: Bearer" in out


def test_token_create_json(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object with name, role, token and the api_tokens entry."""
    assert main(["token", "create", "--name", "dash", "--role", "viewer", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"name", "role", "token", "api_tokens_entry"}
    found = TokenRegistry(parse_api_tokens(data["api_tokens_entry"])).verify(data["token"])
    assert found is not None
    assert found.role is Role.VIEWER


def test_token_create_bad_name_exits_2_with_the_rule(capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid name is one clear line on stderr, exit 2, and no token printed."""
    assert main(["token", "create", "--name", "bad name", "--role", "admin"]) == 2
    captured = capsys.readouterr()
    assert "--name: a token name must be 1-64" in captured.err
    assert "paca_" not in captured.out


def test_token_create_bad_role_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse refuses a role outside viewer/operator/admin."""
    with pytest.raises(SystemExit) as info:
        main(["token", "create", "--name", "x", "--role", "root"])
    assert info.value.code == 2
    assert "viewer" in capsys.readouterr().err
