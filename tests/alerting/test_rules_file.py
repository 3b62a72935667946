"""A rules file owns its rules: one deleted from the file goes at the next load, others stay.

Each :class:`AlertingRuntime` here stands for one worker's (or one start's) alerting over a
shared state file; a new runtime on the same file is a restart.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from paca_otel._alerting_runtime import AlertingRuntime, rules_file_origin
from paca_otel.config import load_settings
from paca_otel.errors import RuleError
from paca_otel.pipeline._store import SeriesStore
from paca_otel.storage import open_database
from tests.alerting.test_engine import Clock, make_rule


def rules_yaml(*names: str) -> str:
    rules = "".join(f"  - alert: {name}\n    expr: cpu_usage > 99\n" for name in names)
    return f"groups:\n- name: g\n  rules:\n{rules}"


class Service:
    """A state file, a rules file and the runtimes started on them (closed afterwards)."""

    def __init__(self, tmp_path: Path) -> None:
        self.state = tmp_path / "state.sqlite3"
        self.rules = tmp_path / "rules.yaml"
        self.clock = Clock()
        self.runtimes: list[AlertingRuntime] = []

    def start(self, *, load: bool = True, state: bool = True) -> AlertingRuntime:
        """One worker's alerting, as it starts: built on the state file, the rules file loaded."""
        settings = load_settings(state_path=self.state if state else None, evaluation_interval=15)
        runtime = AlertingRuntime(settings, SeriesStore(), clock=self.clock)
        self.runtimes.append(runtime)
        if load:
            runtime.load_rules_file(self.rules)
        return runtime

    def settle(self) -> None:
        """Wait until every queued rule write is in the file."""
        db = open_database(self.state)  # the process's one connection, the runtimes' too
        try:
            assert db.flush(10)
        finally:
            db.close()

    def version(self) -> int:
        """The ``rules`` change counter: how often a write changed the stored rules."""
        with sqlite3.connect(self.state) as conn:
            row = conn.execute("SELECT version FROM changes WHERE topic = 'rules'").fetchone()
        return int(row[0]) if row else 0


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    made = Service(tmp_path)
    yield made
    for runtime in made.runtimes:
        runtime.close()


def test_a_rule_deleted_from_the_file_is_gone_after_a_restart(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    """The stored rule a file no longer has is removed at the next load, with one info line."""
    service.rules.write_text(rules_yaml("Kept", "Dropped"))
    service.start()
    service.settle()
    service.rules.write_text(rules_yaml("Kept"))
    restarted = service.start(load=False)
    assert sorted(restarted.engine.rules) == ["Dropped", "Kept"]  # as stored
    with caplog.at_level(logging.INFO, logger="paca_otel.alerts"):
        restarted.load_rules_file(service.rules)
    assert list(restarted.engine.rules) == ["Kept"]
    (line,) = [r.getMessage() for r in caplog.records if "no longer in" in r.getMessage()]
    assert line.endswith(f"no longer in {service.rules}: Dropped")
    service.settle()
    assert list(service.start(load=False).engine.rules) == ["Kept"]  # and from the file


def test_a_rule_added_through_the_api_survives_a_file_load(service: Service) -> None:
    """Rules from code or the API (no origin) are never removed by loading a file."""
    service.rules.write_text(rules_yaml("FromFile"))
    service.start().engine.add_rule(make_rule(name="FromApi"))
    service.settle()
    service.rules.write_text(rules_yaml())
    assert list(service.start().engine.rules) == ["FromApi"]


def test_a_file_rule_edited_through_the_api_is_the_apis_and_stays(service: Service) -> None:
    """Last write wins: a file rule the API replaced is no longer the file's to remove."""
    service.rules.write_text(rules_yaml("Edited", "Plain"))
    first = service.start()
    first.engine.add_rule(make_rule(name="Edited", cooldown=60))  # what PUT /rules/Edited does
    assert first.engine.origins == {"Plain": rules_file_origin(service.rules)}
    service.settle()
    service.rules.write_text(rules_yaml())
    restarted = service.start()
    assert list(restarted.engine.rules) == ["Edited"]
    assert restarted.engine.rules["Edited"].cooldown == 60


def test_code_adding_a_file_rule_again_takes_it_from_the_file(service: Service) -> None:
    """The same name added from code after the file: code owns it, the file cannot remove it."""
    service.rules.write_text(rules_yaml("Shared"))
    service.start().engine.add_rule(make_rule(name="Shared"))
    service.settle()
    service.rules.write_text(rules_yaml())
    assert list(service.start().engine.rules) == ["Shared"]


def test_a_bad_file_removes_nothing(service: Service) -> None:
    """A file that fails to validate changes nothing, its dropped rules included."""
    service.rules.write_text(rules_yaml("One", "Two"))
    runtime = service.start()
    service.rules.write_text(rules_yaml("One") + "  - alert: Broken\n    expr: cpu_usage >\n")
    with pytest.raises(RuleError, match=r"rules\.yaml"):
        runtime.load_rules_file(service.rules)
    assert sorted(runtime.engine.rules) == ["One", "Two"]


def test_another_file_keeps_its_rules(service: Service, tmp_path: Path) -> None:
    """A file owns only its own rules: loading one file leaves another's alone."""
    service.rules.write_text(rules_yaml("Mine"))
    runtime = service.start()
    other = tmp_path / "other.yaml"
    other.write_text(rules_yaml("Theirs"))
    runtime.load_rules_file(other)
    other.write_text(rules_yaml())
    runtime.load_rules_file(other)
    assert list(runtime.engine.rules) == ["Mine"]


def test_workers_loading_the_same_file_converge_without_churn(service: Service) -> None:
    """Two workers on one state file remove a dropped rule once, then write nothing more."""
    service.rules.write_text(rules_yaml("Kept", "Dropped"))
    service.start()
    service.settle()
    before = service.version()
    service.rules.write_text(rules_yaml("Kept"))
    workers = [service.start(load=False) for _ in range(2)]
    for worker in workers:
        worker.load_rules_file(service.rules)
    service.settle()
    assert service.version() == before + 1  # one removal; re-storing "Kept" changed nothing
    for _ in range(3):
        service.clock.t += 15
        for worker in workers:
            worker.evaluate_now()
        service.settle()
    assert service.version() == before + 1
    assert [list(w.engine.rules) for w in workers] == [["Kept"], ["Kept"]]
    service.start()  # another restart with the same file
    service.settle()
    assert service.version() == before + 1


def test_a_successor_runtime_keeps_the_files_ownership(service: Service) -> None:
    """A handover (a forked child, a rebuilt runtime) carries origins: the file still prunes."""
    service.rules.write_text(rules_yaml("Kept", "Dropped"))
    parent = service.start()
    child = service.start(load=False, state=False)
    child.take_over(parent.handover())
    service.rules.write_text(rules_yaml("Kept"))
    child.load_rules_file(service.rules)
    assert list(child.engine.rules) == ["Kept"]


def test_in_memory_a_reload_of_the_file_removes_what_it_dropped(service: Service) -> None:
    """Without a state file the same holds within one process (add_rules_from_file twice)."""
    service.rules.write_text(rules_yaml("Kept", "Dropped"))
    runtime = service.start(state=False)
    runtime.engine.add_rule(make_rule())
    service.rules.write_text(rules_yaml("Kept"))
    runtime.load_rules_file(service.rules)
    assert sorted(runtime.engine.rules) == ["HighMem", "Kept"]
