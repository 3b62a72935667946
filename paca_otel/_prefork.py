"""Pre-fork servers: a telemetry handle configured before ``fork()`` is rebuilt in the child.

gunicorn ``--preload`` (and any server that imports the app, then forks its workers) runs
``configure()`` once, in the parent. Each child inherits a copy of the handle, and most of it
does not work there:

- threads: only the forking thread survives, so the RED drainer, the OTLP metric push, the
  history maintenance, the rule engine, the dispatcher and the report scheduler are gone;
- exporters: their HTTP connection pools and gRPC channels are shared with the parent, and a
  connection two processes write to is corrupt for both;
- the resource still names the parent (``process.pid``, ``service.instance.id``), so N
  workers would export as one instance and overwrite each other's series in the backend;
- the aggregations hold what the parent recorded before the fork: summed over N workers it
  would count N times;
- SQLite connections must not cross a fork: :mod:`paca_otel.storage` closes them just
  before it (the parent reconnects on its next statement), so the child inherits none.

**Decision: rebuild the handle in place, from the same settings, in an**
``os.register_at_fork(after_in_child=...)`` **hook** (``Telemetry.rebuild_after_fork``, called by
:mod:`paca_otel._setup`). *In place*: the :class:`~paca_otel._setup.Telemetry` object that user
code and ``MonitoringManager`` hold stays the same; its providers, pipeline, exporters, threads
and Prometheus registry are new. The middleware is installed again on every instrumented app
with the new providers, and the ``/metrics`` route reads the handle's current registry on each
scrape, so nothing the app holds goes stale. *New providers* rather than the inherited ones with
a patched resource: the SDK has no public way to change a provider's resource, and new
providers also leave the parent's aggregations and connections behind. The SDK's own fork
handling still runs on the inherited providers (their batch processors and periodic readers
restart a thread, their resource gets a new ``service.instance.id``); they are left alone,
neither used nor shut down, since a shutdown would flush through the parent's connections.
The inherited handle's shutdown hooks are dropped (they belonged to the parent's alerting
runtime). Before the rebuild, the handle's root (:class:`paca_otel._runtime.Runtime`) leaves
the parent's series store and alerting runtime behind; the handle's fork hooks run once it is
rebuilt, and the root registers one that starts a fresh alerting runtime (own database
connection, own threads) which takes over the rules, channels and silences of the parent's,
from a snapshot the root takes just before the fork (the parent's locks may be held by
threads the child does not have; see :mod:`paca_otel._handover`).

**Why in the hook, not lazily on first use:** spans a worker makes before any paca-otel call
must already reach the new providers, and there is no single first use to wait for (the OTel
API's globals are read by user code directly). The hook runs in the child's only thread,
before the server's worker code, which is where the SDK's own after-fork hooks restart their
worker threads too; the locks the rebuild takes are new ones (the set-up lock is replaced
first, the storage and root locks are held across the fork by their hooks). It costs a
child 17-22 ms (median; 45 ms at most) against 3 ms for a bare fork
(``benchmarks/bench_fork.py``). Python also runs at-fork hooks in ``subprocess`` children that
use ``preexec_fn``; the rebuild there is wasted work before ``exec``, never harm.

**Limits.** Tracers, meters and instruments that code took directly from the parent's SDK
providers (after ``configure()``) keep recording into those: in the child their data is not
exported. Instruments made through the OTel API before ``configure()`` (proxies) and
:class:`~paca_otel.MetricsCollector` follow the new providers. Extra metric readers passed to
``configure()`` stay with the parent's provider (a reader belongs to one provider); extra span
processors move. The standalone Prometheus port (``configure()`` without an app) stays with
the process that bound it, which keeps serving it: a child takes it over only if the parent
has let it go (a daemonising fork). With ``multiprocess_dir`` set, whichever process answers a
scrape shows every worker. User channels the child's runtime takes over are the parent's
objects (a client they keep is the parent's too). And, as for any fork of a process with
threads: a module that one of the parent's threads was half-way through importing at that
instant stays locked in the child (CPython keeps one import lock per module), so paca-otel's
threads import what they need before they start.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from prometheus_client import CollectorRegistry

from paca_otel.config import PacaOtelSettings

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from paca_otel.signals._system_source import SystemSource

logger = logging.getLogger("paca_otel")

#: Fields of the handle the rebuild keeps rather than taking from the new build.
KEPT = frozenset({"settings", "_apps", "_origin", "_fork_hooks"})


class Origin(NamedTuple):
    """What ``configure()`` was given besides settings, needed to build the handle again."""

    span_processors: tuple[SpanProcessor, ...] = ()
    system_source: SystemSource | None = None
    set_global: bool = True


def reinstrument(
    apps: Iterable[Any],
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    *,
    gc_freeze: bool,
) -> None:
    """Point the middleware of every instrumented app at the handle's new providers."""
    from paca_otel.signals.http_server import instrument_fastapi

    for app in apps:
        instrument_fastapi(
            app, tracer_provider=tracer_provider, meter_provider=meter_provider, gc_freeze=gc_freeze
        )


def take_over_port(
    settings: PacaOtelSettings,
    registry: CollectorRegistry | None,
    inherited: tuple[WSGIServer, threading.Thread],
) -> tuple[WSGIServer, threading.Thread] | None:
    """Serve the standalone Prometheus port here only if the parent no longer holds it."""
    from paca_otel.telemetry._scrape import _serve_prometheus

    server, _thread = inherited
    server.server_close()  # this process's copy of the listening socket; the parent's stays open
    if registry is None:
        return None
    try:
        return _serve_prometheus(settings, registry)
    except OSError:
        logger.info(
            "paca-otel: pid %d leaves the Prometheus port %s:%s to its parent (pid %d), which "
            "keeps serving it; with multiprocess_dir set its scrapes show every worker",
            os.getpid(),
            settings.prometheus_host,
            settings.prometheus_port,
            os.getppid(),
        )
        return None
