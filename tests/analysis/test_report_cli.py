"""``paca-otel report``: arguments, formats, output file, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paca_otel.analysis._report_cli import load_prometheus_source, parse_slo, write_report
from paca_otel.cli import main
from paca_otel.errors import ConfigError, RuleError
from tests.analysis import scenario


def test_writes_each_format_to_a_file(tmp_path: Path) -> None:
    """md, json and html reports of the scenario are written where --output says."""
    source, _ = scenario.build()
    for fmt in ("md", "json", "html"):
        out = tmp_path / f"report.{fmt}"
        code = write_report(
            source, since="24h", fmt=fmt, output=str(out), slos=["api=0.999"], now=scenario.END
        )
        assert code == 0
        text = out.read_text(encoding="utf-8")
        assert "disk_usage" in text
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert data["slos"][0]["name"] == "api"
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!doctype html>")


def test_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --output the report goes to standard output."""
    source, _ = scenario.build()
    assert write_report(source, since="6h", fmt="md", now=scenario.END) == 0
    assert capsys.readouterr().out.startswith("# Service report")


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    """Bad --since, --slo, --format and an unwritable --output name what is wrong."""
    source, _ = scenario.build()
    with pytest.raises(RuleError, match="--since"):
        write_report(source, since="yesterday", fmt="md")
    with pytest.raises(ConfigError, match="--since must be longer than 0"):
        write_report(source, since="0s", fmt="md")
    with pytest.raises(ConfigError, match="--format"):
        write_report(source, since="1h", fmt="pdf")
    with pytest.raises(ConfigError, match="NAME=OBJECTIVE"):
        parse_slo("api")
    with pytest.raises(ConfigError, match="objective"):
        parse_slo("api=2")
    with pytest.raises(ConfigError, match="cannot write"):
        write_report(
            source,
            since="1h",
            fmt="md",
            output=str(tmp_path / "missing" / "r.md"),
            now=scenario.END,
        )


def test_prometheus_source_missing_is_a_clear_error() -> None:
    """Without the Prometheus source module, --prometheus says what is missing."""
    with pytest.raises(ConfigError, match=r"needs paca_otel\.analysis\.no_such_module"):
        load_prometheus_source("http://127.0.0.1:9", module="paca_otel.analysis.no_such_module")


def test_command_without_history_says_where_to_get_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without a history file or --prometheus, the command exits 2 and names both ways."""
    assert main(["report", "--since", "1h", "--history", str(tmp_path / "none.sqlite3")]) == 2
    err = capsys.readouterr().err
    assert "--prometheus URL" in err
    assert "history_enabled" in err


def test_command_reads_the_local_history_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``paca-otel report --history FILE`` reports what the service recorded there."""
    import time

    from paca_otel.analysis.history import HistoryStore

    path = tmp_path / "history.sqlite3"
    store = HistoryStore(path)
    now = time.time()
    for i in range(120):
        store.append("cpu_usage", {}, now - 3600 + 30 * i, 40.0 + (i % 7))
    store.close()
    assert main(["report", "--since", "1h", "--history", str(path), "--format", "json"]) == 0
    assert '"cpu_usage"' in capsys.readouterr().out


def test_registered_in_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """``paca-otel report --help`` lists the options."""
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--since", "--format", "--output", "--prometheus", "--slo"):
        assert option in out
