"""The monitoring API's response and request bodies (``/api/v1``): typed, documented, stable.

One pydantic model per shape, so the OpenAPI document names every field and clients can
generate code from it. The core's own objects (alerts, rules, silences, series) are converted
here by ``from_*`` constructors; the routes never hand out the core's dataclasses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from paca_otel.pipeline._aliases import ALIASES, UNITS

if TYPE_CHECKING:
    from paca_otel._snapshot import MetricsSnapshot
    from paca_otel.alerting._state import ActiveAlert, SilenceRecord
    from paca_otel.pipeline._spans import REDStats
    from paca_otel.pipeline._store import Series
    from paca_otel.rules._models import AlertEvent

_CONFIG = ConfigDict(frozen=True)


def _clean(labels: Mapping[str, Any]) -> dict[str, str]:
    """``labels`` as strings. Secrets are already gone: the settings' scrubber runs on metric
    labels where they are recorded (``scrub_*`` settings, allow-list included)."""
    return {str(k): str(v) for k, v in labels.items()}


def _num(value: float | None) -> float | None:
    """``value`` or ``None`` when it is missing or not finite (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


class ErrorReply(BaseModel):
    """An error: ``detail`` says what was wrong (never the whole input)."""

    detail: Any


class AliasValue(BaseModel):
    """One friendly alias (``cpu_usage``...) with its unit and meaning."""

    model_config = _CONFIG
    name: str
    value: float | None = Field(description="None: no data (e.g. latency with no requests)")
    unit: str
    description: str


class MetricValue(BaseModel):
    """One data point of the current collection."""

    model_config = _CONFIG
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    value: float | None
    kind: str
    unit: str = ""
    count: int | None = None


class MetricsReply(BaseModel):
    """The current snapshot: aliases with units, then every metric's data points."""

    model_config = _CONFIG
    timestamp: float
    aliases: list[AliasValue]
    metrics: list[MetricValue]

    @classmethod
    def from_snapshot(cls, snapshot: MetricsSnapshot) -> MetricsReply:
        """Convert the core's snapshot."""
        return cls(
            timestamp=snapshot.timestamp,
            aliases=[
                AliasValue(name=n, value=_num(v), unit=UNITS[n], description=ALIASES[n])
                for n, v in snapshot.aliases().items()
            ],
            metrics=[
                MetricValue(
                    name=p.name,
                    labels=_clean(p.labels),
                    value=_num(p.value),
                    kind=p.kind,
                    unit=p.unit,
                    count=p.count,
                )
                for p in snapshot.metrics
            ],
        )


class SeriesData(BaseModel):
    """One series in a window: its labels and ``[timestamp, value]`` points, oldest first."""

    model_config = _CONFIG
    labels: dict[str, str]
    points: list[tuple[float, float]]


class SeriesReply(BaseModel):
    """Every stored series of a metric matching the matchers, in ``(start, end]``."""

    model_config = _CONFIG
    name: str
    unit: str
    start: float
    end: float
    step: float | None
    series: list[SeriesData]

    @classmethod
    def build(
        cls, name: str, found: list[Series], start: float, end: float, step: float | None
    ) -> SeriesReply:
        """Convert the store's series, keeping the last point of each ``step`` bucket."""
        out = []
        for series in found:
            points = list(zip(series.timestamps, series.values, strict=True))
            if step:
                buckets: dict[int, tuple[float, float]] = {}
                for ts, value in points:
                    buckets[int((ts - start) // step)] = (ts, value)
                points = [buckets[k] for k in sorted(buckets)]
            out.append(
                SeriesData(
                    labels=_clean(dict(series.labels)),
                    points=[(t, v) for t, v in points if math.isfinite(v)],
                )
            )
        return cls(name=name, unit=UNITS.get(name, ""), start=start, end=end, step=step, series=out)


class SeriesNames(BaseModel):
    """The metric names the series store holds (the dashboard's picker)."""

    model_config = _CONFIG
    names: list[str]


class Alert(BaseModel):
    """A pending or firing alert."""

    model_config = _CONFIG
    rule: str
    state: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    active_since: float
    fired_at: float | None
    last_notified: float | None
    fingerprint: str
    flapping: bool
    silenced_by: str | None

    @classmethod
    def from_active(cls, alert: ActiveAlert) -> Alert:
        """Convert the engine's alert."""
        return cls(
            rule=alert.rule, state=alert.state.value, severity=alert.severity.value,
            labels=_clean(alert.labels), annotations=_clean(alert.annotations),
            value=_num(alert.value),
            active_since=alert.active_since, fired_at=alert.fired_at,
            last_notified=alert.last_notified, fingerprint=alert.fingerprint,
            flapping=alert.flapping, silenced_by=alert.silenced_by,
        )  # fmt: skip


class AlertEventModel(BaseModel):
    """A firing or resolved transition."""

    model_config = _CONFIG
    rule: str
    state: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    starts_at: float
    ends_at: float | None
    fingerprint: str

    @classmethod
    def from_event(cls, event: AlertEvent) -> AlertEventModel:
        """Convert the engine's event."""
        return cls(
            rule=event.rule, state=event.state.value, severity=event.severity.value,
            labels=_clean(event.labels), annotations=_clean(event.annotations),
            value=_num(event.value),
            starts_at=event.starts_at, ends_at=event.ends_at, fingerprint=event.fingerprint,
        )  # fmt: skip


class AlertHistoryPage(BaseModel):
    """A page of the alert history, newest first."""

    model_config = _CONFIG
    items: list[AlertEventModel]
    limit: int
    offset: int
    has_more: bool


class RuleModel(BaseModel):
    """A rule as stored (durations in seconds)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)
    name: str
    condition: str
    for_: float = Field(alias="for")
    keep_firing_for: float
    cooldown: float
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    channels: list[str]
    clear: str | None
    no_data: str

    @classmethod
    def from_rule(cls, payload: Mapping[str, Any]) -> RuleModel:
        """Convert a rule's JSON form (``rule_payload``)."""
        fields = {k: v for k, v in payload.items() if k in cls.model_fields or k == "for"}
        return cls.model_validate(fields)


class SilenceMatcher(BaseModel):
    """One label matcher of a silence (``alertname`` is the rule name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field(max_length=1000)


class SilenceCreate(BaseModel):
    """A new silence: matchers and how long it lasts."""

    model_config = ConfigDict(extra="forbid")
    matchers: list[SilenceMatcher] = Field(min_length=1, max_length=50)
    duration: float = Field(default=3600.0, gt=0, le=366 * 86_400.0, description="seconds")
    comment: str = Field(default="", max_length=1000)


class Silence(BaseModel):
    """A silence; ``active`` while now is inside ``[starts_at, ends_at)``."""

    model_config = _CONFIG
    id: str
    matchers: list[SilenceMatcher]
    starts_at: float
    ends_at: float
    comment: str
    created_by: str
    active: bool

    @classmethod
    def from_record(cls, record: SilenceRecord, now: float) -> Silence:
        """Convert the engine's silence."""
        return cls(
            id=record.id,
            matchers=[SilenceMatcher(name=n, op=op, value=v) for n, op, v in record.matchers],  # type: ignore[arg-type]  # op is one of the four, checked by the engine
            starts_at=record.starts_at, ends_at=record.ends_at, comment=record.comment,
            created_by=record.created_by, active=record.starts_at <= now < record.ends_at,
        )  # fmt: skip


class SilenceCreated(BaseModel):
    """The id of a new silence."""

    id: str


class Finding(BaseModel):
    """One observation of a report about an area (system, requests, errors, latency...)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    area: str
    level: str
    title: str
    evidence: Any = None


class Report(BaseModel):
    """An analysis report (``paca_otel.analysis``) over ``[start, end]``.

    The headline fields are typed; the detail lists keep the analysis module's own shapes, so
    a field it adds later shows up here without a change.
    """

    model_config = ConfigDict(frozen=True, extra="allow")
    title: str
    generated_at: float
    start: float
    end: float
    summary: list[str]
    findings: list[Finding] = Field(default_factory=list)
    anomalies: list[dict[str, Any]] = Field(default_factory=list)
    trends: list[dict[str, Any]] = Field(default_factory=list)
    forecasts: list[dict[str, Any]] = Field(default_factory=list)
    slos: list[dict[str, Any]] = Field(default_factory=list)
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    suggestions: list[dict[str, Any]] = Field(default_factory=list)
    routes: list[dict[str, Any]] = Field(default_factory=list)


class ReportList(BaseModel):
    """Reports, newest first (empty without metric history: ``history_enabled``)."""

    model_config = _CONFIG
    items: list[Report]


class AuditEntry(BaseModel):
    """One audited access or change (never a token)."""

    model_config = _CONFIG
    time: float
    token_name: str | None
    role: str | None
    action: str
    target: str
    result: str
    status: int | None
    client: str


class AuditPage(BaseModel):
    """A page of the audit log, newest first."""

    model_config = _CONFIG
    items: list[AuditEntry]
    total: int
    limit: int
    offset: int


class ComponentHealth(BaseModel):
    """One part's readiness."""

    model_config = _CONFIG
    ok: bool
    detail: dict[str, Any] = Field(default_factory=dict)


class Health(BaseModel):
    """Liveness (``status``) and readiness of each part."""

    model_config = _CONFIG
    status: Literal["ok", "degraded", "unconfigured"]
    live: bool = True
    ready: bool
    components: dict[str, ComponentHealth] = Field(default_factory=dict)


class SignIn(BaseModel):
    """A dashboard sign-in: the API token (kept nowhere; only a session id goes back)."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=256)


class SessionInfo(BaseModel):
    """The signed-in token's name and role, and the CSRF token to send with writes."""

    model_config = _CONFIG
    signed_in: bool = True
    name: str | None
    role: str | None
    csrf_token: str | None = None


class RouteFigure(BaseModel):
    """One route's request figures over the RED window."""

    model_config = _CONFIG
    route: str
    method: str | None
    request_rate: float
    error_rate: float
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None

    @classmethod
    def from_stats(cls, stats: REDStats) -> RouteFigure:
        """Convert the RED processor's figure."""
        return cls(
            route=str(stats.route), method=stats.method, request_rate=stats.rate,
            error_rate=stats.error_ratio, latency_p50=_num(stats.p50),
            latency_p95=_num(stats.p95), latency_p99=_num(stats.p99),
        )  # fmt: skip


class LiveEvent(BaseModel):
    """One server-sent ``sample`` event: aliases now, per-route figures, active alerts."""

    model_config = _CONFIG
    timestamp: float
    aliases: dict[str, float | None]
    routes: list[RouteFigure]
    alerts: list[Alert]
