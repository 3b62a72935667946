"""``paca-otel report``: an analysis report of the last period, as Markdown, JSON or HTML.

::

    paca-otel report --since 24h --format html --output report.html --prometheus http://prom:9090
    paca-otel report --since 7d --format md --slo api=0.999

The library API (:func:`~paca_otel.analysis.report.generate_report`) takes any
:class:`~paca_otel.analysis.source.SeriesSource`; the command needs one it can open from its
arguments: the service's embedded history file (``--history FILE``, by default the
``history_path`` setting), or a Prometheus server with ``--prometheus URL`` through
``paca_otel.analysis.prometheus_source`` (imported lazily). Every string of the report goes
through the scrubber.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from paca_otel.analysis.report import generate_report
from paca_otel.analysis.report_render import FORMATS, render
from paca_otel.analysis.slo import SLO
from paca_otel.analysis.source import SeriesSource
from paca_otel.errors import ConfigError
from paca_otel.rules._rule import parse_duration

__all__ = ["PROMETHEUS_MODULE", "add_parser", "load_prometheus_source", "parse_slo", "write_report"]

PROMETHEUS_MODULE = "paca_otel.analysis.prometheus_source"
"""Where the Prometheus SeriesSource lives (imported only when ``--prometheus`` is given)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``report`` subcommand on the ``paca-otel`` parser.

    ``sub`` is what ``ArgumentParser.add_subparsers()`` returns; argparse only names its type
    privately, and the annotation is all this module uses of that name.
    """
    parser = sub.add_parser(
        "report",
        help="write an analysis report (trends, anomalies, SLOs, suggestions)",
        description="Analyse the last period of metric history and write a report with "
        "findings, anomalies, trends, forecasts, SLO status and suggestions backed by data.",
    )
    parser.add_argument("--since", default="24h", help="period to analyse (default 24h)")
    parser.add_argument("--format", default="md", choices=list(FORMATS), help="default: md")
    parser.add_argument("--output", "-o", help="output file (default: standard output)")
    parser.add_argument("--prometheus", metavar="URL", help="read history from this Prometheus")
    parser.add_argument(
        "--history",
        metavar="FILE",
        help="the service's history file (default: the history_path setting or its default)",
    )
    parser.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="NAME=OBJECTIVE",
        help="an availability SLO over all routes, e.g. api=0.999 (repeatable)",
    )
    parser.add_argument("--title", default="Service report", help="the report's heading")
    parser.set_defaults(func=_command)


def parse_slo(text: str) -> SLO:
    """``api=0.999`` -> an availability SLO over all routes.

    Raises:
        ConfigError: not ``NAME=OBJECTIVE`` or an invalid name/objective.
    """
    name, sep, objective = text.partition("=")
    try:
        value = float(objective)
    except ValueError:
        value = float("nan")
    if not sep or math.isnan(value):
        msg = f"--slo {text!r} is not NAME=OBJECTIVE (e.g. api=0.999)"
        raise ConfigError(msg)
    return SLO(name=name.strip(), objective=value)


def load_prometheus_source(url: str, *, module: str = PROMETHEUS_MODULE) -> SeriesSource:
    """Open the Prometheus SeriesSource for ``url``.

    Raises:
        ConfigError: the module (or its ``PrometheusSource`` class) is not available.
    """
    try:
        loaded = importlib.import_module(module)
    except ImportError:
        msg = (
            f"--prometheus needs {module}, which this installation does not have; upgrade paca-otel"
        )
        raise ConfigError(msg) from None
    factory = getattr(loaded, "PrometheusSource", None)
    if factory is None:
        msg = f"{module} has no PrometheusSource; upgrade paca-otel"
        raise ConfigError(msg)
    source = factory(url)
    if not isinstance(source, SeriesSource):
        msg = f"{module}.PrometheusSource does not implement SeriesSource"
        raise ConfigError(msg)
    return source


def write_report(
    source: SeriesSource,
    *,
    since: str,
    fmt: str,
    output: str | None = None,
    slos: Sequence[str] = (),
    title: str = "Service report",
    now: float | None = None,
) -> int:
    """Build the report of the last ``since`` and write it; the command's exit code.

    Raises:
        ConfigError: a bad ``since``, format or SLO (a ``RuleError`` for the duration).
    """
    seconds = parse_duration(since, "--since")
    if seconds <= 0:
        msg = f"--since must be longer than 0, got {since!r}"
        raise ConfigError(msg)
    if fmt not in FORMATS:
        msg = f"--format {fmt!r} is not supported; choose one of: {', '.join(FORMATS)}"
        raise ConfigError(msg)
    objectives = [parse_slo(text) for text in slos]
    from paca_otel.config import load_settings
    from paca_otel.privacy import build_scrubber

    scrubber = build_scrubber(load_settings())
    report = generate_report(
        source,
        seconds,
        now=time.time() if now is None else now,
        slos=objectives,
        title=title,
        scrub=scrubber.scrub_text if scrubber is not None else None,
    )
    text = render(report, fmt)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        msg = f"cannot write the report to {output}: {exc.strerror or exc}"
        raise ConfigError(msg) from None
    print(f"report written to {output}", file=sys.stderr)
    return 0


def _command(args: argparse.Namespace) -> int:
    if args.prometheus:
        return write_report(
            load_prometheus_source(args.prometheus),
            since=args.since,
            fmt=args.format,
            output=args.output,
            slos=args.slo,
            title=args.title,
        )
    from paca_otel.analysis.history import HistoryStore, default_history_path
    from paca_otel.config import load_settings

    settings = load_settings(**({"history_path": args.history} if args.history else {}))
    path = Path(settings.history_path or default_history_path(settings.multiprocess_dir))
    if not path.is_file():
        msg = (
            f"no metric history at {path}: run the service with history_enabled=True "
            "(PACA_OTEL_HISTORY_ENABLED), pass --history FILE, or read a server with "
            "--prometheus URL"
        )
        raise ConfigError(msg)
    store = HistoryStore.from_settings(settings)
    try:
        return write_report(
            store,
            since=args.since,
            fmt=args.format,
            output=args.output,
            slos=args.slo,
            title=args.title,
        )
    finally:
        store.close()
