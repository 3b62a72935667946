"""``paca-otel anomalies FILE.csv``: score a ``timestamp,value`` CSV (NAB's format) offline.

Reads the whole file first and validates it (so a bad row fails before any output is
written), runs one detector over it in order, and writes ``timestamp,value,anomaly_score,label``
with the timestamp and value fields copied exactly as read (no reparsing, no reformatting),
so the output joins back onto the input row by row.

Timestamps are ISO 8601 (``2014-04-01 00:00:00``, with or without ``T``, zone or
fraction; a timestamp without zone is read as UTC) or plain epoch seconds. A value of
``nan`` is a missing sample: it is kept in the output with score 0.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from paca_otel.analysis.detectors import DETECTORS, create_detector
from paca_otel.errors import PacaOtelError

__all__ = ["SeriesFileError", "add_parser", "read_series", "run", "score_rows"]

_HEADER = ("timestamp", "value")


class SeriesFileError(PacaOtelError, ValueError):
    """A series file cannot be read: missing, not ``timestamp,value``, or a bad row."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``anomalies`` subcommand on the ``paca-otel`` parser.

    ``sub`` is what ``ArgumentParser.add_subparsers()`` returns; argparse only names its type
    privately, and the annotation is all this module uses of that name.
    """
    parser = sub.add_parser(
        "anomalies",
        help="score a timestamp,value CSV (NAB format) for anomalies",
        description="Run a streaming anomaly detector over a timestamp,value CSV and write "
        "timestamp,value,anomaly_score,label (label 1 where the detector flags the point).",
    )
    parser.add_argument("file", help="input CSV with a timestamp,value header")
    parser.add_argument(
        "--detector", default="ensemble", choices=list(DETECTORS), help="default: ensemble"
    )
    parser.add_argument("--output", "-o", help="output CSV (default: standard output)")
    parser.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    return run(args.file, detector=args.detector, output=args.output)


def _parse_timestamp(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def read_series(path: str | Path) -> list[tuple[str, str, float, float]]:
    """Read and validate a series file: ``(timestamp text, value text, seconds, value)`` rows.

    Raises:
        SeriesFileError: the file is missing or unreadable, its header is not
            ``timestamp,value``, or a row has the wrong number of fields, a timestamp that is
            neither ISO 8601 nor epoch seconds, or a value that is not a number.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        msg = f"cannot read series file {str(path)!r}: {reason}"
        raise SeriesFileError(msg) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(field.strip().lower() for field in header) != _HEADER:
        msg = f"{path}: the first line must be the header 'timestamp,value', got {header!r}"
        raise SeriesFileError(msg)
    rows = []
    for row in reader:
        line = reader.line_num
        if not row:
            continue  # a blank line (typically the last) carries no sample
        if len(row) != 2:
            msg = f"{path}, line {line}: expected 2 fields (timestamp,value), got {len(row)}"
            raise SeriesFileError(msg)
        stamp, value = row
        try:
            seconds = _parse_timestamp(stamp)
        except (ValueError, OverflowError):
            msg = (
                f"{path}, line {line}: timestamp {stamp!r} is neither ISO 8601 "
                "(e.g. 2014-04-01 00:00:00) nor epoch seconds"
            )
            raise SeriesFileError(msg) from None
        try:
            number = float(value)
        except ValueError:
            msg = f"{path}, line {line}: value {value!r} is not a number"
            raise SeriesFileError(msg) from None
        if math.isinf(number):
            msg = f"{path}, line {line}: value {value!r} is infinite; use nan for a missing sample"
            raise SeriesFileError(msg)
        rows.append((stamp, value, seconds, number))
    return rows


def score_rows(
    rows: Sequence[tuple[str, str, float, float]], detector: str = "ensemble"
) -> list[tuple[str, str, str, str]]:
    """Run a fresh detector over validated rows; output rows keep the input text as read."""
    model = create_detector(detector)
    update = model.update
    out = []
    for stamp, value, seconds, number in rows:
        result = update(seconds, number)
        out.append((stamp, value, f"{result.score:.6f}", "1" if result.is_anomaly else "0"))
    return out


def run(path: str | Path, *, detector: str = "ensemble", output: str | Path | None = None) -> int:
    """The ``anomalies`` command: read, score, write; returns the exit code."""
    rows = score_rows(read_series(path), detector)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("timestamp", "value", "anomaly_score", "label"))
    writer.writerows(rows)
    if output is None:
        sys.stdout.write(buffer.getvalue())
        return 0
    try:
        Path(output).write_text(buffer.getvalue(), encoding="utf-8")
    except OSError as exc:
        msg = f"cannot write {str(output)!r}: {exc.strerror or exc}"
        raise SeriesFileError(msg) from None
    return 0
