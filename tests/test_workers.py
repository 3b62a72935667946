"""Detecting a multi-worker server and the one start-up line about sharing (paca_otel._workers).

Real servers saying it are in tests/integration/test_workers.py; these pin the parsing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from paca_otel import _workers
from paca_otel._workers import WorkerServer, announce, classify
from paca_otel.config import load_settings

PY = "/venv/bin/python"
SPAWNED = [PY, "-c", "from multiprocessing.spawn import spawn_main; spawn_main()"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([PY, "/venv/bin/gunicorn", "app:app", "-w", "4"], 4),
        ([PY, "/venv/bin/gunicorn", "-w4", "app:app"], 4),
        ([PY, "-m", "gunicorn", "--workers=3", "app:app"], 3),
        ([PY, "-m", "gunicorn", "--workers", "2", "--preload", "app:app"], 2),
        (["/venv/bin/gunicorn", "app:app"], 1),
    ],
)
def test_gunicorn_worker_count_from_its_command_line(argv: list[str], expected: int) -> None:
    """Every spelling of gunicorn's -w/--workers is read; no flag means gunicorn's 1."""
    assert classify([argv], {}) == WorkerServer("gunicorn", expected)


def test_gunicorn_count_from_environment_and_config_file() -> None:
    """GUNICORN_CMD_ARGS, then WEB_CONCURRENCY; a config file makes the count unknown."""
    argv = [PY, "-m", "gunicorn", "app:app"]
    gunicorn_cmd_args = {"GUNICORN_CMD_ARGS": "--bind :80 --workers 5"}
    assert classify([argv], gunicorn_cmd_args) == WorkerServer("gunicorn", 5)
    assert classify([argv], {"WEB_CONCURRENCY": "3"}) == WorkerServer("gunicorn", 3)
    assert classify([[*argv, "-c", "conf.py"]], {}) == WorkerServer("gunicorn", None)
    assert classify([argv], {}, gunicorn_conf=True) == WorkerServer("gunicorn", None)
    assert classify([[*argv, "-c", "conf.py", "-w", "2"]], {}) == WorkerServer("gunicorn", 2)


def test_gunicorn_recognised_by_server_software_alone() -> None:
    """gunicorn sets SERVER_SOFTWARE before it loads the app, whatever launched it."""
    env = {"SERVER_SOFTWARE": "gunicorn/27.0.1", "WEB_CONCURRENCY": "2"}
    assert classify([["/opt/run-app"]], env) == WorkerServer("gunicorn", 2)


def test_uvicorn_worker_reads_its_supervisors_command_line() -> None:
    """A uvicorn worker is spawned: the count is on its parent's command line."""
    parent = [PY, "/venv/bin/uvicorn", "app:app", "--workers", "3", "--port", "8000"]
    assert classify([SPAWNED, parent], {}) == WorkerServer("uvicorn", 3)
    equals = [PY, "-m", "uvicorn", "app:app", "--workers=2"]
    assert classify([SPAWNED, equals], {}) == WorkerServer("uvicorn", 2)
    assert classify([SPAWNED, [PY, "-m", "uvicorn", "app:app"]], {"UVICORN_WORKERS": "4"}) == (
        WorkerServer("uvicorn", 4)
    )
    assert classify([[PY, "-m", "uvicorn", "app:app", "--reload"]], {}) == WorkerServer(
        "uvicorn", 1
    )


def test_no_server_detected() -> None:
    """A script, pytest or a bare interpreter is no multi-worker server."""
    assert classify([[PY, "script.py"], ["/bin/bash"]], {}) is None
    assert classify([], {}) is None
    assert classify([[PY, "-m", "pytest", "-w", "3"]], {}) is None


@pytest.fixture
def fresh_announce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_workers, "_announced_pid", None)


@pytest.mark.usefixtures("fresh_announce")
def test_warning_once_when_workers_do_not_share(caplog: pytest.LogCaptureFixture) -> None:
    """One warning line names the setting to set and what goes wrong; a second call is silent."""
    settings = load_settings()
    with caplog.at_level(logging.INFO, logger="paca_otel"):
        line = announce(settings, WorkerServer("uvicorn", 3))
        again = announce(settings, WorkerServer("uvicorn", 3))
    assert again is None
    assert [r.getMessage() for r in caplog.records] == [line]
    assert caplog.records[0].levelno == logging.WARNING
    assert line is not None
    assert "uvicorn runs 3 workers" in line
    assert "PACA_OTEL_MULTIPROCESS_DIR" in line
    assert "each worker's /metrics and alerts see only its own share" in line


@pytest.mark.usefixtures("fresh_announce")
def test_info_line_when_workers_share(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """With multiprocess_dir set the line is an INFO naming the directory."""
    settings = load_settings(multiprocess_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="paca_otel"):
        line = announce(settings, WorkerServer("gunicorn", None))
    assert caplog.records[0].levelno == logging.INFO
    assert line == f"paca-otel: gunicorn runs workers; they share multiprocess_dir={tmp_path}"


@pytest.mark.usefixtures("fresh_announce")
def test_unknown_count_warns_conditionally_and_one_worker_is_silent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A count the config file hides gets an "if"; a single worker gets no line at all."""
    settings = load_settings()
    assert announce(settings, WorkerServer("gunicorn", 1)) is None
    _workers._announced_pid = None
    line = announce(settings, WorkerServer("gunicorn", None))
    assert line is not None
    assert "if more than one" in line


@pytest.mark.usefixtures("fresh_announce")
def test_detect_in_this_process_finds_no_server(caplog: pytest.LogCaptureFixture) -> None:
    """Under pytest, detection reads real command lines and finds nothing to say."""
    assert _workers.detect() is None
    with caplog.at_level(logging.INFO, logger="paca_otel"):
        assert announce(load_settings()) is None
    assert not caplog.records
