"""The OTel resource every signal of this process carries: service, instance and distro."""

from __future__ import annotations

import os
import uuid

from opentelemetry.sdk.resources import Resource

from paca_otel._version import __version__
from paca_otel.config import PacaOtelSettings

_INSTANCE_ID = str(uuid.uuid4())  # one per process, stable across re-configuration


def renew_instance_id() -> None:
    """A forked child is another instance: called by set-up's after-fork rebuild."""
    global _INSTANCE_ID  # noqa: PLW0603  # one id per process is the point
    _INSTANCE_ID = str(uuid.uuid4())


def _resource(settings: PacaOtelSettings) -> Resource:
    # One instance per process: each worker of a service exports under its own id and pid
    # (a forked child gets new ones, see setup._after_fork_in_child); the backend aggregates.
    attributes: dict[str, str | int] = {
        "service.instance.id": _INSTANCE_ID,
        "process.pid": os.getpid(),
        "telemetry.distro.name": "paca-otel",
        "telemetry.distro.version": __version__,
    }
    attributes.update(settings.resource_attributes)
    attributes["service.name"] = settings.service_name
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    if settings.environment:
        attributes["deployment.environment.name"] = settings.environment
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES/OTEL_SERVICE_NAME; ours win because
    # they already applied the PACA_OTEL_* > OTEL_* precedence.
    return Resource.create(attributes)
