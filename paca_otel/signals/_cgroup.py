"""Container limits and usage from cgroup v2: the numbers behind the ``container.*`` gauges.

A process in a container (or a systemd unit) is limited by its cgroup, not by the host: CPU
utilisation against ``cpu.max`` and memory against ``memory.max`` is what the OOM killer and
kubelet eviction act on. :class:`CgroupV2` reads those files; hosts without cgroup v2
(v1, macOS) have none, and the gauges are then not registered.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CgroupSample", "CgroupV2"]


@dataclass(frozen=True, slots=True)
class CgroupSample:
    """One read of a cgroup v2 directory; ``None`` where a file is missing or says ``max``."""

    cpu_usage_seconds: float | None
    cpu_limit: float | None
    memory_current: int | None
    memory_working_set: int | None
    memory_limit: int | None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


class CgroupV2:
    """Reads the limits and usage of this process's cgroup v2 (a container, a systemd unit).

    Args:
        root: The cgroup v2 mount, injectable for tests. If it has no ``cpu.max`` /
            ``memory.max`` of its own (no cgroup namespace, e.g. a systemd service), the
            process's own cgroup path from ``proc_cgroup`` (``0::/path``) is tried below it.
        proc_cgroup: Where to read this process's cgroup path.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, proc_cgroup: str = "/proc/self/cgroup"
    ) -> None:
        base = Path(root)
        self.path = base
        if not self._has_files(base):
            text = _read(Path(proc_cgroup)) or ""
            for line in text.splitlines():
                if line.startswith("0::/"):
                    nested = base / line[4:].strip()
                    if self._has_files(nested):
                        self.path = nested
                    break

    @staticmethod
    def _has_files(path: Path) -> bool:
        return (path / "cpu.max").is_file() or (path / "memory.max").is_file()

    @property
    def available(self) -> bool:
        """Whether this looks like a cgroup v2 directory at all."""
        return self._has_files(self.path) or (self.path / "cpu.stat").is_file()

    def sample(self) -> CgroupSample:
        """Read usage and limits now (five small pseudo-files, tens of microseconds)."""
        path = self.path
        cpu_usage: float | None = None
        stat = _read(path / "cpu.stat")
        if stat:
            for line in stat.splitlines():
                if line.startswith("usage_usec "):
                    cpu_usage = int(line.split()[1]) / 1e6
                    break
        cpu_limit: float | None = None
        cpu_max = _read(path / "cpu.max")
        if cpu_max:
            parts = cpu_max.split()  # "<quota> <period>" or "max <period>"
            if len(parts) == 2 and parts[0] != "max" and float(parts[1]) > 0:
                cpu_limit = float(parts[0]) / float(parts[1])
        current_text = _read(path / "memory.current")
        current = int(current_text) if current_text and current_text.strip().isdigit() else None
        working_set: int | None = None
        if current is not None:
            inactive = 0
            for line in (_read(path / "memory.stat") or "").splitlines():
                if line.startswith("inactive_file "):
                    inactive = int(line.split()[1])
                    break
            working_set = max(current - inactive, 0)
        limit_text = (_read(path / "memory.max") or "").strip()
        memory_limit = int(limit_text) if limit_text.isdigit() else None
        return CgroupSample(cpu_usage, cpu_limit, current, working_set, memory_limit)
