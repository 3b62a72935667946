"""Broken state files for the storage-fault tests: garbage, corrupt pages, read-only."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

FAULTS = ("garbage", "corrupt", "readonly")


def _valid(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, data TEXT)")
    conn.executemany("INSERT INTO filler (data) VALUES (?)", [("x" * 500,)] * 200)
    conn.commit()
    conn.close()


@contextlib.contextmanager
def broken_state_file(directory: Path, fault: str) -> Iterator[Path]:
    """A state file with ``fault``; a read-only one is made writable again on exit."""
    path = directory / f"{fault}.sqlite3"
    if fault == "garbage":
        path.write_bytes(b"this is not a database\n" * 100)
    elif fault == "corrupt":
        _valid(path)
        data = bytearray(path.read_bytes())
        page = 4096
        data[2 * page : 6 * page] = b"\xa5" * (4 * page)  # pages 3-6: b-tree pages, garbage
        path.write_bytes(bytes(data))
    elif fault == "readonly":
        _valid(path)
        if os.geteuid() == 0:  # root ignores modes: make the file immutable instead
            chattr = shutil.which("chattr")
            assert chattr is not None, "chattr is needed to make a read-only file as root"
            subprocess.run([chattr, "+i", str(path)], check=True)
        else:
            path.chmod(0o444)
            directory.chmod(0o555)
    else:
        raise AssertionError(fault)
    try:
        yield path
    finally:
        if fault == "readonly":
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", str(path)], check=True)
            else:
                directory.chmod(0o755)
                path.chmod(0o644)
