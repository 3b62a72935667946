"""Signal options: the log handlers, the system gauges, metric label limits and the
shutdown budget: what the process records about itself, apart from where it is exported.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from paca_otel.config._source import OptionGroup, _env


class SignalOptions(OptionGroup):
    """Logs, system gauges, label values and shutdown: what is recorded in process."""

    # --- signals ------------------------------------------------------------------------------
    logs: bool = _env(
        "logs", default=False,
        description="install the JSON log handler and the OTel logging bridge on the root logger",
    )  # fmt: skip
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = _env(
        "log_level", default="INFO", description="level of the installed log handlers"
    )
    system_metrics: bool = _env(
        "system_metrics", default=True, description="psutil system and process gauges"
    )
    system_metrics_per_cpu: bool = _env(
        "system_metrics_per_cpu", default=False, description="opt-in per-core CPU utilisation"
    )
    system_metrics_connections: bool = _env(
        "system_metrics_connections", default=False,
        description="opt-in connection counts (expensive: ~10 ms per collection)",
    )  # fmt: skip
    system_metrics_disk_exclude: str = _env(
        "system_metrics_disk_exclude",
        default=r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$",
        description="regex of block devices not reported (node_exporter's default; '' = all)",
    )  # fmt: skip
    gc_freeze: bool = _env(
        "gc_freeze", default=True,
        description="at the first served request, gc.freeze() the start-up heap (unless "
        "something froze it already): full GC pauses of a FastAPI app drop from 25-60 ms to a "
        "few ms",
    )  # fmt: skip
    shutdown_timeout: float = _env(
        "shutdown_timeout", default=5.0, gt=0,
        description="seconds `shutdown()` may take to flush before giving up",
    )  # fmt: skip

    # --- metric labels (H4a, issue 6 section 5: label values) -------------------------------
    label_value_max_length: int = _env(
        "label_value_max_length", default=2048, ge=1,
        description="characters kept of a metric label value; longer ones are cut "
        "and counted in paca_otel.dropped{reason=label_value_truncated}",
    )  # fmt: skip

    # --- validators ---------------------------------------------------------------------------
    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("system_metrics_disk_exclude")
    @classmethod
    def _regex(cls, value: str) -> str:
        import re

        try:
            re.compile(value)
        except re.error as exc:
            msg = f"not a valid regular expression: {exc}"
            raise ValueError(msg) from None
        return value
