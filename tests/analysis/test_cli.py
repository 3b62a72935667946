"""``paca-otel anomalies``: round-trips rows exactly, flags anomalies, rejects bad input."""

from __future__ import annotations

import csv
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from paca_otel.analysis._cli import read_series
from paca_otel.cli import main


def _series(path: Path, n: int = 2000, spike: int | None = 1500) -> list[tuple[str, str]]:
    """A NAB-style file whose value texts are deliberately not in Python's float repr."""
    rng = random.Random(11)
    rows = []
    for i in range(n):
        minute = i * 5
        stamp = f"2014-04-{1 + minute // 1440:02d} {minute % 1440 // 60:02d}:{minute % 60:02d}:00"
        value = 20.0 + rng.gauss(0.0, 1.0) + (30.0 if i == spike else 0.0)
        text = f"{value:.4f}0" if i % 3 else f"{value:.2e}"  # trailing zero / exponent form
        rows.append((stamp, text))
    path.write_text("timestamp,value\n" + "".join(f"{s},{v}\n" for s, v in rows))
    return rows


def test_round_trip_keeps_timestamps_and_values_exactly(tmp_path: Path) -> None:
    """Every input row comes back with its timestamp and value text untouched, in order."""
    source = tmp_path / "in.csv"
    rows = _series(source)
    out = tmp_path / "out.csv"
    assert main(["anomalies", str(source), "--output", str(out)]) == 0
    with out.open(newline="") as handle:
        written = list(csv.reader(handle))
    assert written[0] == ["timestamp", "value", "anomaly_score", "label"]
    assert [(r[0], r[1]) for r in written[1:]] == rows
    for _, _, score, label in written[1:]:
        assert 0.0 <= float(score) <= 1.0
        assert label in {"0", "1"}
    flagged = [i for i, r in enumerate(written[1:]) if r[3] == "1"]
    assert any(1500 <= i <= 1505 for i in flagged), flagged


@pytest.mark.parametrize("detector", ["ensemble", "robust", "ewma", "seasonal"])
def test_every_detector_runs_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], detector: str
) -> None:
    """--detector picks the detector; without --output the CSV goes to stdout."""
    source = tmp_path / "in.csv"
    rows = _series(source, n=800)
    assert main(["anomalies", str(source), "--detector", detector]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "timestamp,value,anomaly_score,label"
    assert len(lines) == len(rows) + 1


def test_other_timestamp_forms_and_missing_values_are_accepted(tmp_path: Path) -> None:
    """ISO with T and zone, epoch seconds and nan values (missing samples) all read."""
    source = tmp_path / "in.csv"
    source.write_text(
        "timestamp,value\n2024-01-01T00:00:00+01:00,1\n1704067500,2\n2024-01-01 00:10:00,nan\n"
    )
    rows = read_series(source)
    assert [r[2] for r in rows] == [1704063600.0, 1704067500.0, 1704067800.0]
    assert math.isnan(rows[2][3])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,value\n2024-01-01 00:00:00,1\n", "header 'timestamp,value'"),
        ("", "header 'timestamp,value'"),
        ("timestamp,value\n2024-01-01 00:00:00,abc\n", "line 2: value 'abc' is not a number"),
        ("timestamp,value\n2024-01-01 00:00:00,\n", "line 2: value '' is not a number"),
        ("timestamp,value\nyesterday,1\n", "line 2: timestamp 'yesterday'"),
        ("timestamp,value\n2024-01-01 00:00:00,1,2\n", "line 2: expected 2 fields"),
        ("timestamp,value\n2024-01-01 00:00:00,inf\n", "infinite"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    """A bad header or row: one line on stderr naming file, line and value; exit code 2."""
    source = tmp_path / "bad.csv"
    source.write_text(content)
    out = tmp_path / "out.csv"
    assert main(["anomalies", str(source), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()  # validated before anything is written


def test_missing_file_exits_2_without_traceback(tmp_path: Path) -> None:
    """The installed command reports a missing file in one line, exit code 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "paca_otel.cli", "anomalies", str(tmp_path / "nope.csv")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot read series file" in proc.stderr
    assert "No such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_unknown_detector_is_rejected_by_the_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--detector outside the list exits 2 with argparse's choices message."""
    source = tmp_path / "in.csv"
    _series(source, n=10)
    with pytest.raises(SystemExit) as info:
        main(["anomalies", str(source), "--detector", "prophet"])
    assert info.value.code == 2
    assert "invalid choice: 'prophet'" in capsys.readouterr().err


def test_unwritable_output_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--output pointing at a directory: one line naming the path, exit code 2."""
    source = tmp_path / "in.csv"
    _series(source, n=10)
    assert main(["anomalies", str(source), "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {str(tmp_path)!r}" in err
    assert "Traceback" not in err
