"""The records a :class:`~paca_otel.signals._system_source.SystemSource` returns.

Why a module of its own: these frozen records are the vocabulary every party of the seam
shares (the psutil reader, the static fake, a user's own source, and
:class:`~paca_otel.signals._system.SystemMetrics`, which turns them into observations), while
:mod:`paca_otel.signals._system_source` is about *reading* them. They carry semantic-convention
names already (memory states, seconds rather than psutil's milliseconds), so no party needs to
know psutil's fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DiskIO",
    "FilesystemUsage",
    "GcGeneration",
    "MemoryStats",
    "NetworkIO",
    "ProcessStats",
]


@dataclass(frozen=True, slots=True)
class MemoryStats:
    """Physical memory or swap: ``total`` bytes and bytes per ``system.*.state``."""

    total: int
    states: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class DiskIO:
    """Cumulative I/O counters of one block device since boot."""

    read_bytes: int
    write_bytes: int
    read_count: int
    write_count: int
    read_time: float = 0.0
    """Seconds spent in reads (summed over parallel requests)."""
    write_time: float = 0.0
    busy_time: float = 0.0
    """Seconds the device was busy (wall clock); 0 where the OS does not tell."""


@dataclass(frozen=True, slots=True)
class FilesystemUsage:
    """Space on one mounted filesystem; ``reserved`` is what only root may use."""

    device: str
    mountpoint: str
    fstype: str
    total: int
    used: int
    free: int

    @property
    def reserved(self) -> int:
        """Bytes neither used nor available to unprivileged users (ext4's root reserve)."""
        return max(self.total - self.used - self.free, 0)


@dataclass(frozen=True, slots=True)
class NetworkIO:
    """Cumulative counters of one network interface since boot."""

    bytes_sent: int
    bytes_recv: int
    errors_out: int
    errors_in: int
    packets_sent: int = 0
    packets_recv: int = 0
    dropped_out: int = 0
    dropped_in: int = 0


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """The current process: cumulative CPU seconds, memory, threads, descriptors.

    ``uptime`` (seconds since the process started) lets the first utilisation value be an
    average since start instead of a meaningless 0.
    """

    pid: int
    cpu_user: float
    cpu_system: float
    rss: int
    vms: int
    threads: int
    fds: int | None
    uptime: float
    voluntary_switches: int = 0
    involuntary_switches: int = 0


@dataclass(frozen=True, slots=True)
class GcGeneration:
    """``gc.get_stats()`` of one generation."""

    collections: int
    collected: int
    uncollectable: int
