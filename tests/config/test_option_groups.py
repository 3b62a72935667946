"""The option groups: each setting is declared by exactly one group, all of them are read from
the environment by the one source, and the README table is grouped the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from paca_otel.config import PacaOtelSettings, settings_table, settings_table_by_group
from paca_otel.config._settings import GROUPS
from paca_otel.config._source import _PrefixedEnvSource

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_declared_by_exactly_one_group() -> None:
    """The groups partition the flat model: no field is missing or declared twice."""
    declared = [name for _title, group in GROUPS for name in group.model_fields]
    assert sorted(declared) == sorted(PacaOtelSettings.model_fields)
    assert len(declared) == len(set(declared))


def test_the_model_lists_fields_group_by_group() -> None:
    """Fields (and so ``paca-otel config`` and the README) come in the groups' order."""
    declared = [name for _title, group in GROUPS for name in group.model_fields]
    assert list(PacaOtelSettings.model_fields) == declared


def test_grouped_table_has_the_same_rows_as_the_flat_one() -> None:
    """settings_table_by_group() only adds headings to settings_table()."""
    grouped = [row for _title, rows in settings_table_by_group() for row in rows]
    assert grouped == settings_table()


def test_env_source_reads_every_inherited_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """The prefixed source sees the fields of every group, through the combined model."""
    for name in PacaOtelSettings.model_fields:
        monkeypatch.setenv(f"PACA_OTEL_{name.upper()}", "x")
    values = _PrefixedEnvSource(PacaOtelSettings)()
    assert sorted(values) == sorted(PacaOtelSettings.model_fields)


def test_readme_table_is_grouped_like_the_model() -> None:
    """Each group's heading row is in the README, followed by exactly its settings, in order."""
    lines = README.read_text(encoding="utf-8").splitlines()
    for title, rows in settings_table_by_group():
        start = lines.index(f"| **{title}** | | | |")
        shown = lines[start + 1 : start + 1 + len(rows)]
        assert [line.split(" | ")[0] for line in shown] == [f"| `{row[0]}`" for row in rows]
