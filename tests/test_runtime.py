"""The composition root, its alerting runtime and components: channels, independence, fork."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from paca_otel import AlertManager, ConfigError, MonitoringManager, Notification
from tests._fork import run_forked
from tests._wait import async_wait_until


class _Inbox:
    """A user channel (the NotificationChannel protocol) that keeps what it gets."""

    name = "inbox"
    resend_interval = None

    def __init__(self) -> None:
        self.received: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.received.append(notification)


async def test_stop_stops_the_loops_and_start_resumes_them() -> None:
    """After MonitoringManager.stop no thread evaluates; start_monitoring resumes with the rules."""
    monitor = MonitoringManager(metrics_exporter="none", system_metrics=False)
    await monitor.start_monitoring()
    alerts = AlertManager()
    await alerts.add_rule("never", "cpu_usage > 1000", "log", 60)
    engine = alerts.runtime.engine
    assert engine.scheduler.running
    await monitor.stop()
    assert not engine.scheduler.running
    await monitor.start_monitoring()
    assert engine.scheduler.running
    assert [r.name for r in alerts.rules] == ["never"]
    await monitor.stop()


async def test_user_channel_added_after_start_receives_notifications() -> None:
    """add_channel on a running runtime gives the new channel a delivery worker."""
    monitor = MonitoringManager(metrics_exporter="none", system_metrics=False)
    await monitor.start_monitoring()
    alerts = AlertManager()
    inbox = _Inbox()
    alerts.add_channel("inbox", inbox)
    await alerts.add_rule("deep_queue", "queue_depth > 10", "inbox", 60)
    from paca_otel import MetricsCollector

    MetricsCollector().set_gauge("queue_depth", 50)
    await alerts.evaluate()
    await async_wait_until(lambda: inbox.received, "the new channel's delivery", timeout=30)
    assert [n.events[0].rule for n in inbox.received] == ["deep_queue"]
    await monitor.stop()


@pytest.mark.parametrize("seconds", [0.5, 1.0, 15.0, 86_400.0, 86_401.0, float("nan")])
def test_settings_and_engine_take_the_same_evaluation_intervals(seconds: float) -> None:
    """evaluation_interval is checked once: settings and engine accept exactly the same values."""
    from paca_otel.alerting._engine import RuleEngine
    from paca_otel.config import load_settings
    from paca_otel.delivery._outbox import Outbox
    from paca_otel.pipeline._store import SeriesStore

    def accepted(build: Callable[[], object]) -> bool:
        if 1.0 <= seconds <= 86_400.0:
            build()
            return True
        with pytest.raises(ConfigError, match=r"evaluation_interval.*1\.\.86400"):
            build()
        return False

    by_settings = accepted(lambda: load_settings(evaluation_interval=seconds))
    outbox = Outbox(":memory:")
    try:
        by_engine = accepted(
            lambda: RuleEngine(SeriesStore(), outbox=outbox, evaluation_interval=seconds)
        )
    finally:
        outbox.close()
    assert by_settings == by_engine


def test_one_root_owns_store_pipeline_engine_and_delivery() -> None:
    """configure() builds on the default root: one store feeds the pipeline and the engine."""
    from paca_otel._runtime import default_runtime
    from paca_otel._setup import configure

    telemetry = configure(metrics_exporter="none", system_metrics=False)
    root = default_runtime()
    assert telemetry.runtime is root
    assert root.telemetry is telemetry
    alerting = root.attach(telemetry)
    assert telemetry.pipeline.store is root.store is alerting.engine.store
    assert alerting.engine.outbox is alerting.outbox
    assert alerting.channels is alerting.engine.channels
    telemetry.shutdown()
    assert root.telemetry is None
    assert default_runtime() is root  # the default root outlives its telemetry, rules kept


def test_independent_configure_has_its_own_store_engine_and_delivery() -> None:
    """configure(set_global=False) gets a root of its own; rules there stay out of the default."""
    from paca_otel._runtime import default_runtime
    from paca_otel._setup import configure, get_telemetry

    main = configure(metrics_exporter="none", system_metrics=False)
    other = configure(
        service_name="independent", metrics_exporter="none", system_metrics=False,
        set_global=False,
    )  # fmt: skip
    try:
        assert other.runtime is not main.runtime
        assert other.pipeline.store is not main.pipeline.store
        AlertManager(other.runtime).add_rule_sync("only_there", "up > 0", "log")
        assert [r.name for r in AlertManager(other.runtime).rules] == ["only_there"]
        assert AlertManager().rules == []
        assert other.runtime.alerting().engine is not default_runtime().alerting().engine
        assert get_telemetry() is main
    finally:
        other.shutdown()
    assert not main.is_shutdown
    assert other.runtime.telemetry is None
    main.shutdown()


async def test_rules_added_before_configure_run_on_the_configured_state_file(
    tmp_path: Path,
) -> None:
    """An AlertManager used before anything is configured hands its rules to the live settings."""
    from paca_otel._runtime import default_runtime

    alerts = AlertManager()
    alerts.add_rule_sync("early", "up > 0", "send_email", 60)  # no smtp yet: logged stand-in
    silence = alerts.silence({"alertname": "early"}, duration=60)
    state = tmp_path / "alerts.sqlite3"
    monitor = MonitoringManager(
        metrics_exporter="none", system_metrics=False, state_path=state, evaluation_interval=1
    )
    await monitor.start_monitoring()
    try:
        runtime = default_runtime().alerting()
        assert runtime.settings.state_path == state
        assert [r.name for r in AlertManager().rules] == ["early"]
        assert [s.id for s in runtime.engine.silences.all()] == [silence]
        assert runtime.unconfigured_channels() == ["email"]
        default_runtime().store.append("up", (), 1.0, runtime.clock())
        await alerts.evaluate()
        assert [a.rule for a in alerts.get_active_alerts()] == ["early"]
    finally:
        await monitor.stop()
    assert state.exists()


async def test_routes_read_the_root_of_the_app_they_serve() -> None:
    """An app configured with set_global=False serves its own root's series, not the default's."""
    import httpx
    from fastapi import FastAPI

    from paca_otel._runtime import default_runtime
    from paca_otel._setup import configure
    from paca_otel.security import generate_token, hash_token
    from paca_otel.web.api import monitoring_router

    token = generate_token()
    entries = [f"admin:admin:{hash_token(token)}"]
    app = FastAPI()
    app.include_router(monitoring_router(), prefix="/monitoring")
    telemetry = configure(
        app=app, metrics_exporter="none", system_metrics=False, api_tokens=entries,
        set_global=False,
    )  # fmt: skip
    try:
        telemetry.runtime.store.append("only_in_app_root", (), 1.0, 1.0)
        default_runtime().store.append("only_in_default", (), 1.0, 1.0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}"},
        ) as http:
            reply = await http.get("/monitoring/api/v1/metrics/names")
        assert reply.status_code == 200, reply.text
        assert reply.json()["names"] == ["only_in_app_root"]
    finally:
        telemetry.shutdown()
    assert not hasattr(app.state, "paca_otel_runtime")


def test_forked_child_root_takes_over_rules_added_before_configure() -> None:
    """Without telemetry, a child's default root builds its own alerting with the parent's rules.

    Rules and silences an AlertManager added before anything was configured (gunicorn
    ``--preload`` imports such a module in the master) reach the worker through the root's
    snapshot; the parent's root is untouched and its lock is free again.
    """
    from paca_otel._runtime import default_runtime

    root = default_runtime()
    alerts = AlertManager()
    alerts.add_rule_sync("before_fork", "queue_depth > 10", "log", 60)
    silence = alerts.silence({"alertname": "before_fork"}, duration=600)
    parent_alerting, parent_store = root.alerting(), root.store

    def child(report_fd: int, go_fd: int) -> dict[str, object]:
        mine = default_runtime()
        alerting = mine.alerting()
        return {
            "same_root": mine is root,
            "new_alerting": alerting is not parent_alerting,
            "new_store": mine.store is not parent_store,
            "engine_reads_root_store": alerting.engine.store is mine.store,
            "rules": sorted(alerting.engine.rules),
            "silences": [s.id for s in alerting.engine.silences.all()],
        }

    report, _ = run_forked(child)
    assert report == {
        "same_root": True,
        "new_alerting": True,
        "new_store": True,
        "engine_reads_root_store": True,
        "rules": ["before_fork"],
        "silences": [silence],
    }
    assert root.alerting() is parent_alerting  # the parent keeps its own, lock released
    assert root.store is parent_store


def test_forked_child_independent_root_restarts_its_alerting() -> None:
    """An independent root's alerting is handed over too, and runs on the rebuilt pipeline."""
    import threading

    from paca_otel._setup import configure

    mine = configure(
        service_name="independent", metrics_exporter="none", system_metrics=False,
        set_global=False,
    )  # fmt: skip
    try:
        AlertManager(mine.runtime).add_rule_sync("only_there", "up > 0", "log")
        parent_alerting = mine.runtime.attach(mine)

        def child(report_fd: int, go_fd: int) -> dict[str, object]:
            alerting = mine.runtime.alerting()
            return {
                "new_alerting": alerting is not parent_alerting,
                "rules": sorted(alerting.engine.rules),
                "one_store": mine.pipeline.store is mine.runtime.store is alerting.engine.store,
                "evaluating": "paca-otel-rules" in {t.name for t in threading.enumerate()},
            }

        report, _ = run_forked(child)
        assert report == {
            "new_alerting": True,
            "rules": ["only_there"],
            "one_store": True,
            "evaluating": True,
        }
    finally:
        mine.shutdown()


class _Part:
    """A component a higher layer would keep on a root: counts closes and forks."""

    def __init__(self) -> None:
        self.closed = 0
        self.forked = 0

    def close(self) -> None:
        self.closed += 1

    def after_fork_in_child(self) -> None:
        self.forked += 1


def test_component_is_built_once_per_root_and_closed_with_it() -> None:
    """component() builds a kind once per root; close() closes it and a later call rebuilds."""
    from paca_otel._runtime import Runtime

    root, other = Runtime(), Runtime()
    built: list[_Part] = []

    def build() -> _Part:
        built.append(_Part())
        return built[-1]

    part = root.component(_Part, build)
    assert root.component(_Part, build) is part
    assert root.component(_Part) is part  # the kind is the key, the builder only a default
    assert other.component(_Part) is not part
    assert len(built) == 1
    root.close()
    assert part.closed == 1
    assert root.component(_Part) is not part
    root.close()
    assert part.closed == 1  # forgotten: closed once
    other.close()


def test_component_of_an_independent_root_closes_with_its_telemetry() -> None:
    """An independent root closes with its telemetry, and its components with it."""
    from paca_otel._setup import configure

    telemetry = configure(metrics_exporter="none", system_metrics=False, set_global=False)
    part = telemetry.runtime.component(_Part)
    telemetry.shutdown()
    assert part.closed == 1


def test_component_built_by_the_wrong_type_is_refused() -> None:
    """A builder returning another type fails at once instead of handing out a mistyped part."""
    from paca_otel._runtime import Runtime

    with pytest.raises(TypeError, match="_Part was built as str"):
        Runtime().component(_Part, lambda: "not a part")  # type: ignore[arg-type, return-value]


def test_forked_child_keeps_the_roots_components_and_tells_them() -> None:
    """A component survives fork() like module state did, and hears after_fork_in_child."""
    from paca_otel._runtime import default_runtime

    part = default_runtime().component(_Part)

    def child(report_fd: int, go_fd: int) -> dict[str, object]:
        mine = default_runtime().component(_Part)
        return {"same": mine is part, "forked": mine.forked, "closed": mine.closed}

    report, _ = run_forked(child)
    assert report == {"same": True, "forked": 1, "closed": 0}
    assert part.forked == 0  # the parent's is untouched
