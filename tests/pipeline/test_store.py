"""Tests for the windowed series store."""

from __future__ import annotations

import math
import threading

import pytest

from paca_otel.errors import ConfigError, RuleError
from paca_otel.pipeline._store import Matcher, SeriesStore, label_value, labels_of

GET = labels_of({"route": "/a", "method": "GET"})
POST = labels_of({"route": "/a", "method": "POST"})
OTHER = labels_of({"route": "/b", "method": "GET"})


def test_labels_of_sorts_stringifies_and_drops_empty() -> None:
    """Label sets are sorted (key, str(value)) pairs without empty values; equal sets hash equal."""
    assert labels_of({"b": 2, "a": "x", "c": ""}) == (("a", "x"), ("b", "2"))
    assert labels_of({"a": "x", "b": 2}) == labels_of({"b": 2, "a": "x"})


def test_labels_of_replaces_unencodable_code_points() -> None:
    """A lone surrogate from the raw OTel API cannot reach rules, alerts or the JSON API."""
    assert labels_of({"iface": "eth\udcff", "k\udcff": 1}) == (
        ("iface", "eth\ufffd"),
        ("k\ufffd", "1"),
    )


def test_label_value_missing_is_empty() -> None:
    """A missing label reads as the empty string, as in PromQL."""
    assert label_value(GET, "route") == "/a"
    assert label_value(GET, "nope") == ""


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        (Matcher("method", "=", "GET"), [GET, OTHER]),
        (Matcher("method", "!=", "GET"), [POST]),
        (Matcher("route", "=~", "/a"), [GET, POST]),
        (Matcher("route", "=~", "/"), []),  # anchored: "/" does not match "/a"
        (Matcher("method", "!~", "G.*"), [POST]),
        (Matcher("missing", "=", ""), [GET, POST, OTHER]),
        (Matcher("missing", "=~", ".+"), []),
    ],
)
def test_matchers(matcher: Matcher, expected: list[object]) -> None:
    """Equality, inequality and fully-anchored regex matchers select like PromQL's."""
    assert [lb for lb in (GET, POST, OTHER) if matcher.matches(lb)] == expected


def test_matcher_rejects_bad_op_and_regex() -> None:
    """An unknown operator or an invalid regex is a RuleError naming the value."""
    with pytest.raises(RuleError, match="'=='"):
        Matcher("a", "==", "x")
    with pytest.raises(RuleError, match=r"\(unclosed"):
        Matcher("a", "=~", "(unclosed")


def test_matcher_hashable_and_str() -> None:
    """Matchers compare and hash by value (cache keys) and print as PromQL."""
    assert Matcher("a", "=~", "x.*") == Matcher("a", "=~", "x.*")
    assert len({Matcher("a", "=~", "x.*"), Matcher("a", "=~", "x.*")}) == 1
    assert str(Matcher("a", "!=", 'q"')) == 'a!="q\\""'


def test_select_window_is_left_open_right_closed() -> None:
    """select returns points with start < ts <= end."""
    store = SeriesStore()
    for t in range(10):
        store.append("m", GET, float(t * 10), float(t))
    [series] = store.select("m", start=2.0, end=5.0)
    assert list(series.timestamps) == [3.0, 4.0, 5.0]
    assert list(series.values) == [30.0, 40.0, 50.0]
    assert series.name == "m"
    assert series.labels == GET


def test_select_by_matchers_and_skips_empty_windows() -> None:
    """Only matching series with points in the window are returned."""
    store = SeriesStore()
    store.append("m", GET, 1.0, 10.0)
    store.append("m", POST, 2.0, 10.0)
    store.append("m", OTHER, 3.0, 1.0)
    got = store.select("m", [Matcher("route", "=", "/a")], start=5.0, end=10.0)
    assert sorted(s.labels for s in got) == sorted([GET, POST])
    assert store.select("m", [Matcher("route", "=", "/b")], start=5.0, end=10.0) == []
    assert store.select("absent", start=0.0, end=100.0) == []


def test_cached_selector_sees_series_born_later() -> None:
    """A selector evaluated before a series exists still finds that series afterwards."""
    store = SeriesStore()
    store.append("m", GET, 1.0, 1.0)
    sel = [Matcher("method", "=", "GET")]
    assert len(store.latest("m", sel, at=1.0)) == 1
    store.append("m", OTHER, 2.0, 2.0)
    store.append("m", POST, 3.0, 2.0)
    assert sorted(lb for lb, _ in store.latest("m", sel, at=2.0)) == sorted([GET, OTHER])


def test_ring_evicts_oldest_and_counts() -> None:
    """A full ring drops its oldest points and counts them in overflow_points."""
    store = SeriesStore(max_points=5)
    for t in range(12):
        store.append("m", GET, float(t), float(t))
    [series] = store.select("m", start=-1.0, end=100.0)
    assert list(series.values) == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert store.overflow_points == 7


def test_ring_compaction_keeps_order_over_many_points() -> None:
    """After many evictions (and compactions) the window still holds the newest points."""
    store = SeriesStore(max_points=50)
    for t in range(5_000):
        store.append("m", GET, float(t), float(t))
    [series] = store.select("m", start=4_989.0, end=5_000.0)
    assert list(series.values) == [float(t) for t in range(4_990, 5_000)]


def test_max_window_expires_old_points() -> None:
    """Points older than max_window behind the newest point are forgotten (not overflow)."""
    store = SeriesStore(max_window=10.0)
    for t in (0.0, 5.0, 20.0, 25.0):
        store.append("m", GET, t, t)
    [series] = store.select("m", start=-100.0, end=100.0)
    assert list(series.timestamps) == [20.0, 25.0]
    assert store.overflow_points == 0


def test_max_series_refuses_and_counts() -> None:
    """New label sets beyond max_series are dropped and counted; existing ones still append."""
    store = SeriesStore(max_series=2)
    store.append("m", GET, 1.0, 1.0)
    store.append("m", POST, 1.0, 1.0)
    store.append("m", OTHER, 1.0, 1.0)
    store.append("n", GET, 1.0, 1.0)
    store.append("m", GET, 2.0, 2.0)
    assert store.overflow_series == 2
    assert len(store) == 2
    assert store.latest("m", [Matcher("method", "=", "GET")], at=2.0) == [(GET, 2.0)]


def test_non_finite_values_dropped() -> None:
    """NaN and infinities never enter the store; they are counted."""
    store = SeriesStore()
    for bad in (math.nan, math.inf, -math.inf):
        store.append("m", GET, bad, 1.0)
    assert store.names() == []
    assert store.dropped_nonfinite == 3


def test_latest_staleness_and_at() -> None:
    """latest returns the newest point at or before `at`, unless older than lookback."""
    store = SeriesStore()
    store.append("m", GET, 1.0, 100.0)
    store.append("m", GET, 2.0, 200.0)
    assert store.latest("m", at=150.0) == [(GET, 1.0)]
    assert store.latest("m", at=250.0) == [(GET, 2.0)]
    assert store.latest("m", at=50.0) == []
    assert store.latest("m", at=600.0) == []  # 400 s old > 300 s lookback
    assert store.latest("m", at=500.0) == [(GET, 2.0)]  # exactly lookback old
    assert store.latest("m", at=250.0, lookback=10.0) == []


def test_staleness_marker_ends_a_series_for_instant_and_window_reads() -> None:
    """After mark_stale, latest() has nothing and window reads skip the marker."""
    store = SeriesStore()
    labels = (("route", "/a"),)
    store.append("latency_p95", labels, 0.8, 10.0)
    store.mark_stale("latency_p95", labels, 20.0)
    store.mark_stale("latency_p95", labels, 30.0)  # already stale: no second marker
    store.mark_stale("never_seen", labels, 30.0)  # no series: nothing created
    assert store.latest("latency_p95", at=25.0) == []
    (series,) = store.select("latency_p95", start=0.0, end=40.0)
    assert list(series.values) == [0.8]
    assert "never_seen" not in store
    store.append("latency_p95", labels, 0.2, 40.0)
    assert store.latest("latency_p95", at=40.0) == [(labels, 0.2)]


def test_same_timestamp_replaces_and_out_of_order_inserts() -> None:
    """A second point at the same instant replaces the first; a late one is inserted in order."""
    store = SeriesStore()
    store.append("m", GET, 1.0, 10.0)
    store.append("m", GET, 2.0, 10.0)
    store.append("m", GET, 3.0, 30.0)
    store.append("m", GET, 4.0, 20.0)
    store.append("m", GET, 5.0, 20.0)
    [series] = store.select("m", start=0.0, end=100.0)
    assert list(series.timestamps) == [10.0, 20.0, 30.0]
    assert list(series.values) == [2.0, 5.0, 3.0]


def test_prune_forgets_silent_series_and_frees_room() -> None:
    """prune removes series with no recent point, making room under max_series."""
    store = SeriesStore(max_series=2, max_window=60.0)
    store.append("m", GET, 1.0, 0.0)
    store.append("m", POST, 1.0, 100.0)
    sel = [Matcher("route", "=", "/a")]
    assert len(store.latest("m", sel, at=100.0, lookback=1000.0)) == 2
    assert store.prune(120.0) == 1
    assert len(store) == 1
    assert store.latest("m", sel, at=100.0, lookback=1000.0) == [(POST, 1.0)]
    store.append("m", OTHER, 1.0, 120.0)
    assert store.overflow_series == 0
    assert store.names() == ["m"]
    assert sorted(store.label_sets("m")) == sorted([POST, OTHER])


def test_config_errors() -> None:
    """Nonsensical bounds are rejected at construction."""
    with pytest.raises(ConfigError, match="max_series"):
        SeriesStore(max_series=0)
    with pytest.raises(ConfigError, match="max_points"):
        SeriesStore(max_points=1)
    with pytest.raises(ConfigError, match="max_window"):
        SeriesStore(max_window=math.inf)


def test_concurrent_reader_while_writing() -> None:
    """Readers on another thread never see torn windows while the writer appends."""
    store = SeriesStore(max_points=100)
    stop = threading.Event()
    errors: list[str] = []

    def read() -> None:
        while not stop.is_set():
            for series in store.select("m", start=-1.0, end=1e9):
                ts = list(series.timestamps)
                if ts != sorted(ts) or len(ts) != len(series.values) or len(ts) > 100:
                    errors.append(repr(ts[:5]))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for t in range(20_000):
            store.append("m", GET, float(t), float(t))
    finally:
        stop.set()
        reader.join()
    assert errors == []
