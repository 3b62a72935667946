"""Alerting options: the rule evaluation cadence, the alerting store's bounds, the alert
state file, the notification channels and the rule file every worker loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import SecretStr, field_validator
from pydantic_settings import NoDecode

from paca_otel.config._source import OptionGroup, _comma_list, _env

EVALUATION_INTERVAL_RANGE = (1.0, 86_400.0)
"""Seconds allowed between rule evaluations: at least 1 s, at most a day."""


def evaluation_interval_problem(value: float) -> str | None:
    """What is wrong with an ``evaluation_interval`` value, or None: the one check of it.

    The settings and ``RuleEngine`` both call it, each naming the value its own way.
    """
    low, high = EVALUATION_INTERVAL_RANGE
    if low <= value <= high:  # NaN fails too
        return None
    return f"must be {low:g}..{high:g} seconds"


class AlertingOptions(OptionGroup):
    """Evaluation, the series store, alert state, channels and deployment-wide rule files."""

    # --- alerting -----------------------------------------------------------------------------
    evaluation_interval: float = _env(
        "evaluation_interval", default=15.0,
        description="seconds between rule evaluations (1..86400)",
    )  # fmt: skip
    max_series: int = _env(
        "max_series", default=10_000, ge=1,
        description="series the alerting store keeps; new ones beyond it are dropped and counted",
    )  # fmt: skip
    max_points: int = _env(
        "max_points", default=1_000, ge=2,
        description="points kept per series (a ring buffer; the oldest is evicted)",
    )  # fmt: skip
    max_window: float = _env(
        "max_window", default=3600.0, gt=0,
        description="seconds of history kept per series (the longest rule window)",
    )  # fmt: skip
    state_path: Path | None = _env(
        "state_path", default=None,
        description="SQLite file for alert state and the notification outbox (none: in memory)",
    )  # fmt: skip
    smtp_host: str | None = _env("smtp_host", default=None, description="SMTP server for email")
    smtp_port: int = _env("smtp_port", default=25, ge=1, le=65535, description="SMTP port")
    smtp_username: str | None = _env("smtp_username", default=None, description="SMTP user")
    smtp_password: SecretStr | None = _env(
        "smtp_password", default=None, description="SMTP password (never logged)"
    )
    smtp_from: str = _env(
        "smtp_from", default="paca-otel@localhost", description="sender address of alert email"
    )
    smtp_to: Annotated[tuple[str, ...], NoDecode] = _env(
        "smtp_to", default=(), description="recipients, comma-separated"
    )
    smtp_starttls: bool = _env("smtp_starttls", default=False, description="use STARTTLS")
    webhook_url: SecretStr | None = _env(
        "webhook_url", default=None, description="Alertmanager-v4-style JSON webhook"
    )
    slack_webhook_url: SecretStr | None = _env(
        "slack_webhook_url", default=None, description="Slack-style incoming webhook"
    )
    alertmanager_url: SecretStr | None = _env(
        "alertmanager_url", default=None, description="Prometheus Alertmanager base URL"
    )

    # --- deployments ----------------------------------------------------------------------------
    rules_file: Path | None = _env(
        "rules_file", default=None,
        description="YAML rule file loaded when monitoring starts (the same in every worker)",
    )  # fmt: skip
    multiprocess_dir: Path | None = _env(
        "multiprocess_dir", default=None,
        description=(
            "directory the workers of one service share (uvicorn --workers, gunicorn); without"
            " state_path, alert state, rules and silences live in alerting.sqlite3 there and"
            " one elected worker evaluates the rules"
        ),
    )  # fmt: skip

    # --- validators ---------------------------------------------------------------------------
    @field_validator("evaluation_interval")
    @classmethod
    def _evaluation_interval(cls, value: float) -> float:
        problem = evaluation_interval_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("smtp_to", mode="before")
    @classmethod
    def _address_list(cls, value: Any) -> Any:
        return _comma_list(value)
