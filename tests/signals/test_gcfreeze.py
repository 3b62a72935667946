"""The start-up heap is frozen out of the cyclic GC once, at the first served request."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from paca_otel import instrument_fastapi
from paca_otel.signals._gcfreeze import freeze_startup_heap

NO_BUILTIN = {"tracing": False, "metrics": False, "logs": False}


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Nothing frozen before the test; whatever the test froze is handed back after it."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def _app() -> FastAPI:
    app = FastAPI(telemetry=NO_BUILTIN)  # type: ignore[call-arg]  # FastAPI >= 0.165

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


async def _get(app: FastAPI, path: str = "/items/1") -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return (await http.get(path)).status_code


@pytest.mark.usefixtures("unfrozen")
def test_freeze_moves_the_heap_out_of_reach_once() -> None:
    assert freeze_startup_heap() is True
    frozen = gc.get_freeze_count()
    assert frozen > 1000  # the interpreter, pytest, FastAPI, the SDK
    assert freeze_startup_heap() is False  # already frozen: left alone
    assert gc.get_freeze_count() == frozen


@pytest.mark.usefixtures("unfrozen")
def test_a_process_that_froze_itself_is_left_alone() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    _ = [object() for _ in range(10)]
    assert freeze_startup_heap() is False
    assert gc.get_freeze_count() == frozen


@pytest.mark.usefixtures("unfrozen")
async def test_first_request_freezes_the_start_up_heap() -> None:
    app = _app()
    instrument_fastapi(app, tracer_provider=TracerProvider(), meter_provider=MeterProvider())
    assert gc.get_freeze_count() == 0  # instrumenting does not: the app may not be built yet
    assert await _get(app) == 200
    frozen = gc.get_freeze_count()
    assert frozen > 1000
    assert await _get(app) == 200
    assert gc.get_freeze_count() == frozen  # once


@pytest.mark.usefixtures("unfrozen")
async def test_gc_freeze_false_leaves_the_collector_alone() -> None:
    app = _app()
    instrument_fastapi(
        app, tracer_provider=TracerProvider(), meter_provider=MeterProvider(), gc_freeze=False
    )
    assert await _get(app) == 200
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("unfrozen")
async def test_configure_passes_the_gc_freeze_setting() -> None:
    import paca_otel

    app = _app()
    telemetry = paca_otel.configure(
        app=app, metrics_exporter="none", system_metrics=False, gc_freeze=False, set_global=False
    )
    try:
        assert await _get(app) == 200
        assert gc.get_freeze_count() == 0
    finally:
        telemetry.shutdown()


@pytest.mark.usefixtures("unfrozen")
async def test_full_collections_skip_the_frozen_heap() -> None:
    """What the freeze is for: a full collection walks only what came after it."""
    app = _app()
    instrument_fastapi(app, tracer_provider=TracerProvider(), meter_provider=MeterProvider())

    def full_collection_ms() -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            gc.collect()
            best = min(best, time.perf_counter() - start)
        return best * 1000

    before = full_collection_ms()
    assert await _get(app) == 200
    after = full_collection_ms()
    assert after < before / 3, (before, after)
