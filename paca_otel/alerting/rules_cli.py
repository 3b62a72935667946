"""The ``paca-otel rules check`` and ``rules export`` commands, as plain functions.

They return exit codes instead of exiting so the CLI (and tests) can call them directly:
0 = success, 1 = the rule file is invalid, 2 = usage error (missing file, unknown format).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from paca_otel.alerting.expr import format_error
from paca_otel.alerting.promql import export_prometheus
from paca_otel.alerting.rules import Rule, load_rules
from paca_otel.errors import ParseError, RuleError

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXPORT_FORMATS = ("prometheus",)


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


def check(path: str | Path, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Validate a rule file: every rule parses and every field is allowed.

    Prints one summary line (and notes such as rules without channels) to ``out``; on an
    invalid rule prints the error with a caret under the bad column to ``err``.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    loaded = _load(path, err)
    if isinstance(loaded, int):
        return loaded
    groups = {rule.group for rule in loaded}
    print(f"{path}: OK, {len(loaded)} rules in {len(groups)} groups", file=out)
    for rule in loaded:
        if not rule.channels:
            print(
                f"  note: rule {rule.name!r} names no channels: it notifies the default (log)",
                file=out,
            )
    return EXIT_OK


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
    result = export_prometheus(loaded, name_map=name_map)
    out.write(result.to_yaml())
    for name, reason in result.skipped:
        print(f"skipped {name}: {reason}", file=err)
    for text in result.warnings:
        print(f"warning: {text}", file=err)
    return EXIT_OK
