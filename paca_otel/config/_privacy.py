"""Privacy options: the scrubber that removes secrets from spans, logs, labels and reports."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import field_validator
from pydantic_settings import NoDecode

from paca_otel.config._source import OptionGroup, _env


class PrivacyOptions(OptionGroup):
    """Which keys and values are scrubbed, which are kept, and what replaces them."""

    # --- privacy: sensitive-data scrubbing ----------------------------------------------------
    scrub_enabled: bool = _env(
        "scrub_enabled", default=True,
        description="scrub secrets from spans, logs, metric labels, payloads and reports",
    )  # fmt: skip
    scrub_key_patterns: Annotated[tuple[str, ...] | None, NoDecode] = _env(
        "scrub_key_patterns", default=None,
        description="regexes for sensitive keys (JSON list or comma-separated; none: built-in)",
    )  # fmt: skip
    scrub_value_patterns: Annotated[tuple[str, ...] | None, NoDecode] = _env(
        "scrub_value_patterns", default=None,
        description="detector names or regexes for secret-shaped values (none: built-in)",
    )  # fmt: skip
    scrub_allow_keys: Annotated[tuple[str, ...] | None, NoDecode] = _env(
        "scrub_allow_keys", default=None,
        description="keys never scrubbed, exact names (none: built-in allow-list)",
    )  # fmt: skip
    scrub_marker: str = _env(
        "scrub_marker", default="[REDACTED]", min_length=1,
        description="what replaces a scrubbed value",
    )  # fmt: skip

    # --- validators ---------------------------------------------------------------------------
    @field_validator(
        "scrub_key_patterns", "scrub_value_patterns", "scrub_allow_keys", mode="before"
    )
    @classmethod
    def _pattern_list(cls, value: Any) -> Any:
        # Regexes may hold commas: a JSON list is read as such, anything else split on commas.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                try:
                    return tuple(str(v) for v in json.loads(text))
                except ValueError:
                    msg = "not a JSON list of strings"
                    raise ValueError(msg) from None
            return tuple(v.strip() for v in text.split(",") if v.strip())
        return value
