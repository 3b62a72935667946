"""A storage file held by another thread: what tests of "never wait for a locked file" need."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from paca_otel.storage import Database


@contextmanager
def held(db: Database) -> Iterator[None]:
    """For the block, another thread holds a transaction on ``db`` (the connection a store
    writes through), so the store's writes wait; it lets go (bounded) when the block ends."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.transaction("hold the file"):
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(10)
        yield
    finally:
        release.set()
        holder.join(30)
