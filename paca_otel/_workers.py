"""Detect a multi-worker server and say in one line at start-up whether its workers share.

``uvicorn --workers N`` and ``gunicorn -w N`` run N copies of the app. Without
``multiprocess_dir`` each copy has its own metrics and alert state, so every worker's
``/metrics`` and alerts see only its own share of the traffic: the first thing to tell an
operator, once, when it is the case. Detection is best effort, from what the servers
themselves publish, and never guesses a count it cannot read:

- gunicorn's arbiter sets ``SERVER_SOFTWARE=gunicorn/<version>`` before it loads the app (so
  also under ``--preload``); its workers are forked, so they share its command line. The count
  comes from ``-w``/``--workers`` there, else ``GUNICORN_CMD_ARGS``, else ``WEB_CONCURRENCY``;
  with a config file (``-c`` or the default ``./gunicorn.conf.py``) and none of those it is
  unknown, and the warning says "if".
- uvicorn's supervisor spawns its workers (a fresh interpreter each), so a worker reads the
  count from its parent's command line (``--workers N``), else ``UVICORN_WORKERS``, else
  ``WEB_CONCURRENCY``, the variables uvicorn itself reads.

A set-up concern: :func:`announce` is called by ``configure()`` (and again in a forked
child), and says its line once per process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from paca_otel.config import PacaOtelSettings

__all__ = ["WorkerServer", "announce", "classify", "detect"]

logger = logging.getLogger("paca_otel")

_SERVERS = ("gunicorn", "uvicorn")
_announced_pid: int | None = None


@dataclass(frozen=True, slots=True)
class WorkerServer:
    """A server that runs several copies of the app.

    Attributes:
        name: ``"gunicorn"`` or ``"uvicorn"``.
        workers: How many it runs; ``None`` when it cannot be read (a gunicorn config file).
    """

    name: str
    workers: int | None


def _server_in(argv: Sequence[str]) -> str | None:
    """Which server ``argv`` runs: its program, or ``python -m <server>``."""
    for index, arg in enumerate(argv[:3]):
        base = os.path.basename(arg)
        for name in _SERVERS:
            if base == name or (arg == "-m" and argv[index + 1 : index + 2] == [name]):
                return name
    return None


def _count(argv: Sequence[str], *flags: str) -> int | None:
    """The value of the last ``-w N``/``-wN``/``--workers N``/``--workers=N`` in ``argv``."""
    found: int | None = None
    for index, arg in enumerate(argv):
        value: str | None = None
        for flag in flags:
            if arg == flag:
                value = argv[index + 1] if index + 1 < len(argv) else None
            elif flag.startswith("--") and arg.startswith(flag + "="):
                value = arg[len(flag) + 1 :]
            elif not flag.startswith("--") and arg.startswith(flag) and len(arg) > len(flag):
                value = arg[len(flag) :].lstrip("=")
        if value is not None and value.strip().isdigit():
            found = int(value)
    return found


def _env_count(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "").strip()
    return int(value) if value.isdigit() else None


def classify(
    cmdlines: Sequence[Sequence[str]],
    environ: Mapping[str, str],
    *,
    gunicorn_conf: bool = False,
) -> WorkerServer | None:
    """The multi-worker server the command lines and environment show, if any.

    Args:
        cmdlines: This process's argv, then its parent's (either may be empty).
        environ: The environment (``os.environ``).
        gunicorn_conf: Whether gunicorn's default ``./gunicorn.conf.py`` exists.
    """
    for argv in cmdlines:
        name = _server_in(argv)
        if name == "gunicorn":
            return _gunicorn(argv, environ, gunicorn_conf=gunicorn_conf)
        if name == "uvicorn":
            workers = _count(argv, "--workers")
            if workers is None:
                workers = _env_count(environ, "UVICORN_WORKERS")
            if workers is None:
                workers = _env_count(environ, "WEB_CONCURRENCY") or 1
            return WorkerServer("uvicorn", workers)
    if environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        return _gunicorn(cmdlines[0] if cmdlines else [], environ, gunicorn_conf=gunicorn_conf)
    return None


def _gunicorn(
    argv: Sequence[str], environ: Mapping[str, str], *, gunicorn_conf: bool
) -> WorkerServer:
    workers = _count(argv, "-w", "--workers")
    if workers is None:
        workers = _count(environ.get("GUNICORN_CMD_ARGS", "").split(), "-w", "--workers")
    if workers is None:
        if gunicorn_conf or _has_config(argv):
            return WorkerServer("gunicorn", None)
        workers = _env_count(environ, "WEB_CONCURRENCY") or 1
    return WorkerServer("gunicorn", workers)


def _has_config(argv: Sequence[str]) -> bool:
    return any(a in {"-c", "--config"} or a.startswith(("--config=", "-c")) for a in argv[1:])


def detect() -> WorkerServer | None:
    """The multi-worker server running this process, from its and its parent's command line."""
    cmdlines: list[list[str]] = []
    try:
        import psutil

        me = psutil.Process()
        cmdlines.append(me.cmdline())
        parent = me.parent()
        if parent is not None:
            cmdlines.append(parent.cmdline())
    except Exception as exc:  # psutil.Error, no /proc: detection is best effort
        logger.debug("paca-otel: cannot read command lines to detect workers: %s", exc)
    return classify(cmdlines, os.environ, gunicorn_conf=Path("gunicorn.conf.py").is_file())


def announce(settings: PacaOtelSettings, server: WorkerServer | None = None) -> str | None:
    """Log, once per process, whether the workers of a multi-worker server share their data.

    Args:
        settings: The live settings (``multiprocess_dir``).
        server: What :func:`detect` found; detected when omitted.

    Returns:
        The line logged, or ``None`` (one worker, no server detected, or said already).
    """
    global _announced_pid  # noqa: PLW0603  # once per process, and a forked child is a new one
    if _announced_pid == os.getpid():
        return None
    _announced_pid = os.getpid()
    server = detect() if server is None else server
    if server is None or server.workers == 1:
        return None
    many = f"{server.workers} workers" if server.workers else "workers"
    if settings.multiprocess_dir is not None:
        line = (
            f"paca-otel: {server.name} runs {many}; they share "
            f"multiprocess_dir={settings.multiprocess_dir}"
        )
        logger.info(line)
        return line
    condition = "" if server.workers else " (its config file sets the count; if more than one)"
    line = (
        f"paca-otel: {server.name} runs {many}{condition} and multiprocess_dir is not set: each "
        "worker's /metrics and alerts see only its own share of the traffic; set "
        "PACA_OTEL_MULTIPROCESS_DIR to a directory all workers share"
    )
    logger.warning(line)
    return line
