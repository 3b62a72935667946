"""The combined settings model, its loader and the README table.

:class:`PacaOtelSettings` stays one flat model (every field given to ``configure(...)`` by
name) built by inheritance from the option groups, one private module each; fields are
collected from the last base first, so the groups are listed in reverse of the README's order.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from paca_otel.config._alerting import AlertingOptions
from paca_otel.config._analysis import AnalysisOptions
from paca_otel.config._privacy import PrivacyOptions
from paca_otel.config._signals import SignalOptions
from paca_otel.config._source import OptionGroup, _PrefixedEnvSource
from paca_otel.config._storage import StorageOptions
from paca_otel.config._telemetry import TelemetryOptions
from paca_otel.config._web import WebOptions
from paca_otel.errors import ConfigError

#: Settings whose values are credentials: SecretStr in the model, never shown in errors.
SECRET_FIELDS = frozenset(
    {
        "otlp_headers",
        "otlp_traces_headers",
        "otlp_metrics_headers",
        "otlp_logs_headers",
        "smtp_password",
        "webhook_url",
        "slack_webhook_url",
        "alertmanager_url",
        "api_tokens",  # hashes only, but a raw token pasted by mistake must not be echoed
    }
)


def env_names(field_name: str) -> tuple[str, ...]:
    """The environment variables a field reads, highest precedence first."""
    field = PacaOtelSettings.model_fields.get(field_name)
    alias = field.validation_alias if field is not None else None
    choices = getattr(alias, "choices", ())
    return tuple(c for c in choices if isinstance(c, str) and c.isupper())


def env_source(field_name: str) -> str | None:
    """The variable that actually supplies ``field_name`` now (for error messages), if any."""
    for name in env_names(field_name):
        if name in os.environ:
            return name
    return None


class PacaOtelSettings(  # fields in README order: the last base's come first
    WebOptions,
    AnalysisOptions,
    PrivacyOptions,
    StorageOptions,
    AlertingOptions,
    SignalOptions,
    TelemetryOptions,
    BaseSettings,
):
    """The effective configuration of paca-otel (see the README table for every field)."""

    model_config = SettingsConfigDict(
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
        defer_build=False,  # the groups defer theirs; this one is the schema that validates
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the prefixed environment (see :class:`_PrefixedEnvSource`)."""
        return (
            init_settings,
            _PrefixedEnvSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    def masked(self) -> dict[str, Any]:
        """The settings as plain data with every secret replaced by ``'***'``."""
        data = self.model_dump(mode="json")
        for key in ("otlp_headers", "otlp_traces_headers", "otlp_metrics_headers",
                    "otlp_logs_headers"):  # fmt: skip
            if data.get(key):
                data[key] = dict.fromkeys(data[key], "***")
        if data.get("smtp_password"):
            data["smtp_password"] = "***"
        for key in ("webhook_url", "slack_webhook_url", "alertmanager_url"):
            secret: SecretStr | None = getattr(self, key)
            if secret is not None:
                data[key] = mask_url(secret.get_secret_value(), keep_path=key == "alertmanager_url")
        for key, value in data.items():
            if key.endswith(("_url", "endpoint")) and isinstance(value, str):
                data[key] = _mask_userinfo(value)
        return data


def mask_url(url: str, *, keep_path: bool = False) -> str:
    """A URL safe to show: no userinfo, no query, and (unless ``keep_path``) no path.

    Webhook URLs carry their token in the path (Slack) or the query; Alertmanager's path is
    just a prefix, so it may stay.
    """
    parts = urllib.parse.urlsplit(_mask_userinfo(url))
    path = parts.path if keep_path else ("/***" if parts.path.strip("/") else parts.path)
    query = "***" if parts.query else ""
    return urllib.parse.urlunsplit(parts._replace(path=path, query=query, fragment=""))


def _mask_userinfo(url: str) -> str:
    """``scheme://user:secret@host/...`` -> ``scheme://***@host/...`` (credentials in a URL)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


def load_settings(**overrides: Any) -> PacaOtelSettings:
    """Build settings from arguments and the environment, turning errors into ConfigError.

    ``None`` arguments mean "not given" so ``configure(service_name=None)`` keeps the env value.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return PacaOtelSettings(**given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if not loc:
                problems.append(message)
                continue
            field_name = str(err["loc"][0])
            value = "***" if field_name in SECRET_FIELDS else repr(err.get("input"))
            problems.append(f"{_setting_label(field_name, given)}: {message} (got {value})")
        msg = "invalid paca-otel configuration: " + "; ".join(problems)
        raise ConfigError(msg) from None


def _setting_label(field_name: str, given: dict[str, Any]) -> str:
    """How the user set ``field_name``: the argument's name, or the variable actually set."""
    if field_name in given:
        return field_name
    variable = env_source(field_name)
    return f"{field_name} (from {variable})" if variable else field_name


#: The option groups in README order: (heading, the class that declares the group's fields).
GROUPS: tuple[tuple[str, type[OptionGroup]], ...] = (
    ("Telemetry: resource, exporters, OTLP, sampling", TelemetryOptions),
    ("Signals: logs, system gauges, labels, shutdown", SignalOptions),
    ("Alerting: evaluation, series store, state, channels, rule file", AlertingOptions),
    ("Storage", StorageOptions),
    ("Privacy: scrubbing", PrivacyOptions),
    ("Analysis: history, scheduled reports", AnalysisOptions),
    ("Web: monitoring API and dashboard access", WebOptions),
)


def settings_table() -> list[tuple[str, str, str, str]]:
    """(setting, env vars, default, meaning) rows for the README's configuration table."""
    rows = []
    for name, field in PacaOtelSettings.model_fields.items():
        alias = field.validation_alias
        envs = [c for c in getattr(alias, "choices", []) if isinstance(c, str) and c.isupper()]
        if field.default_factory is not None:
            default: Any = field.default_factory()  # type: ignore[call-arg]  # factories take no args here
        else:
            default = field.default
        rows.append(
            (name, ", ".join(f"`{e}`" for e in envs), repr(default), field.description or "")
        )
    return rows


def settings_table_by_group() -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """:func:`settings_table`'s rows under each option group's heading, in README order."""
    rows = {row[0]: row for row in settings_table()}
    return [(title, [rows[name] for name in group.model_fields]) for title, group in GROUPS]
