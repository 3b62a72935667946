"""API tokens: creation, the ``api_tokens`` setting, and constant-time verification.

A token is ``paca_`` + 43 url-safe characters: 256 random bits from :mod:`secrets`. The prefix
lets people and secret scanners recognise a leaked token (and the scrubber's ``paca_token``
detector replace it). Settings hold only each token's name, role and SHA-256 hash.

Why a plain SHA-256 and not a password hash (bcrypt, scrypt, argon2): those are slow on purpose
to make guessing a *low-entropy* password expensive. A 256-bit random token cannot be guessed
whatever the hash costs, and a slow hash would add milliseconds to every request. GitHub and
PyPI store their high-entropy API tokens the same way.

The ``api_tokens`` setting (env ``PACA_OTEL_API_TOKENS``) is a comma- or newline-separated list
of ``name:role:sha256hex`` entries, e.g.
``ci-bot:viewer:9f86d0...,oncall:operator:60303a...``, or a JSON list of such strings or of
``{"name": ..., "role": ..., "sha256": ...}`` objects. ``paca-otel token create`` prints the
entry for a new token. Errors name the entry by position and never echo its text, so a raw
token pasted by mistake does not end up in a log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from paca_otel.errors import ConfigError
from paca_otel.security._roles import Role, parse_role

__all__ = [
    "TOKEN_PREFIX",
    "ApiToken",
    "TokenRegistry",
    "generate_token",
    "hash_token",
    "parse_api_tokens",
]

TOKEN_PREFIX: Final = "paca_"
_TOKEN_BYTES: Final = 32  # 256 bits; the issue asks for at least 128
_MAX_PRESENTED: Final = 256  # longer "tokens" are rejected before hashing
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_NAME_RULE: Final = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def generate_token() -> str:
    """A new random token: ``paca_`` + 43 url-safe characters (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The lowercase hex SHA-256 of ``token``: what the settings store."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiToken:
    """One configured token: a name for the audit log, a role, and the token's hash.

    The hash is left out of the repr: it is not the token, but nothing gains by printing it.
    """

    name: str
    role: Role
    sha256: str = field(repr=False)

    def entry(self) -> str:
        """This token as an ``api_tokens`` entry, ``name:role:sha256hex``."""
        return f"{self.name}:{self.role.value}:{self.sha256}"


def validate_token_name(name: object, *, setting: str) -> str:
    """``name`` if it is a valid token name, else a ConfigError that does not echo it."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        msg = f"{setting}: a token name must be {_NAME_RULE}"
        raise ConfigError(msg)
    if name.startswith(TOKEN_PREFIX):
        msg = f"{setting}: a token name must not start with {TOKEN_PREFIX!r} (tokens do)"
        raise ConfigError(msg)
    return name


def _raw_token_error(where: str) -> ConfigError:
    return ConfigError(
        f"{where} looks like a raw token; settings hold only its name, role and hash "
        "(run `paca-otel token create` and use the entry it prints)"
    )


def _from_entry(entry: object, where: str) -> ApiToken:
    if isinstance(entry, ApiToken):
        return entry
    if isinstance(entry, str):
        parts = entry.strip().split(":")
        if any(part.strip().startswith(TOKEN_PREFIX) for part in parts):
            raise _raw_token_error(where)
        if len(parts) != 3:
            msg = (
                f"{where} must be name:role:sha256hex (3 fields separated by ':'), "
                f"got {len(parts)} field(s)"
            )
            raise ConfigError(msg)
        name, role, digest = (part.strip() for part in parts)
    elif isinstance(entry, Mapping):
        unknown = set(entry) - {"name", "role", "sha256"}
        if unknown or not {"name", "role", "sha256"} <= set(entry):
            msg = f"{where} must have exactly the keys name, role and sha256"
            raise ConfigError(msg)
        name, role, digest = entry["name"], entry["role"], entry["sha256"]
        if any(isinstance(v, str) and v.startswith(TOKEN_PREFIX) for v in (name, role, digest)):
            raise _raw_token_error(where)
    else:
        kind = type(entry).__name__
        msg = f"{where} must be a 'name:role:sha256hex' string or an object, not {kind}"
        raise ConfigError(msg)
    name = validate_token_name(name, setting=where)
    if not isinstance(role, str):
        msg = f"{where}: role must be a string"
        raise ConfigError(msg)
    parsed_role = parse_role(role, setting=f"{where} role")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        msg = f"{where}: the hash must be 64 hexadecimal characters (the SHA-256 of the token)"
        raise ConfigError(msg)
    return ApiToken(name=name, role=parsed_role, sha256=digest.lower())


def parse_api_tokens(
    value: str | Iterable[str | Mapping[str, object] | ApiToken] | None,
    *,
    setting: str = "api_tokens",
) -> tuple[ApiToken, ...]:
    """The ``api_tokens`` setting as validated :class:`ApiToken` entries.

    Args:
        value: ``name:role:sha256hex`` entries separated by commas or newlines, a JSON list,
            or an iterable of entry strings, mappings or :class:`ApiToken`.
        setting: The setting's name, for error messages.

    Raises:
        ConfigError: An entry is malformed, a name or hash repeats, or a raw token was given.
            The message names the entry's position and never echoes its text.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return ()
        if text.startswith("["):
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as exc:
                msg = f"{setting} is not valid JSON (line {exc.lineno} column {exc.colno})"
                raise ConfigError(msg) from None
            if not isinstance(loaded, list):
                msg = f"{setting} as JSON must be a list of entries"
                raise ConfigError(msg)
            entries: list[object] = loaded
        else:
            entries = [part for part in re.split(r"[,\n]", text) if part.strip()]
    elif isinstance(value, Mapping):
        msg = f"{setting} must be a list of entries, not a single object"
        raise ConfigError(msg)
    else:
        entries = list(value)
    tokens = tuple(_from_entry(entry, f"{setting} entry {i}") for i, entry in enumerate(entries, 1))
    names: dict[str, int] = {}
    hashes: dict[str, int] = {}
    for i, token in enumerate(tokens, 1):
        if token.name in names:
            msg = f"{setting}: entries {names[token.name]} and {i} are both named {token.name!r}"
            raise ConfigError(msg)
        if token.sha256 in hashes:
            first = hashes[token.sha256]
            msg = f"{setting}: entries {first} and {i} have the same hash (one token, two names)"
            raise ConfigError(msg)
        names[token.name] = i
        hashes[token.sha256] = i
    return tokens


class TokenRegistry:
    """The configured tokens, answering "which token is this?" in constant time.

    :meth:`verify` hashes the presented token and compares the digest with *every* configured
    hash through :func:`hmac.compare_digest`, without stopping at a match, so the time taken
    says nothing about which hash (or how much of it) matched.

    Args:
        tokens: The parsed ``api_tokens`` setting.
    """

    __slots__ = ("_entries",)

    def __init__(self, tokens: Iterable[ApiToken]) -> None:
        self._entries: tuple[tuple[ApiToken, bytes], ...] = tuple(
            (token, bytes.fromhex(token.sha256)) for token in tokens
        )

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        names = ", ".join(f"{t.name}:{t.role.value}" for t, _ in self._entries)
        return f"TokenRegistry([{names}])"

    def verify(self, presented: str) -> ApiToken | None:
        """The configured token ``presented`` is, or ``None``."""
        if not presented or len(presented) > _MAX_PRESENTED:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: ApiToken | None = None
        for token, expected in self._entries:
            if hmac.compare_digest(digest, expected):
                found = token
        return found
