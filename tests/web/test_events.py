"""The live feed: one per composition root, bounded streams, a fresh one after fork."""

from __future__ import annotations

from paca_otel._runtime import Runtime
from paca_otel.config import PacaOtelSettings
from paca_otel.web._events import MAX_STREAMS, LiveFeed
from paca_otel.web._facade import Monitor


def _monitor() -> Monitor:
    return Monitor(Runtime(PacaOtelSettings(metrics_exporter="none", system_metrics=False)))


def test_each_root_has_its_own_feed() -> None:
    first, second = _monitor(), _monitor()
    assert first.component(LiveFeed) is first.component(LiveFeed)
    assert first.component(LiveFeed) is not second.component(LiveFeed)


def test_streams_are_bounded_per_root_and_released() -> None:
    monitor, other = _monitor(), _monitor()
    feed = monitor.component(LiveFeed)
    assert all(feed.try_open() for _ in range(MAX_STREAMS))
    assert not feed.try_open()  # 503 past the bound
    assert other.component(LiveFeed).try_open()  # another root counts its own
    feed.release()
    assert feed.try_open()


def test_a_forked_child_starts_with_no_streams() -> None:
    feed = LiveFeed()
    assert feed.try_open()
    feed.after_fork_in_child()
    assert feed.streams == 0
    assert feed.try_open()
