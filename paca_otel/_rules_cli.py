"""The ``paca-otel rules check`` and ``rules export`` commands, as plain functions.

They return exit codes instead of exiting so the CLI (and tests) can call them directly:
0 = success, 1 = the rule file is invalid, 2 = usage error (missing file, unknown format,
unreadable name map).
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import yaml

from paca_otel.delivery.channels import CHANNEL_KINDS
from paca_otel.errors import ParseError, RuleError
from paca_otel.rules._expr import format_error
from paca_otel.rules._promql import export_prometheus
from paca_otel.rules._rule import Rule, load_rules

if TYPE_CHECKING:
    from paca_otel.config import PacaOtelSettings

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXPORT_FORMATS = ("prometheus",)

CHANNEL_SETTINGS: dict[str, str] = {
    "email": "smtp_host (PACA_OTEL_SMTP_HOST) and smtp_to (PACA_OTEL_SMTP_TO)",
    "webhook": "webhook_url (PACA_OTEL_WEBHOOK_URL)",
    "slack": "slack_webhook_url (PACA_OTEL_SLACK_WEBHOOK_URL)",
    "alertmanager": "alertmanager_url (PACA_OTEL_ALERTMANAGER_URL)",
}
"""Built-in channel -> the settings that configure it (``log`` needs none)."""


def configured_channels(settings: PacaOtelSettings) -> set[str]:
    """The built-in channels ``settings`` configure; ``log`` always is."""
    configured = {"log"}
    if settings.smtp_host:
        configured.add("email")
    for channel, field in (
        ("webhook", "webhook_url"),
        ("slack", "slack_webhook_url"),
        ("alertmanager", "alertmanager_url"),
    ):
        if getattr(settings, field):
            configured.add(channel)
    return configured


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _load(path: str | Path, err: TextIO) -> list[Rule] | int:
    """The rules, or an exit code after printing why they could not be loaded."""
    if not Path(path).is_file():
        print(f"error: rule file {str(path)!r} does not exist", file=err)
        return EXIT_USAGE
    try:
        return load_rules(path)
    except ParseError as exc:
        print(f"error: {format_error(exc)}", file=err)
    except RuleError as exc:
        print(f"error: {exc}", file=err)
    return EXIT_INVALID


def check(
    path: str | Path,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    configured: Collection[str] | None = None,
    custom_channels: Collection[str] = (),
) -> int:
    """Validate a rule file: every rule parses, every field is allowed, every channel exists.

    A file without rules is an error (an empty or truncated file is a mistake, not a rule set).
    A channel name must be a built-in channel (:data:`CHANNEL_KINDS`) or one of
    ``custom_channels`` (channels the application registers in code); anything else, such as
    a typo, is an error naming the allowed ones. Given ``configured`` (the channels this
    environment's settings configure), built-in channels used but not configured are listed
    with the settings to set: until then their notifications go to the log channel.

    Prints one summary line and notes to ``out``; errors (with a caret under the bad column
    for a bad condition) to ``err``.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    loaded = _load(path, err)
    if isinstance(loaded, int):
        return loaded
    if not loaded:
        print(
            f"error: {path}: no rules found; a rule file needs"
            " 'groups: [{name: ..., rules: [{alert: ..., expr: ...}]}]'",
            file=err,
        )
        return EXIT_INVALID
    allowed = set(CHANNEL_KINDS) | set(custom_channels)
    unknown = [
        (rule, channel) for rule in loaded for channel in rule.channels if channel not in allowed
    ]
    if unknown:
        names = ", ".join(sorted(CHANNEL_KINDS))
        custom = ", ".join(sorted(custom_channels)) or "none"
        for rule, channel in unknown:
            print(
                f"error: {path}: group {rule.group!r}: rule {rule.name!r}: unknown channel"
                f" {channel!r}; built-in channels: {names}; declared custom channels: {custom}"
                " (declare one with --channel NAME)",
                file=err,
            )
        return EXIT_INVALID
    groups = {rule.group for rule in loaded}
    print(
        f"{path}: OK, {_plural(len(loaded), 'rule')} in {_plural(len(groups), 'group')}",
        file=out,
    )
    for rule in loaded:
        if not rule.channels:
            print(
                f"  note: rule {rule.name!r} names no channels: it notifies the default (log)",
                file=out,
            )
    if configured is not None:
        users: dict[str, list[str]] = {}
        for rule in loaded:
            for channel in rule.channels:
                if channel in CHANNEL_SETTINGS and channel not in configured:
                    users.setdefault(channel, []).append(rule.name)
        for channel, rules in sorted(users.items()):
            print(
                f"  unconfigured channel {channel!r} (used by {', '.join(rules)}): set"
                f" {CHANNEL_SETTINGS[channel]}; until then its notifications go to the log"
                " channel",
                file=out,
            )
    return EXIT_OK


def load_name_map(path: str | Path) -> dict[str, str]:
    """A ``--name-map`` file: a YAML (or JSON) mapping of paca-otel names to Prometheus names.

    Raises:
        RuleError: the file cannot be read or is not a mapping of strings to strings.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read name map {str(path)!r}: {exc.strerror or exc}"
        raise RuleError(msg) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"name map {str(path)!r} is not valid YAML: {exc}"
        raise RuleError(msg) from None
    if doc is None:
        return {}
    if not isinstance(doc, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
    ):
        msg = (
            f"name map {str(path)!r} must be a mapping of paca-otel names to Prometheus metric"
            ' names, e.g. {"orders": "orders_total"}'
        )
        raise RuleError(msg)
    return dict(doc)


def export(
    path: str | Path,
    fmt: str = "prometheus",
    out: TextIO | None = None,
    *,
    err: TextIO | None = None,
    name_map: Mapping[str, str] | None = None,
) -> int:
    """Write the rule file translated to ``fmt`` to ``out``.

    Rules the format cannot express are listed as comments at the top of the output and on
    ``err``; they do not fail the export.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    if fmt not in EXPORT_FORMATS:
        print(f"error: unknown export format {fmt!r}; choose one of {EXPORT_FORMATS}", file=err)
        return EXIT_USAGE
    loaded = _load(path, err)
    if isinstance(loaded, int):
        return loaded
    try:
        result = export_prometheus(loaded, name_map=name_map)
    except ValueError as exc:  # a name map target that is not a Prometheus metric name
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    out.write(result.to_yaml())
    for name, reason in result.skipped:
        print(f"skipped {name}: {reason}", file=err)
    for text in result.warnings:
        print(f"warning: {text}", file=err)
    return EXIT_OK
