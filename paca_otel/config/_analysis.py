"""Analysis options: the embedded metric history and the scheduled analysis report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import field_validator
from pydantic_settings import NoDecode

from paca_otel.config._source import OptionGroup, _comma_list, _env


class AnalysisOptions(OptionGroup):
    """History recording (path, interval, tiers, encryption) and scheduled reports."""

    # --- history (H8: paca_otel/analysis/history.py; checked by HistoryStore.from_settings) ---
    history_enabled: bool = _env(
        "history_enabled", default=False,
        description="record every collection in the embedded metric history (SQLite)",
    )  # fmt: skip
    history_path: Path | None = _env(
        "history_path", default=None,
        description=(
            "history file (none: history.sqlite3 in multiprocess_dir if set, else"
            " $XDG_DATA_HOME/paca-otel/history.sqlite3)"
        ),
    )  # fmt: skip
    history_interval: float = _env(
        "history_interval", default=10.0, gt=0,
        description="seconds between the collections recorded in the history (raw resolution)",
    )  # fmt: skip
    history_tiers: str = _env(
        "history_tiers", default="raw:24h,1m:7d,1h:90d",
        description="history resolution:retention tiers, raw first (keep min/max/sum/count)",
    )  # fmt: skip
    history_sensitive: str | None = _env(
        "history_sensitive", default=None,
        description="RE2 pattern of metric names whose history is encrypted (needs storage_key)",
    )  # fmt: skip

    # --- scheduled reports (analysis) ---------------------------------------------------------
    report_every: float | None = _env(
        "report_every", default=None, gt=0,
        description="send the analysis report every N seconds (86400: daily; needs history)",
    )  # fmt: skip
    report_channels: Annotated[tuple[str, ...], NoDecode] = _env(
        "report_channels", default=("log",),
        description="channels scheduled reports go to, comma-separated (not alertmanager)",
    )  # fmt: skip

    # --- validators ---------------------------------------------------------------------------
    @field_validator("report_channels", mode="before")
    @classmethod
    def _channel_list(cls, value: Any) -> Any:
        return _comma_list(value)
