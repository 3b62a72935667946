"""``paca-otel token create --name NAME --role ROLE``: mint a token and print it once.

The token goes to stdout exactly once, next to the ``api_tokens`` entry (name, role, hash) to
add to the settings; the token itself is stored nowhere. ``--json`` prints the same as one
JSON object for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Protocol, TextIO

from paca_otel.security._roles import Role, parse_role
from paca_otel.security._tokens import ApiToken, generate_token, hash_token, validate_token_name

__all__ = ["add_token_parser", "create_token"]


def create_token(name: str, role: str, *, as_json: bool = False, out: TextIO | None = None) -> int:
    """Create a token for ``name`` with ``role`` and print it with its settings entry.

    Raises:
        ConfigError: The name or role is not allowed (the CLI prints it and exits 2).
    """
    stream = out if out is not None else sys.stdout
    valid_name = validate_token_name(name, setting="--name")
    valid_role = parse_role(role, setting="--role")
    token = generate_token()
    entry = ApiToken(name=valid_name, role=valid_role, sha256=hash_token(token))
    if as_json:
        print(
            json.dumps(
                {
                    "name": entry.name,
                    "role": entry.role.value,
                    "token": token,
                    "api_tokens_entry": entry.entry(),
                }
            ),
            file=stream,
        )
        return 0
    print(
        f"Created API token {entry.name!r} with role {entry.role.value}.\n"
        "It is shown only this once and stored nowhere; keep it in your secret store now:\n"
        "\n"
        f"    {token}\n"
        "\n"
        "Add this entry to the api_tokens setting (comma-separate several entries):\n"
        "\n"
        f"    PACA_OTEL_API_TOKENS='{entry.entry()}'\n"
        "\n"
        "Clients send it as:  Authorization: Bearer <token>",
        file=stream,
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    return create_token(args.name, args.role, as_json=args.json)


class Subparsers(Protocol):
    """What ``ArgumentParser.add_subparsers()`` returns, as far as this module uses it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def add_token_parser(sub: Subparsers) -> None:
    """Register ``token create`` on the ``paca-otel`` command's subparsers."""
    token = sub.add_parser("token", help="create API tokens for the monitoring API")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="print a new token once, with its settings entry")
    create.add_argument("--name", required=True, help="who uses it; shown in the audit log")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--json", action="store_true", help="print one JSON object instead")
    create.set_defaults(func=_run)
