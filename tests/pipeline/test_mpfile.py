"""The multiprocess file format: a collection round-trips, and anything else is refused."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData

from paca_otel.pipeline._mpfile import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    HOST,
    LIVE_SUMMED,
    MAGIC,
    PER_PID,
    SUMMED,
    UPDOWN,
    FileFormatError,
    Flattener,
    Header,
    category,
    decode,
    encode,
    schema_json,
    template_of,
    write_atomic,
)

HEADER = Header("42-abc", 42, 1_700_000_000.5, "host-a", 1_700_000_100.0, False, 123)


@pytest.fixture
def provider() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


def _data(reader: InMemoryMetricReader) -> MetricsData:
    data = reader.get_metrics_data()
    assert data is not None
    return data


def _record(provider: MeterProvider, routes: list[str]) -> None:
    meter = provider.get_meter("app", "1.0")
    counter = meter.create_counter("app.requests")
    histogram = meter.create_histogram("app.duration", unit="s")
    for route in routes:
        counter.add(2, {"route": route, "method": "GET"})
        histogram.record(0.3, {"route": route})
    meter.create_up_down_counter("app.inflight").add(3)
    meter.create_gauge("app.temperature").set(21.5, {"tags": ("a", "b"), "ok": True})


def test_a_collection_round_trips(provider: tuple[MeterProvider, InMemoryMetricReader]) -> None:
    """Schema, values and header come back exactly; attribute sequences stay sequences."""
    meter_provider, reader = provider
    _record(meter_provider, ["/a", "/b"])
    schema, values, start, skipped = Flattener().flatten(_data(reader))
    assert skipped == 0
    assert start > 0
    blob = encode(HEADER, schema_json(schema), b'{"red":1}', values)
    source = decode(blob, {})
    assert source.header == HEADER
    assert source.template == template_of(schema)
    assert list(source.values) == values
    assert source.red == b'{"red":1}'
    kinds = {b.name: b.kind for b in source.template.blocks}
    assert kinds == {"app.requests": COUNTER, "app.duration": HISTOGRAM,
                     "app.inflight": UPDOWN, "app.temperature": GAUGE}  # fmt: skip
    gauge = next(b for b in source.template.blocks if b.name == "app.temperature")
    assert gauge.series == ((("ok", True), ("tags", ("a", "b"))),)


def test_same_series_in_any_order_give_the_same_schema_bytes() -> None:
    """Workers that saw the same series in a different order publish identical schemas."""
    schemas = []
    for routes in (["/a", "/b", "/c"], ["/c", "/a", "/b"]):
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader])
        _record(meter_provider, routes)
        schema, _, _, _ = Flattener().flatten(_data(reader))
        schemas.append(schema_json(schema))
        meter_provider.shutdown()
    assert schemas[0] == schemas[1]


def test_the_flattener_reuses_its_work_and_sees_new_series(
    provider: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    """A second flatten with the same series returns equal schemas; a new series shows up."""
    meter_provider, reader = provider
    _record(meter_provider, ["/a"])
    flattener = Flattener()
    first = flattener.flatten(_data(reader))[0]
    assert flattener.flatten(_data(reader))[0] == first
    _record(meter_provider, ["/z"])
    series = next(e[6] for e in flattener.flatten(_data(reader))[0] if e[1] == "app.requests")
    assert [dict(key)["route"] for key in series] == ["/a", "/z"]


def test_categories_follow_semconv_namespaces_then_kind() -> None:
    """system/container are host-wide; process/cpython and gauges per pid; sums by kind."""
    assert category("system.cpu.time", COUNTER) == HOST
    assert category("container.memory.usage", UPDOWN) == HOST
    assert category("process.cpu.time", COUNTER) == PER_PID
    assert category("cpython.gc.collections", COUNTER) == PER_PID
    assert category("app.temperature", GAUGE) == PER_PID
    assert category("http.server.active_requests", UPDOWN) == LIVE_SUMMED
    assert category("http.server.request.duration", HISTOGRAM) == SUMMED


def _valid_blob() -> bytes:
    schema = ((("s", None, None, ()), "m", "", "", COUNTER, (), ((("k", "v"),),)),)
    return encode(HEADER, schema_json(schema), b"", [1.0])


def _resealed(body: bytes) -> bytes:
    """``body`` with a correct checksum: only the content checks can refuse it."""
    return body + struct.pack("<I", zlib.crc32(body))


def _with_schema(schema: object) -> bytes:
    head = json.dumps(HEADER.to_json()).encode()
    raw = schema if isinstance(schema, bytes) else json.dumps(schema).encode()
    body = MAGIC + struct.pack("<III", len(head), len(raw), 0) + head + raw + struct.pack("<d", 1)
    return _resealed(body)


@pytest.mark.parametrize(
    ("blob", "why"),
    [
        (b"", "magic"),
        (b"#!/bin/sh\nrm -rf /\n", "magic"),
        (_valid_blob()[:-9], "checksum"),
        (_valid_blob()[:20] + b"X" + _valid_blob()[21:], "checksum"),
        (_resealed(_valid_blob()[:-4] + b"\0" * 8), "value count"),
        (_with_schema([["s", None, None, []]]), "schema entry"),
        (_with_schema([[["s", None, None, []], "m", "", "", 9, [], [[["k", "v"]]]]]), "kind"),
        (_with_schema([[["s", None, None, []], "m", "", "", 0, [], [[["k", {}]]]]]), "attribute"),
        (_with_schema([[["s", None, None, []], "m", "", "", 0, [], [[["b", 1], ["a", 1]]]]]),
         "attribute order"),
        (_with_schema([[["s", None, None, []], "m", "", "", 0, [1.0], [[]]]]), "bounds"),
        (_with_schema(b"[" * 100_000), "JSON"),
    ],
)  # fmt: skip
def test_anything_but_a_whole_valid_file_is_refused(blob: bytes, why: str) -> None:
    """Torn, foreign or tampered bytes raise FileFormatError naming the failed check."""
    with pytest.raises(FileFormatError, match=why):
        decode(blob, {})


def test_written_files_are_private_and_replaced_whole(tmp_path: Path) -> None:
    """The file is 0600, replaced by rename, and no temporary file is left behind."""
    write_atomic(tmp_path, "w-1.pamp", _valid_blob())
    write_atomic(tmp_path, "w-1.pamp", _valid_blob())
    assert [p.name for p in tmp_path.iterdir()] == ["w-1.pamp"]
    assert (tmp_path / "w-1.pamp").stat().st_mode & 0o777 == 0o600
    assert decode((tmp_path / "w-1.pamp").read_bytes(), {}).header == HEADER
