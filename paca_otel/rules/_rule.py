"""Alert rules: the validated :class:`Rule` model, YAML rule files and annotation templates.

A rule is checked completely when it is built — its condition parsed, durations read, templates
checked — so a bad rule fails at ``load_rules``/``add_rule`` time with a :class:`RuleError`
naming the rule and the field, never later on the engine's evaluation path.

Rule files take Prometheus' shape, so existing files load unchanged, plus paca-otel's fields::

    groups:
      - name: api
        interval: 30s                 # optional
        rules:
          - alert: HighErrorRate      # or "name:"
            expr: error_rate{route=~"/api/.*"} > 0.05    # or "condition:"
            for: 5m
            keep_firing_for: 2m
            cooldown: 10m             # paca-otel: min. time between two notifications
            severity: critical        # or labels.severity, as in Prometheus
            labels: {team: web}
            annotations: {summary: "{{ $labels.route }} fails {{ $value | humanizePercentage }}"}
            channels: [slack]
            clear: error_rate{route=~"/api/.*"} < 0.01   # hysteresis: resolve only below this
            no_data: ok               # ok (default) | keep | alerting
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from paca_otel.errors import ParseError, RuleError
from paca_otel.rules._expr import (
    DURATION_PART_RE,
    DURATION_RE,
    DURATION_UNITS_MS,
    LABEL_NAME_RE,
    Expr,
    format_number,
    parse,
)
from paca_otel.rules._models import Severity

_SEVERITY_ALIASES = {"warn": "warning", "crit": "critical", "error": "critical", "page": "critical"}
_TEMPLATE_RE = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.DOTALL)
_PRINTF_RE = re.compile(r'printf\s+"(%[-+ #0]*[0-9]*(?:\.[0-9]+)?[dfeEgGs])"\s+\$value')
_LABEL_REF_RE = re.compile(r"\$labels\.([A-Za-z_][A-Za-z0-9_.]*)")
_RULE_KEYS = {"alert", "name", "expr", "condition", "for", "keep_firing_for", "cooldown"}
_RULE_KEYS |= {"severity", "labels", "annotations", "channels", "clear", "no_data"}
_GROUP_KEYS = {"name", "interval", "rules"}


def parse_duration(value: object, field: str = "duration") -> float:
    """Seconds from ``"5m"``, ``"1h30m"``, ``"500ms"``, ``"2w"``, ``"1y"``, ``"300"`` or a number.

    The units are Prometheus': ``ms s m h d w y`` (a week is 7 days, a year 365).

    Raises:
        RuleError: the value is negative, not finite, or not a duration.
    """
    if isinstance(value, bool):
        seconds = math.nan
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and DURATION_RE.fullmatch(value.strip()):
        ms = sum(int(n) * DURATION_UNITS_MS[u] for n, u in DURATION_PART_RE.findall(value.strip()))
        seconds = ms / 1000
    else:
        try:
            seconds = float(value) if isinstance(value, str) else math.nan
        except ValueError:
            seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        msg = (
            f"{field} {value!r} is not a duration: use a number of seconds >= 0 or a string"
            " like 30s, 5m, 1h30m, 1d, 2w (units ms, s, m, h, d, w, y)"
        )
        raise RuleError(msg)
    return seconds


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Expr:
    """Parse once per distinct condition text: validation and ``.expr`` share the result."""
    return parse(text)


# -------------------------------------------------------------------------------- templates


def _humanize(value: float) -> str:
    """Prometheus' ``humanize``: SI prefixes, four significant digits (1234 -> 1.234k)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:.4g}"
    prefixes = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"]
    if abs(value) >= 1:
        index = 0
        while abs(value) >= 1000 and index < len(prefixes) - 1:
            value /= 1000
            index += 1
        return f"{value:.4g}{prefixes[index]}"
    small = ["", "m", "µ", "n", "p", "f", "a", "z", "y"]
    index = 0
    while abs(value) < 1 and index < len(small) - 1:
        value *= 1000
        index += 1
    return f"{value:.4g}{small[index]}"


def _humanize_duration(value: float) -> str:
    """Prometheus' ``humanizeDuration``: ``3725`` -> ``1h 2m 5s``, ``0.25`` -> ``250ms``."""
    if not math.isfinite(value):
        return f"{value:.4g}"
    if abs(value) < 1:
        return f"{value * 1000:.4g}ms"
    sign = "-" if value < 0 else ""
    seconds = abs(value)
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours or days else []
    parts += [f"{minutes}m"] if minutes or hours or days else []
    frac = seconds - int(seconds)
    parts.append(f"{secs + frac:.4g}s" if frac else f"{secs}s")
    return sign + " ".join(parts)


_VALUE_FILTERS: dict[str, Callable[[float], str]] = {
    "humanize": _humanize,
    "humanizePercentage": lambda v: f"{v * 100:.4g}%",
    "humanizeDuration": _humanize_duration,
}


def _compile_placeholder(body: str) -> Callable[[Mapping[str, str], float], str] | None:
    """A renderer for one ``{{ ... }}`` body, or None if the form is not supported."""
    if body == "$value":
        return lambda _labels, value: format_number(value)
    label = _LABEL_REF_RE.fullmatch(body)
    if label:
        name = label.group(1)
        return lambda labels, _value: labels.get(name, "")
    printf = _PRINTF_RE.fullmatch(body)
    if printf:
        spec = printf.group(1)
        if spec.endswith("d"):
            return lambda _labels, value: spec % int(value) if math.isfinite(value) else str(value)
        return lambda _labels, value: spec % value
    pipe = [part.strip() for part in body.split("|")]
    if len(pipe) == 2 and pipe[0] == "$value" and pipe[1] in _VALUE_FILTERS:
        func = _VALUE_FILTERS[pipe[1]]
        return lambda _labels, value: func(value)
    return None


def check_template(text: str, field: str) -> None:
    """Fail on any ``{{ ... }}`` form :func:`render_template` does not understand.

    Raises:
        RuleError: naming the annotation and the placeholder.
    """
    for match in _TEMPLATE_RE.finditer(text):
        if _compile_placeholder(match.group(1)) is None:
            msg = (
                f"{field}: unsupported template {match.group()!r}; use {{{{ $value }}}},"
                " {{ $labels.NAME }}, {{ $value | humanize|humanizePercentage|humanizeDuration }}"
                ' or {{ printf "%.2f" $value }}'
            )
            raise RuleError(msg)


def render_template(text: str, labels: Mapping[str, str], value: float) -> str:
    """Fill ``{{ $value }}`` / ``{{ $labels.x }}`` placeholders; unknown forms stay verbatim."""
    if "{{" not in text:
        return text

    def fill(match: re.Match[str]) -> str:
        render = _compile_placeholder(match.group(1))
        return match.group() if render is None else render(labels, value)

    return _TEMPLATE_RE.sub(fill, text)


# ------------------------------------------------------------------------------------- Rule


class Rule(BaseModel):
    """One alert rule, validated in full when built.

    Construction raises :class:`RuleError` (or its subclass :class:`ParseError` for a bad
    condition, carrying the position) whose message names the rule and the field, instead of
    pydantic's ``ValidationError``: callers of set-up calls handle one exception tree.

    Durations (``for``, ``keep_firing_for``, ``cooldown``, ``interval``) are seconds, given as
    numbers or strings such as ``"5m"``. ``group`` and ``interval`` come from the rule file's
    group (``interval`` None = the engine's own tick); the Prometheus export keeps them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    condition: str
    for_: float = Field(default=0.0, alias="for")
    keep_firing_for: float = 0.0
    cooldown: float = 300.0
    severity: Severity = Severity.WARNING
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    channels: list[str] = Field(default_factory=list)
    clear: str | None = None
    no_data: Literal["keep", "alerting", "ok"] = "ok"
    group: str = "default"
    interval: float | None = None

    _expr: Expr = PrivateAttr()
    _clear_expr: Expr | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _rule_error(exc, data) from None

    def model_post_init(self, context: Any, /) -> None:
        self._expr = _parse_cached(self.condition)
        self._clear_expr = None if self.clear is None else _parse_cached(self.clear)

    @property
    def expr(self) -> Expr:
        """The parsed condition (parsed once, at validation)."""
        return self._expr

    @property
    def clear_expr(self) -> Expr | None:
        """The parsed hysteresis condition, if the rule has one."""
        return self._clear_expr

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if value.strip() != value or not value:
            msg = f"must be non-empty without leading/trailing spaces, got {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("condition", "clear")
    @classmethod
    def _check_condition(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_cached(value)  # raises ParseError, unwrapped again by _rule_error
        return value

    @field_validator("for_", "keep_firing_for", "cooldown", "interval", mode="before")
    @classmethod
    def _check_duration(cls, value: object) -> object:
        return None if value is None else parse_duration(value, "value")

    @field_validator("severity", mode="before")
    @classmethod
    def _check_severity(cls, value: object) -> object:
        if isinstance(value, str):
            lowered = value.strip().lower()
            return _SEVERITY_ALIASES.get(lowered, lowered)
        return value

    @field_validator("labels", "annotations", mode="before")
    @classmethod
    def _stringify(cls, value: object) -> object:
        # YAML turns `team: 1` or `page: yes` into int/bool; labels are strings in Prometheus.
        if isinstance(value, Mapping):
            return {k: _scalar_text(v) for k, v in value.items()}
        return value

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not LABEL_NAME_RE.fullmatch(key):
                msg = f"label name {key!r} is invalid: use letters, digits, '_' and '.'"
                raise ValueError(msg)
        return value

    @field_validator("annotations")
    @classmethod
    def _check_annotations(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            check_template(text, key)
        return value

    @field_validator("channels")
    @classmethod
    def _check_channels(cls, value: list[str]) -> list[str]:
        for channel in value:
            if not channel.strip():
                msg = "channel names must be non-empty"
                raise ValueError(msg)
        return value


def _scalar_text(value: object) -> object:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


def _rule_error(exc: ValidationError, data: Mapping[str, Any]) -> RuleError:
    """One RuleError naming the rule and each bad field; a ParseError keeps its position."""
    rule = f"rule {data.get('name')!r}" if data.get("name") else "rule"
    problems = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "rule"
        loc = "for" if loc == "for_" else loc
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ParseError):
            return ParseError(f"{rule}: {loc}: {cause}", text=cause.text, position=cause.position)
        if isinstance(cause, RuleError):
            problems.append(f"{loc}: {cause}")
            continue
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(f"{loc}: {message} (got {err.get('input')!r})")
    return RuleError(f"{rule}: " + "; ".join(problems))


def render_annotations(rule: Rule, labels: Mapping[str, str], value: float) -> dict[str, str]:
    """The rule's annotations with ``{{ $value }}`` and ``{{ $labels.x }}`` filled in."""
    return {key: render_template(text, labels, value) for key, text in rule.annotations.items()}


# ------------------------------------------------------------------------------- rule files


def _rule_from_yaml(raw: object, group: str, interval: float | None, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        msg = f"{where}: a rule must be a mapping, got {type(raw).__name__}"
        raise RuleError(msg)
    if "record" in raw:
        msg = f"{where}: recording rules ('record:') are not supported; only alerting rules"
        raise RuleError(msg)
    unknown = sorted(set(map(str, raw)) - _RULE_KEYS)
    if unknown:
        msg = f"{where}: unknown keys {unknown}; allowed: {sorted(_RULE_KEYS)}"
        raise RuleError(msg)
    data: dict[str, Any] = dict(raw)
    for ours, theirs in (("name", "alert"), ("condition", "expr")):
        if ours in data and theirs in data:
            msg = f"{where}: give either {ours!r} or {theirs!r}, not both"
            raise RuleError(msg)
        if theirs in data:
            data[ours] = data.pop(theirs)
        if ours not in data:
            msg = f"{where}: missing {ours!r} (or {theirs!r})"
            raise RuleError(msg)
    labels = data.get("labels")
    if "severity" not in data and isinstance(labels, Mapping) and "severity" in labels:
        data["severity"] = labels["severity"]
    data["group"] = group
    data["interval"] = interval
    try:
        return Rule(**data)
    except ParseError as exc:  # `where` already names the rule: drop Rule's own prefix
        detail = str(exc).removeprefix(f"rule {data['name']!r}: ")
        raise ParseError(f"{where}: {detail}", text=exc.text, position=exc.position) from None
    except RuleError as exc:
        msg = f"{where}: " + str(exc).removeprefix(f"rule {data['name']!r}: ")
        raise RuleError(msg) from None


def load_rules_text(text: str, source: str = "<rules>") -> list[Rule]:
    """Rules from YAML text (see the module docstring for the shape).

    Raises:
        RuleError: naming ``source``, the group and rule, and the field at fault.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"{source}: not valid YAML: {exc}"
        raise RuleError(msg) from None
    if doc is None:
        return []
    if not isinstance(doc, Mapping) or not isinstance(doc.get("groups"), list):
        msg = f"{source}: expected a mapping with a 'groups' list at the top"
        raise RuleError(msg)
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for gi, group in enumerate(doc["groups"]):
        if not isinstance(group, Mapping) or not isinstance(group.get("name"), str):
            msg = f"{source}: group #{gi + 1} must be a mapping with a 'name'"
            raise RuleError(msg)
        gname = group["name"]
        unknown = sorted(set(map(str, group)) - _GROUP_KEYS)
        if unknown:
            msg = (
                f"{source}: group {gname!r}: unknown keys {unknown}; allowed: {sorted(_GROUP_KEYS)}"
            )
            raise RuleError(msg)
        interval = None
        if group.get("interval") is not None:
            interval = parse_duration(group["interval"], f"{source}: group {gname!r}: interval")
        raw_rules = group.get("rules")
        raw_rules = [] if raw_rules is None else raw_rules
        if not isinstance(raw_rules, list):
            msg = f"{source}: group {gname!r}: 'rules' must be a list"
            raise RuleError(msg)
        for ri, raw in enumerate(raw_rules):
            label = raw.get("alert", raw.get("name")) if isinstance(raw, Mapping) else None
            where = f"{source}: group {gname!r}: rule #{ri + 1}" + (f" {label!r}" if label else "")
            rule = _rule_from_yaml(raw, gname, interval, where)
            if rule.name in seen:
                first = seen[rule.name]
                msg = f"{where}: duplicate rule name {rule.name!r} (first in group {first!r})"
                raise RuleError(msg)
            seen[rule.name] = gname
            rules.append(rule)
    return rules


def load_rules(path: str | Path) -> list[Rule]:
    """Rules from a YAML file.

    Raises:
        RuleError: the file cannot be read or holds an invalid rule (named in the message).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read rule file {str(path)!r}: {exc.strerror or exc}"
        raise RuleError(msg) from None
    return load_rules_text(text, source=str(path))
