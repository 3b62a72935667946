"""Throughput and p99 latency of a real uvicorn worker, instrumented vs uninstrumented.

Each variant runs as its own uvicorn server (one worker, 127.0.0.1, a free port) in a child
process; load comes from another process: Debian's ``wrk`` (``apt-get install wrk``) with a
fixed number of connections for a fixed time, or, without it, a bounded asyncio/httpx load
generator in a child process. Runs alternate between the variants (repetitions interleaved)
and the median run of each is compared. Goals for the paca-otel full stack: throughput
>= 0.6x and p99 <= 2x the uninstrumented worker.

Variants: ``uninstrumented`` (FastAPI's built-in telemetry off), ``paca`` (the full stack:
``paca_otel.configure(...)`` with spans to an in-process no-op exporter, then
``instrument_fastapi`` on its providers), ``paca-middleware`` (``instrument_fastapi`` alone on
SDK providers) and ``contrib`` (``FastAPIInstrumentor`` on SDK
providers), for reference.

Run: ``python benchmarks/bench_uvicorn.py [--seconds 8] [--connections 16] [--runs 3]``;
The paca variants freeze the start-up heap out of the cyclic GC at their first request
(``gc_freeze``, on by default: without it their p99 is mostly 25-60 ms full-collection pauses,
printed at the end); ``BENCH_GC_FREEZE=1`` calls ``gc.freeze()`` in every server after
start-up, the others included.
Servers are stopped by their PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("uninstrumented", "paca", "paca-middleware", "contrib")
PATH = "/items/42?q=1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(variant: str, port: int) -> None:
    """Child process: build the variant's app and run one uvicorn worker on 127.0.0.1."""
    import uvicorn

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_fastapi import NullExporter, make_app, sdk_providers

    app = make_app()
    if variant == "paca":
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        import paca_otel

        telemetry = paca_otel.configure(
            service_name="bench",
            metrics_exporter="prometheus",
            prometheus_port=free_port(),
            traces_exporter="none",
            logs_exporter="none",
            span_processors=[BatchSpanProcessor(NullExporter())],
        )
        paca_otel.instrument_fastapi(
            app, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
    elif variant == "paca-middleware":
        import paca_otel

        tracer_provider, meter_provider = sdk_providers()
        paca_otel.instrument_fastapi(
            app, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    elif variant == "contrib":
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        tracer_provider, meter_provider = sdk_providers()
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    pauses = _watch_gc()

    @app.get("/gc-stats")
    async def gc_stats() -> dict[str, float]:
        return pauses

    if os.environ.get("BENCH_GC_FREEZE") == "1":
        import gc

        gc.freeze()  # start-up objects out of the collector's reach: short full collections
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _watch_gc() -> dict[str, float]:
    """Count collections and their pauses per generation (what shows up as p99)."""
    import gc

    pauses: dict[str, float] = {}
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        pause = time.perf_counter() - started[0]
        gen = f"gen{info['generation']}"
        pauses[f"{gen}_count"] = pauses.get(f"{gen}_count", 0) + 1
        pauses[f"{gen}_max_ms"] = max(pauses.get(f"{gen}_max_ms", 0.0), pause * 1e3)
        pauses[f"{gen}_total_ms"] = pauses.get(f"{gen}_total_ms", 0.0) + pause * 1e3

    gc.callbacks.append(callback)
    return pauses


def start_server(variant: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SEMCONV_STABILITY_OPT_IN": "http"}
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", variant, str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{variant} server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, url
        time.sleep(0.1)
    process.kill()
    sys.exit(f"{variant} server did not start")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _seconds(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def load_wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    """One wrk run: requests/s and p99 latency (s)."""
    wrk = shutil.which("wrk")
    assert wrk is not None
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url + PATH],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]  # wrk always prints it
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    assert p99 is not None, out
    assert p50 is not None, out
    return {"rps": rps, "p50": _seconds(*p50.groups()), "p99": _seconds(*p99.groups())}


async def _python_load(url: str, seconds: int, connections: int) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                await client.get(PATH)
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99)],
    }


def load(url: str, seconds: int, connections: int) -> dict[str, float]:
    """Load from a second process: wrk if installed, else the Python generator in a child."""
    if shutil.which("wrk"):
        return load_wrk(url, seconds, connections)
    out = subprocess.run(
        [sys.executable, __file__, "--load", url, str(seconds), str(connections)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", nargs=2, metavar=("VARIANT", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=3, metavar=("URL", "S", "C"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    if args.load:
        url, seconds, connections = args.load
        print(json.dumps(asyncio.run(_python_load(url, int(seconds), int(connections)))))
        return
    generator = "wrk" if shutil.which("wrk") else "python/httpx"
    print(
        f"uvicorn, 1 worker; load: {generator}, {args.connections} connections, "
        f"{args.seconds}s per run, {args.runs} interleaved runs per variant"
    )
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    gc_stats: dict[str, dict[str, float]] = {}
    try:
        for variant in VARIANTS:
            servers[variant] = start_server(variant)
            load(servers[variant][1], 2, args.connections)  # warm-up
        for _ in range(args.runs):
            for variant in VARIANTS:
                results[variant].append(load(servers[variant][1], args.seconds, args.connections))
        for variant, (_, url) in servers.items():
            with urllib.request.urlopen(f"{url}/gc-stats", timeout=10) as response:
                gc_stats[variant] = json.loads(response.read())
    finally:
        for process, _ in servers.values():
            stop_server(process)

    summary: dict[str, dict[str, Any]] = {}
    for variant, runs in results.items():
        summary[variant] = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
    base = summary["uninstrumented"]
    print(f"\n{'variant':16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x rps':>7} {'x p99':>7}")
    for variant, s in summary.items():
        print(
            f"{variant:16} {s['rps']:9.0f} {s['p50'] * 1e3:8.2f} {s['p99'] * 1e3:8.2f} "
            f"{s['rps'] / base['rps']:7.2f} {s['p99'] / base['p99']:7.2f}"
        )
    print("\nGC in the server over the whole run (count, longest pause, total), per generation:")
    for variant, pauses in gc_stats.items():
        cells = [
            f"gen{g} {int(pauses.get(f'gen{g}_count', 0))}x "
            f"max {pauses.get(f'gen{g}_max_ms', 0):.1f} ms "
            f"total {pauses.get(f'gen{g}_total_ms', 0):.0f} ms"
            for g in range(3)
        ]
        print(f"{variant:16} " + "; ".join(cells))
    paca = summary["paca"]
    rps_ratio, p99_ratio = paca["rps"] / base["rps"], paca["p99"] / base["p99"]
    print(
        f"\npaca full stack: throughput {rps_ratio:.2f}x (goal >= 0.6x: "
        f"{'meets' if rps_ratio >= 0.6 else 'MISSES'}), p99 {p99_ratio:.2f}x (goal <= 2x: "
        f"{'meets' if p99_ratio <= 2 else 'MISSES'})"
    )


if __name__ == "__main__":
    main()
