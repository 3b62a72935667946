"""How settings are read: the ``PACA_OTEL_*`` / ``OTEL_*`` field helper, the environment
source, and the parsers of the string forms variables take.

Every option group declares its fields with :func:`_env`, so a field's variables are written
once, next to it; :class:`_PrefixedEnvSource` then reads exactly those variables for every
field of the combined :class:`~paca_otel.config.PacaOtelSettings` (inherited fields included).
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource


class OptionGroup(BaseModel):
    """Base of the option groups: fields and validators of one concern, never validated alone.

    Only the combined :class:`~paca_otel.config.PacaOtelSettings` validates, so the groups
    defer building their own validation schema (``defer_build``): it would never be used, and
    seven more schemas would make ``import paca_otel.config`` (so ``configure()``) slower.
    """

    model_config = ConfigDict(defer_build=True)


def _env(name: str, otel: str | None = None, **kwargs: Any) -> Any:
    """A field read from ``PACA_OTEL_<NAME>``, then (if given) the standard ``OTEL_*`` variable."""
    choices = [name, f"PACA_OTEL_{name.upper()}"]
    if otel:
        choices.append(otel)
    return Field(validation_alias=AliasChoices(*choices), **kwargs)


def _parse_pairs(value: Any, *, secret: bool) -> Any:
    """Parse the OTel ``key=value,key2=value2`` form (values percent-decoded, as the spec says)."""
    if not isinstance(value, str):
        return value
    pairs: dict[str, str] = {}
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            shown = "an item without '='" if secret else repr(item)
            msg = f"expected key=value pairs separated by commas, got {shown}"
            raise ValueError(msg)
        pairs[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(val.strip())
    return pairs


def _comma_list(value: Any) -> Any:
    """A comma-separated string as a tuple of its non-empty, stripped items (else unchanged)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class _PrefixedEnvSource(PydanticBaseSettingsSource):
    """Reads only ``PACA_OTEL_<NAME>`` and the standard ``OTEL_*`` variable of each field.

    A public :class:`PydanticBaseSettingsSource` rather than a tweaked ``EnvSettingsSource``:
    pydantic-settings' own env source also reads the bare field name as a case-insensitive
    variable (a container's ``LOG_LEVEL=debug``, ``ENVIRONMENT`` or ``SERVICE_NAME`` would
    become paca-otel settings), and narrowing it meant overriding a private method whose
    signature changed in 2.16. Values are passed on as the raw strings; the model's validators
    parse them (every structured field is ``NoDecode`` and parses its own string form).
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The first variable of ``field_name`` that is set (PACA_OTEL_* before OTEL_*)."""
        choices = getattr(field.validation_alias, "choices", ())
        for name in choices:
            if isinstance(name, str) and name.isupper() and name in os.environ:
                return os.environ[name], field_name, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values
