"""The API's rule body, derived from :class:`~paca_otel.rules._rule.Rule` (fields listed once).

Shared by the first API's routes and v1's, so neither imports the other.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, get_origin

from pydantic import BaseModel, ConfigDict, Field, create_model

from paca_otel.rules._rule import Rule

__all__ = ["RulePayload"]

#: Rule fields a rule file's group sets; the API has no groups.
_FILE_ONLY_FIELDS = frozenset({"group", "interval"})
#: Request-size bounds of the API (a rule's own validation has no length limit on them).
_MAX_LENGTH = {"condition": 2000, "clear": 2000}


def _wire_type(annotation: Any) -> Any:
    """The JSON type the API takes for a :class:`Rule` field of type ``annotation``.

    Rule reads more than its field types say: durations as ``"5m"``, severities as ``"crit"``,
    label values as numbers, one channel as a string; the wire type allows those and leaves
    the checking to Rule. Anything else keeps Rule's own type (``str``, ``Literal``...).
    """
    if annotation is float:
        return float | str
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return str
    if get_origin(annotation) is dict:
        return dict[str, Any]
    if get_origin(annotation) is list:
        return str | list[str]
    return annotation


def _rule_payload_model() -> type[BaseModel]:
    """The API's rule body, derived from :class:`Rule` so the fields are listed once.

    Every field of ``Rule`` (but the file-only ``group``/``interval``) is accepted under its
    own name (``for``, ``labels``, ``no_data``...), plus the seed's ``action`` for
    ``channels``. ``Rule`` checks the values (a bad one is a 422 naming the field); a field
    left out takes ``Rule``'s default.
    """
    fields: dict[str, Any] = {}
    for name, info in Rule.model_fields.items():
        if name in _FILE_ONLY_FIELDS:
            continue
        default: Any = ... if info.is_required() else None
        annotation = _wire_type(info.annotation)
        if not info.is_required():
            annotation = annotation | None
        field = Field(default=default, alias=info.alias, max_length=_MAX_LENGTH.get(name))
        fields[name] = (annotation, field)
    fields["action"] = (str | list[str] | None, Field(default=None))
    return create_model(
        "RulePayload",
        __config__=ConfigDict(extra="forbid", populate_by_name=True),
        __doc__="A rule as the API accepts it: Rule's fields, plus the seed's ``action``.",
        **fields,
    )


if TYPE_CHECKING:
    RulePayload = BaseModel
else:
    RulePayload = _rule_payload_model()
