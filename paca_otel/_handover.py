"""What a root's alerting runtime hands over across ``fork()`` (gunicorn ``--preload``).

A forked child cannot use the alerting runtime it inherits: its SQLite connection is closed
across the fork (:mod:`paca_otel.storage`) and its threads (rule engine, dispatcher, report
scheduler) did not survive. So each root (:class:`paca_otel._runtime.Runtime`) takes a
:class:`Handover` just before the fork, in the parent, where the threads that hold the
engine's locks are alive to release them (in the child those locks may stay held forever).
In the child the root leaves the inherited runtime behind, and the next one it builds (when
the rebuilt telemetry's fork hook attaches it, see :mod:`paca_otel._prefork`) takes the
snapshot over: the same rules, user channels and silences, with its own connection and
threads. The channels taken over are the parent's objects (a client one keeps is the
parent's too).

The handover also serves a runtime rebuilt in one process (other state file, see
``Runtime.attach``): it then comes from the live predecessor instead of a snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from paca_otel.alerting._state import SilenceRecord
    from paca_otel.delivery.channels import NotificationChannel
    from paca_otel.rules._rule import Rule


class Handover(NamedTuple):
    """What a successor runtime adopts from its predecessor (see ``take_over``)."""

    channels: dict[str, NotificationChannel]
    rules: list[Rule]
    silences: list[SilenceRecord]
    #: Origins of the rules from a rules file (``file:<path>``), so the file keeps owning them.
    origins: dict[str, str]


def import_what_threads_need() -> None:
    """Import here, on the caller's thread, what a first delivery would import lazily.

    A module some thread is half-way through importing when a pre-fork server forks stays
    locked forever in the child (CPython keeps one import lock per module): measured under
    ``gunicorn --preload``, a worker hung importing ``h11`` behind the master's first webhook.
    The alerting runtime calls this before it starts its threads.
    """
    import httpx

    httpx.Client().close()  # httpcore, h11, certifi: imported by the transport's constructor
    "localhost".encode("idna")  # the codec a first request to a host name loads
