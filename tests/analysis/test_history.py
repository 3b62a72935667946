"""The history store: exact round trips, tiers and retention on a fake clock, encryption at
rest, matcher semantics, bounded buffers, clear errors, concurrency and OTel collections."""

from __future__ import annotations

import math
import struct
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from paca_otel.analysis._chunks import encode_chunk
from paca_otel.analysis._matchers import MatcherError
from paca_otel.analysis._rollup import RangePoints
from paca_otel.analysis.history import HistoryError, HistoryStore, default_history_path
from paca_otel.analysis.source import LabelMatcher, RangePoint, SeriesSource
from paca_otel.config import load_settings
from paca_otel.errors import ConfigError
from paca_otel.storage import Codec, open_database
from tests._storage import held

T0 = 1_699_999_200.0  # 2023-11-14T22:00:00Z, a multiple of 1 h
KEY = "correct horse battery staple, twice"
DAY = 86_400.0


class Clock:
    """A settable clock (seconds since the epoch)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", value) for value in values]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> HistoryStore:
    history = HistoryStore(tmp_path / "history.sqlite3", clock=clock, chunk_samples=60)
    yield history  # type: ignore[misc]  # a generator fixture
    history.close()


def _values(store: HistoryStore, name: str, start: float, end: float, step: float) -> list[float]:
    (series,) = store.query_range(name, start=start, end=end, step=step)
    return list(series.points.values)  # type: ignore[attr-defined]  # RangePoints columns


def test_store_is_a_series_source(store: HistoryStore) -> None:
    """The store satisfies the SeriesSource protocol the analyzers take."""
    assert isinstance(store, SeriesSource)


def test_values_and_timestamps_round_trip_exactly_through_the_file(
    tmp_path: Path, clock: Clock
) -> None:
    """NaN payloads, inf, -0.0, tiny and huge floats and ms timestamps survive a reopen."""
    odd_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_0000_1234))[0]
    values = [0.1, -0.0, math.inf, -math.inf, odd_nan, 5e-324, 1.7976931348623157e308, 0.3]
    values = values * 40
    stamps = [T0 + i * 1.001 for i in range(len(values))]  # 1 ms buckets: exact stamps
    path = tmp_path / "h.sqlite3"
    first = HistoryStore(path, clock=clock, chunk_samples=50)
    for at, value in zip(stamps, values, strict=True):
        assert first.append("m", {"a": "b"}, at, value)
    first.close()
    second = HistoryStore(path, clock=clock)
    (series,) = second.query_range("m", start=T0, end=stamps[-1], step=0.001)
    second.close()
    assert _bits(list(series.points.values)) == _bits(values)  # type: ignore[attr-defined]  # columns
    assert list(series.points.timestamps) == [round(at * 1000) / 1000 for at in stamps]  # type: ignore[attr-defined]  # columns
    assert series.labels == {"a": "b"}


def test_samples_are_visible_before_they_are_written(store: HistoryStore) -> None:
    """A query sees buffered and queued samples at once, and the same after the flush."""
    for i in range(150):
        store.append("m", {}, T0 + i, float(i))
    before = _values(store, "m", T0, T0 + 200, 1)
    store.flush()
    assert before == _values(store, "m", T0, T0 + 200, 1) == [float(i) for i in range(150)]


def test_steps_roll_up_mean_min_max_sum_count(store: HistoryStore) -> None:
    """A 30 s step over 10 s samples gives their mean, extremes, sum and count."""
    for i, value in enumerate([1.0, 5.0, 3.0, 10.0]):
        store.append("m", {}, T0 + 10 * i, value)
    (series,) = store.query_range("m", start=T0, end=T0 + 60, step=30)
    assert list(series.points) == [
        RangePoint(T0, 3.0, 1.0, 5.0, 9.0, 3),
        RangePoint(T0 + 30, 10.0, 10.0, 10.0, 10.0, 1),
    ]
    assert series.points[0] == RangePoint(T0, 3.0, 1.0, 5.0, 9.0, 3)
    assert series.points[-1:] == [RangePoint(T0 + 30, 10.0, 10.0, 10.0, 10.0, 1)]


def test_gaps_stay_gaps(store: HistoryStore) -> None:
    """Steps without samples are left out, not filled."""
    store.append("m", {}, T0, 1.0)
    store.append("m", {}, T0 + 100, 2.0)
    (series,) = store.query_range("m", start=T0, end=T0 + 200, step=10)
    assert [p.timestamp for p in series.points] == [T0, T0 + 100]


def _fill(store: HistoryStore, seconds: float, every: float = 10.0) -> list[float]:
    values = [round((i % 97) / 7, 2) for i in range(int(seconds / every))]
    for i, value in enumerate(values):
        store.append("cpu", {"host": "a"}, T0 + every * i, value)
    return values


def test_downsampling_keeps_min_max_sum_and_count(store: HistoryStore, clock: Clock) -> None:
    """After raw data expires, 1 min and 1 h points still hold each bucket's exact aggregates."""
    values = _fill(store, 2 * 3600)
    clock.now = T0 + 3 * 3600
    expected_1m = store.query_range("cpu", start=T0, end=T0 + 7200, step=60)[0].points
    expected_1h = store.query_range("cpu", start=T0, end=T0 + 7200, step=3600)[0].points
    report = store.run_maintenance()
    assert report.downsampled_points == 120 + 2
    clock.now = T0 + 2 * DAY  # raw (24 h) is gone, 1 min (7 d) remains
    assert store.run_maintenance().deleted_chunks > 0
    got = store.query_range("cpu", start=T0, end=T0 + 7200, step=60)[0].points
    assert list(got) == list(expected_1m)
    assert sum(p.count for p in got) == len(values)
    assert min(p.min for p in got) == min(values)
    assert max(p.max for p in got) == max(values)
    clock.now = T0 + 30 * DAY  # only 1 h (90 d) remains
    store.run_maintenance()
    hourly = store.query_range("cpu", start=T0, end=T0 + 7200, step=3600)[0].points
    assert [(p.timestamp, p.count, p.min, p.max) for p in hourly] == [
        (p.timestamp, p.count, p.min, p.max) for p in expected_1h
    ]
    assert [p.sum for p in hourly] == pytest.approx([p.sum for p in expected_1h], rel=1e-12)
    clock.now = T0 + 91 * DAY  # everything has expired: the series is forgotten
    assert store.run_maintenance().forgotten_series == 1
    assert store.names() == []
    assert store.query_range("cpu", start=T0, end=clock.now, step=3600) == []


def test_queries_join_rolled_up_and_newer_raw_data(store: HistoryStore, clock: Clock) -> None:
    """A range over the tier boundary counts every sample once: old from 1 min, new from raw."""
    values = _fill(store, 3600)
    clock.now = T0 + 1800
    store.run_maintenance()  # rolls up what is sealed (the first chunks), not the rest
    clock.now = T0 + 2 * 3600
    points = store.query_range("cpu", start=T0, end=T0 + 3600, step=60)[0].points
    assert sum(p.count for p in points) == len(values)
    assert sum(p.sum for p in points) == pytest.approx(sum(values))


def test_a_bucket_is_rolled_up_only_when_complete(store: HistoryStore, clock: Clock) -> None:
    """Samples still buffered are never summarised early: later maintenance adds no duplicates."""
    for i in range(90):  # 60 sealed, 30 buffered; chunk_samples=60
        store.append("m", {}, T0 + i, 1.0)
    clock.now = T0 + 100
    store.run_maintenance()
    for i in range(90, 200):
        store.append("m", {}, T0 + i, 1.0)
    store.flush()
    clock.now = T0 + 300
    store.run_maintenance()
    clock.now = T0 + 2 * DAY
    store.run_maintenance()
    (series,) = store.query_range("m", start=T0, end=T0 + 600, step=60)
    assert [p.count for p in series.points] == [60, 60, 60, 20]
    assert not store.append("m", {}, T0 + 230, 1.0)  # its bucket is rolled up: refused
    assert store.dropped["history_out_of_order"] == 1


def test_maintenance_thread_runs_and_stops(store: HistoryStore, clock: Clock) -> None:
    """start() rolls tiers up and expires raw data in the background; stop() ends the thread."""
    values = _fill(store, 3600)
    store.flush()
    clock.now = T0 + 3 * DAY
    store.start(interval=0.01)
    deadline = time.monotonic() + 10
    while store.last_maintenance is None or store.last_maintenance.deleted_chunks == 0:
        assert time.monotonic() < deadline, "maintenance did not run"
        time.sleep(0.01)
    store.stop()
    (series,) = store.query_range("cpu", start=T0, end=T0 + 3600, step=3600)
    assert series.points[0].count == len(values)
    with pytest.raises(ConfigError, match="interval=0"):
        store.start(interval=0)


def _file_bytes(path: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
    )


def test_sensitive_series_leave_no_plaintext_in_the_file(tmp_path: Path, clock: Clock) -> None:
    """Sensitive chunks are AES-GCM in the file: neither their values, their chunk bytes nor
    their label values can be found in it (or its WAL); a plain series' chunk can."""
    path = tmp_path / "h.sqlite3"
    store = HistoryStore(path, codec=Codec(KEY), clock=clock, chunk_samples=50)
    secret = [123456.789 + i for i in range(100)]
    plain = [987654.321 + i for i in range(100)]
    stamps = [T0 + 10 * i for i in range(100)]
    for at, s, p in zip(stamps, secret, plain, strict=True):
        store.append("pay.amount", {"customer": "alice-secret-id"}, at, s, sensitive=True)
        store.append("cpu", {"host": "host-label-plain-1"}, at, p)
    store.flush()
    clock.now = T0 + 3 * 3600
    store.run_maintenance()  # downsampled chunks of the sensitive series are encrypted too
    data = _file_bytes(path)
    millis = [round(at * 1000) for at in stamps]
    assert encode_chunk(millis[:50], [plain[:50]]) in data  # the grep does find chunks
    assert encode_chunk(millis[:50], [secret[:50]]) not in data
    assert encode_chunk(millis[50:], [secret[50:]]) not in data
    for value in secret[:5]:
        assert struct.pack("<d", value) not in data
        assert repr(value).encode() not in data
    assert b"alice-secret-id" not in data
    assert b"host-label-plain-1" not in data  # with a key, every series' labels are encrypted
    reopened_values = _values(store, "pay.amount", T0, stamps[-1], 10)
    store.close()
    assert _bits(reopened_values) == _bits(secret)
    again = HistoryStore(path, codec=Codec(KEY), clock=clock)
    assert _bits(_values(again, "pay.amount", T0, stamps[-1], 10)) == _bits(secret)
    again.close()


def test_sensitive_needs_a_key_and_patterns_mark_series(tmp_path: Path, clock: Clock) -> None:
    """Sensitive without storage_key is a ConfigError; a name pattern marks matching series."""
    plain = HistoryStore(None, clock=clock)
    with pytest.raises(ConfigError, match="storage_key"):
        plain.append("m", {}, T0, 1.0, sensitive=True)
    plain.close()
    with pytest.raises(ConfigError, match="storage_key"):
        HistoryStore(None, sensitive="pay\\..*")
    with pytest.raises(ConfigError, match="RE2"):
        HistoryStore(None, codec=Codec(KEY), sensitive="(")
    path = tmp_path / "p.sqlite3"
    store = HistoryStore(path, codec=Codec(KEY), sensitive="pay\\..*", clock=clock)
    store.append("pay.amount", {}, T0, 4242.4242)
    store.flush()
    store.close()
    assert struct.pack("<d", 4242.4242) not in _file_bytes(path)
    assert encode_chunk([round(T0 * 1000)], [[4242.4242]]) not in _file_bytes(path)


def test_matchers_mean_what_they_mean_in_rules(store: HistoryStore) -> None:
    """=, !=, =~ (anchored RE2), !~, and a missing label matching as the empty string."""
    for route, env in [("/api/a", "prod"), ("/api/b", "dev"), ("/health", "")]:
        labels = {"route": route, "env": env} if env else {"route": route}
        store.append("req", labels, T0, 1.0)

    def routes(*matchers: LabelMatcher) -> list[str]:
        found = store.query_range("req", matchers, start=T0, end=T0, step=1)
        return sorted(s.labels["route"] for s in found)

    assert routes(LabelMatcher("env", "=", "prod")) == ["/api/a"]
    assert routes(LabelMatcher("env", "!=", "prod")) == ["/api/b", "/health"]
    assert routes(LabelMatcher("route", "=~", "/api/.*")) == ["/api/a", "/api/b"]
    assert routes(LabelMatcher("route", "=~", "api")) == []  # anchored
    assert routes(LabelMatcher("route", "!~", "/api/.*")) == ["/health"]
    assert routes(LabelMatcher("env", "=", "")) == ["/health"]
    assert routes(LabelMatcher("env", "!=", "")) == ["/api/a", "/api/b"]
    assert routes(LabelMatcher("route", "=~", "/api/.*"), LabelMatcher("env", "=~", "d.*")) == [
        "/api/b"
    ]
    assert store.query_range("nothing", start=T0, end=T0, step=1) == []
    with pytest.raises(MatcherError, match="RE2") as info:
        store.query_range("req", [LabelMatcher("route", "=~", "(a")], start=T0, end=T0, step=1)
    assert isinstance(info.value, ValueError)
    with pytest.raises(MatcherError, match="op one of"):
        store.query_range("req", [LabelMatcher("r", "==", "a")], start=T0, end=T0, step=1)  # type: ignore[arg-type]  # the bad op is the test


def test_bad_input_gets_clear_errors(store: HistoryStore) -> None:
    """Bad names, labels, times, values and ranges raise HistoryError naming the argument."""
    cases = [
        (lambda: store.append("", {}, T0, 1.0), "name"),
        (lambda: store.append("m", {"a": 1}, T0, 1.0), "labels"),  # type: ignore[dict-item]  # the bad label is the test
        (lambda: store.append("m", {}, math.nan, 1.0), "timestamp=nan"),
        (lambda: store.append("m", {}, "now", 1.0), "timestamp='now'"),  # type: ignore[arg-type]  # the bad type is the test
        (lambda: store.append("m", {}, T0, "1"), "must be a number"),  # type: ignore[arg-type]  # the bad type is the test
        (lambda: store.query_range("m", start=T0, end=T0 - 1, step=1), "before start"),
        (lambda: store.query_range("m", start=T0, end=T0, step=0), "step=0"),
        (lambda: store.query_range("m", start=T0, end=T0 + 1e9, step=1), "larger step"),
        (lambda: store.query_range("m", start=math.inf, end=T0, step=1), "start=inf"),
    ]
    for call, text in cases:
        with pytest.raises(HistoryError) as info:
            call()
        assert text in str(info.value), (text, info.value)
        assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigError, match="chunk_samples"):
        HistoryStore(None, chunk_samples=1)
    with pytest.raises(ConfigError, match="chunk_span"):
        HistoryStore(None, chunk_span=0)


def test_out_of_order_and_over_limit_samples_are_dropped_and_counted(clock: Clock) -> None:
    """Old or repeated timestamps, series beyond max_series and a full write queue: counted."""
    store = HistoryStore(None, clock=clock, max_series=2, max_pending=5, chunk_samples=5)
    assert store.append("m", {}, T0 + 10, 1.0)
    assert not store.append("m", {}, T0 + 10, 2.0)
    assert not store.append("m", {}, T0 + 5, 2.0)
    assert store.append("m", {"i": "2"}, T0, 1.0)
    assert not store.append("m", {"i": "3"}, T0, 1.0)
    store.flush()  # the writer is not blocked: nothing dropped for the backlog yet
    assert store.dropped == {"history_out_of_order": 2, "history_series_limit": 1}
    store.close()


def test_appends_never_wait_for_a_locked_file_and_the_backlog_is_bounded(
    tmp_path: Path, clock: Clock
) -> None:
    """With another thread holding the file, appends go on; chunks beyond max_pending are
    dropped and counted, and the queued ones are written once the file is free."""
    path = tmp_path / "b.sqlite3"
    store = HistoryStore(path, clock=clock, max_pending=10, chunk_samples=5)
    shared = open_database(path)  # the same connection the store writes through
    with held(shared):
        for i in range(31):
            store.append("m", {}, T0 + i, float(i))
        assert store.dropped["history_write_backlog"] == 20
    (series,) = store.query_range("m", start=T0, end=T0 + 40, step=1)
    assert series.points.values == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 30.0]  # type: ignore[attr-defined]  # columns
    shared.close()
    store.close()


def test_concurrent_appends_and_queries(store: HistoryStore) -> None:
    """Writers and readers at once: no errors, and every sample is counted exactly once."""
    errors: list[BaseException] = []

    def write(host: str) -> None:
        try:
            for i in range(3000):
                store.append("m", {"host": host}, T0 + i, 1.0)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(30):
                for series in store.query_range("m", start=T0, end=T0 + 3000, step=100):
                    assert all(p.count <= 100 for p in series.points)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(h,)) for h in "abc"]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    store.flush()
    found = store.query_range("m", start=T0, end=T0 + 3000, step=3000)
    assert sorted((s.labels["host"], s.points[0].count) for s in found) == [
        ("a", 3000),
        ("b", 3000),
        ("c", 3000),
    ]


def test_records_one_collection_of_gauges_sums_and_histograms(store: HistoryStore) -> None:
    """An SDK collection becomes samples: gauges, counters, histogram count/sum/quantiles."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("test")
    counter = meter.create_counter("orders")
    histogram = meter.create_histogram(
        "latency", unit="s", explicit_bucket_boundaries_advisory=[0.005, 0.01, 0.1, 0.5, 1, 2.5, 5]
    )
    meter.create_observable_gauge(
        "temp", callbacks=[lambda _options: [Observation(21.5, {"room": "a"})]]
    )
    counter.add(3, {"shop": "x", "vip": True})
    for value in [0.001] * 90 + [0.3] * 10:
        histogram.record(value)
    assert store.record_metrics_data(reader.get_metrics_data(), timestamp=T0) > 0
    for value in [2.0] * 100:  # the next interval is slower: its quantiles say so
        histogram.record(value)
    store.record_metrics_data(reader.get_metrics_data(), timestamp=T0 + 10)
    provider.shutdown()
    assert {"orders", "temp", "latency.count", "latency.sum", "latency.p50", "latency.p99"} <= set(
        store.names()
    )
    (orders,) = store.query_range("orders", start=T0, end=T0, step=1)
    assert orders.labels == {"shop": "x", "vip": "true"}
    assert _values(store, "temp", T0, T0, 1) == [21.5]
    assert _values(store, "latency.count", T0, T0 + 10, 10) == [100.0, 200.0]
    p50 = _values(store, "latency.p50", T0, T0 + 10, 10)
    assert p50[0] < 0.005
    assert 1.0 < p50[1] <= 2.5


def test_record_metrics_data_never_raises(store: HistoryStore) -> None:
    """Samples the store refuses are dropped and counted, not raised into the pipeline."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("t").create_counter("c").add(1)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert store.record_metrics_data(data, timestamp=T0) == 1
    assert store.record_metrics_data(data, timestamp=T0) == 0  # same time again: out of order
    assert store.record_metrics_data(data, timestamp=math.nan) == 0
    assert store.dropped["history_bad_sample"] == 1


def test_range_points_are_a_sequence_of_range_point(store: HistoryStore) -> None:
    """Query points index, slice, iterate and compare like a list of RangePoint."""
    for i in range(5):
        store.append("m", {}, T0 + i, float(i))
    (series,) = store.query_range("m", start=T0, end=T0 + 5, step=1)
    points = series.points
    assert isinstance(points, RangePoints)
    assert len(points) == 5
    assert points[2] == RangePoint(T0 + 2, 2.0, 2.0, 2.0, 2.0, 1)
    assert points == [
        RangePoint(T0 + i, float(i), float(i), float(i), float(i), 1) for i in range(5)
    ]
    assert points.values == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert "5 points" in repr(points)


def test_from_settings_uses_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without history_path the file goes under $XDG_DATA_HOME/paca-otel/; tiers are read."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_history_path() == tmp_path / "data" / "paca-otel" / "history.sqlite3"
    store = HistoryStore.from_settings(load_settings(history_tiers="raw:1h,5m:1d"))
    assert [t.resolution_ms for t in store.tiers] == [0, 300_000]
    store.append("m", {}, T0, 1.0)
    store.close()
    assert default_history_path().exists()
    with pytest.raises(ConfigError, match="history_tiers"):
        HistoryStore.from_settings(load_settings(history_tiers="1m:1d"))
    with pytest.raises(ConfigError, match="storage_key"):
        HistoryStore.from_settings(load_settings(history_sensitive="pay.*"))


def test_a_reopened_store_resumes_where_it_left_off(tmp_path: Path, clock: Clock) -> None:
    """Series, roll-up progress and the out-of-order guard survive a restart."""
    path = tmp_path / "r.sqlite3"
    first = HistoryStore(path, clock=clock, chunk_samples=60)
    values = _fill(first, 3600)
    clock.now = T0 + 3 * 3600
    assert first.run_maintenance().downsampled_points == 61
    first.close()
    second = HistoryStore(path, clock=clock, chunk_samples=60)
    assert second.run_maintenance().downsampled_points == 0
    assert not second.append("cpu", {"host": "a"}, T0, 1.0)  # older than what is stored
    clock.now = T0 + 30 * DAY
    second.run_maintenance()
    (series,) = second.query_range("cpu", start=T0, end=T0 + 3600, step=3600)
    assert series.points[0].count == len(values)
    second.close()


def test_a_report_reads_the_history(clock: Clock) -> None:
    """generate_report over the store finds a filling disk recorded in it."""
    from paca_otel.analysis.report import generate_report
    from paca_otel.analysis.report_render import render

    store = HistoryStore(None, clock=clock)
    start = clock.now - 6 * 3600
    for i in range(2160):
        store.append("disk_usage", {}, start + 10 * i, 80 + i / 2160 * 6)
        store.append("cpu_usage", {}, start + 10 * i, 30.0 + (i % 7))
    text = render(generate_report(store, 6 * 3600, now=clock.now), "md")
    store.close()
    assert "disk_usage reaches 90 %" in text
