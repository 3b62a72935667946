"""Where system and process gauges get their raw numbers: the ``SystemSource`` seam.

:class:`~paca_otel.signals._system.SystemMetrics` turns these numbers into OpenTelemetry
observations; this module only *reads* them. Two readers live here:

* :class:`PsutilSource`, the production source (psutil), which rebuilds its
  ``psutil.Process`` when the pid changes, i.e. after ``fork``;
* :class:`StaticSource`, a ``/proc``-like fake with plain mutable fields, for deterministic
  tests (re-exported by ``paca_otel.testing``); it counts the calls it gets.

Container limits (cgroup v2) are read by :mod:`paca_otel.signals._cgroup`; the records the
readers return are in :mod:`paca_otel.signals._system_stats`.

The source speaks semantic-convention vocabulary already (``cpu.mode`` names, memory states),
so a fake does not have to know psutil's field names.
"""

from __future__ import annotations

import gc
import os
import re
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import psutil

from paca_otel.signals._system_stats import (
    DiskIO,
    FilesystemUsage,
    GcGeneration,
    MemoryStats,
    NetworkIO,
    ProcessStats,
)

__all__ = ["PsutilSource", "StaticSource", "SystemSource"]


@runtime_checkable
class SystemSource(Protocol):
    """The raw numbers behind the system gauges; one call each per collection.

    Implement it to feed gauges from somewhere other than psutil (a fake in tests, a
    sidecar's numbers...). Every method must be cheap and must not block on I/O.
    """

    def cpu_times(self) -> Mapping[str, float]:
        """Cumulative CPU seconds over all CPUs by ``cpu.mode`` (user, system, idle, ...)."""
        ...

    def per_cpu_times(self) -> Sequence[Mapping[str, float]]:
        """Cumulative CPU seconds by ``cpu.mode``, one mapping per logical CPU."""
        ...

    def cpu_count(self) -> int:
        """Number of logical CPUs available to this process."""
        ...

    def memory(self) -> MemoryStats:
        """Physical memory by ``system.memory.state`` (used, free, cached, buffers)."""
        ...

    def swap(self) -> MemoryStats:
        """Swap by ``system.paging.state`` (used, free)."""
        ...

    def disk_io(self) -> Mapping[str, DiskIO]:
        """Cumulative block-device counters by device name."""
        ...

    def filesystems(self) -> Sequence[FilesystemUsage]:
        """Usage of each mounted local filesystem."""
        ...

    def network_io(self) -> Mapping[str, NetworkIO]:
        """Cumulative interface counters by interface name."""
        ...

    def connections(self) -> Mapping[tuple[str, str], int]:
        """Open inet connections by (``network.transport``, ``network.connection.state``).

        The state is ``""`` where it has none (UDP). Expensive with psutil: opt-in.
        """
        ...

    def process(self) -> ProcessStats:
        """The current process (after a fork: the child)."""
        ...

    def gc_stats(self) -> Sequence[GcGeneration]:
        """The interpreter's garbage-collector counters by generation."""
        ...


# psutil's cpu_times fields -> semconv cpu.mode. guest/guest_nice are already counted in
# user/nice by Linux, so they are left out rather than counted twice.
_CPU_MODE = {
    "user": "user",
    "nice": "nice",
    "system": "system",
    "idle": "idle",
    "iowait": "iowait",
    "irq": "interrupt",
    "softirq": "interrupt",
    "interrupt": "interrupt",
    "dpc": "interrupt",
    "steal": "steal",
}
_MEMORY_STATES = ("used", "free", "cached", "buffers")


def _cpu_modes(times: object) -> dict[str, float]:
    """Fold a psutil ``scputimes`` into semconv ``cpu.mode`` buckets."""
    out: dict[str, float] = {}
    for name in times._fields:  # type: ignore[attr-defined]  # psutil namedtuples have _fields
        mode = _CPU_MODE.get(name)
        if mode is not None:
            out[mode] = out.get(mode, 0.0) + getattr(times, name)
    return out


#: Block devices left out by default: node_exporter's default ``device-exclude`` (RAM and
#: loop devices, floppies, partitions of whole disks that are reported already). On a typical
#: VM these are most of the disk data points, and they never carry information.
DEFAULT_DISK_EXCLUDE = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"


class PsutilSource:
    """The production :class:`SystemSource`, backed by psutil.

    Args:
        getpid: Returns the current pid; injectable so tests can simulate a fork. When it
            changes, the ``psutil.Process`` is rebuilt (contrib's instrumentor keeps the
            parent's and so reports the parent after a fork).
        mount_ttl: Seconds the list of mounted filesystems is reused. Listing mounts costs
            more than all other reads together and mounts rarely change.
        disk_exclude: Regex of block devices not to report (``None`` or ``""``: all of
            them); :data:`DEFAULT_DISK_EXCLUDE` by default.
    """

    def __init__(
        self,
        *,
        getpid: Callable[[], int] = os.getpid,
        mount_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        disk_exclude: str | None = DEFAULT_DISK_EXCLUDE,
    ) -> None:
        self._disk_exclude = re.compile(disk_exclude) if disk_exclude else None
        self._getpid = getpid
        self._pid = getpid()
        self._proc = psutil.Process(self._pid)
        self._create_time = self._proc.create_time()
        self._mount_ttl = mount_ttl
        self._clock = clock
        self._mounts: list[tuple[str, str, str]] = []
        self._mounts_at = float("-inf")
        self._has_fds = hasattr(self._proc, "num_fds")
        procfs = getattr(psutil, "PROCFS_PATH", "/proc")
        meminfo = os.path.join(procfs, "meminfo")
        self._sock_diag = hasattr(socket, "AF_NETLINK")
        self._meminfo: str | None = meminfo if os.path.exists(meminfo) else None

    def cpu_times(self) -> Mapping[str, float]:
        """See :meth:`SystemSource.cpu_times`."""
        return _cpu_modes(psutil.cpu_times())

    def per_cpu_times(self) -> Sequence[Mapping[str, float]]:
        """See :meth:`SystemSource.per_cpu_times`."""
        return [_cpu_modes(t) for t in psutil.cpu_times(percpu=True)]

    def cpu_count(self) -> int:
        """See :meth:`SystemSource.cpu_count`; honours CPU affinity where the OS has it."""
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0)) or 1
        return psutil.cpu_count() or 1

    def memory(self) -> MemoryStats:
        """See :meth:`SystemSource.memory`; ``used`` is ``total - available`` (psutil >= 5)."""
        vm = psutil.virtual_memory()
        states = {name: int(getattr(vm, name)) for name in _MEMORY_STATES if hasattr(vm, name)}
        return MemoryStats(total=int(vm.total), states=states)

    def swap(self) -> MemoryStats:
        """See :meth:`SystemSource.swap`.

        On Linux, two lines of ``/proc/meminfo`` (15 µs) instead of ``psutil.swap_memory``
        (60 µs: it also parses ``/proc/vmstat`` for swap-in/out counts we do not report).
        """
        if self._meminfo is not None:
            try:
                with open(self._meminfo, "rb") as f:
                    total = free = -1
                    for line in f:
                        if line.startswith(b"SwapTotal:"):
                            total = int(line.split()[1]) * 1024
                        elif line.startswith(b"SwapFree:"):
                            free = int(line.split()[1]) * 1024
                            break
                if total >= 0 and free >= 0:
                    return MemoryStats(total=total, states={"used": total - free, "free": free})
            except (OSError, ValueError, IndexError):
                pass
            self._meminfo = None  # unexpected format: psutil from now on
        sw = psutil.swap_memory()
        return MemoryStats(total=int(sw.total), states={"used": int(sw.used), "free": int(sw.free)})

    def disk_io(self) -> Mapping[str, DiskIO]:
        """See :meth:`SystemSource.disk_io`."""
        counters = psutil.disk_io_counters(perdisk=True) or {}
        if self._disk_exclude is not None:
            skip = self._disk_exclude.match
            counters = {dev: c for dev, c in counters.items() if not skip(dev)}
        return {
            dev: DiskIO(
                c.read_bytes,
                c.write_bytes,
                c.read_count,
                c.write_count,
                c.read_time / 1000,  # psutil: milliseconds
                c.write_time / 1000,
                getattr(c, "busy_time", 0) / 1000,  # Linux and FreeBSD only
            )
            for dev, c in counters.items()
        }

    def filesystems(self) -> Sequence[FilesystemUsage]:
        """See :meth:`SystemSource.filesystems`.

        Only physical filesystems (``all=False``): network mounts are skipped because
        ``statvfs`` on a hung NFS server blocks, and collection must never block.
        """
        now = self._clock()
        if now - self._mounts_at >= self._mount_ttl:
            self._mounts = [
                (p.device, p.mountpoint, p.fstype) for p in psutil.disk_partitions(all=False)
            ]
            self._mounts_at = now
        out: list[FilesystemUsage] = []
        for device, mountpoint, fstype in self._mounts:
            try:
                usage = psutil.disk_usage(mountpoint)
            except OSError:  # unmounted since the list was read, or not permitted
                self._mounts_at = float("-inf")
                continue
            out.append(
                FilesystemUsage(device, mountpoint, fstype, usage.total, usage.used, usage.free)
            )
        return out

    def network_io(self) -> Mapping[str, NetworkIO]:
        """See :meth:`SystemSource.network_io`."""
        counters = psutil.net_io_counters(pernic=True) or {}
        return {
            nic: NetworkIO(
                c.bytes_sent,
                c.bytes_recv,
                c.errout,
                c.errin,
                c.packets_sent,
                c.packets_recv,
                c.dropout,
                c.dropin,
            )
            for nic, c in counters.items()
        }

    def connections(self) -> Mapping[tuple[str, str], int]:
        """See :meth:`SystemSource.connections`.

        On Linux through netlink ``sock_diag`` (~0.5 ms; see :func:`_count_sock_diag`),
        elsewhere ``psutil.net_connections`` (~10 ms: what contrib pays per collection).
        """
        if self._sock_diag:
            try:
                return _count_sock_diag()
            except OSError:  # no netlink (not Linux, seccomp, module missing): psutil
                self._sock_diag = False
        counts_: Counter[tuple[str, str]] = Counter()
        for conn in psutil.net_connections(kind="inet"):
            transport = "tcp" if conn.type == _SOCK_STREAM else "udp"
            status = conn.status
            state = _PSUTIL_STATE.get(status, status.lower())
            counts_[transport, state] += 1
        return dict(counts_)

    def process(self) -> ProcessStats:
        """See :meth:`SystemSource.process`; rebuilds the process handle after a fork."""
        pid = self._getpid()
        if pid != self._pid:
            self._pid = pid
            self._proc = psutil.Process(pid)
            self._create_time = self._proc.create_time()
        proc = self._proc
        with proc.oneshot():
            cpu = proc.cpu_times()
            mem = proc.memory_info()
            threads = proc.num_threads()
            fds = proc.num_fds() if self._has_fds else None
            switches = proc.num_ctx_switches()
        return ProcessStats(
            pid=pid,
            cpu_user=cpu.user,
            cpu_system=cpu.system,
            rss=mem.rss,
            vms=mem.vms,
            threads=threads,
            fds=fds,
            uptime=max(time.time() - self._create_time, 0.0),
            voluntary_switches=switches.voluntary,
            involuntary_switches=switches.involuntary,
        )

    def gc_stats(self) -> Sequence[GcGeneration]:
        """See :meth:`SystemSource.gc_stats`."""
        return [
            GcGeneration(s["collections"], s["collected"], s["uncollectable"])
            for s in gc.get_stats()
        ]


_SOCK_STREAM = 1  # socket.SOCK_STREAM on every platform psutil supports
# psutil's status names -> semconv network.connection.state (UDP has none: "")
_PSUTIL_STATE = {
    "NONE": "",
    "FIN_WAIT1": "fin_wait_1",
    "FIN_WAIT2": "fin_wait_2",
    "SYN_RECV": "syn_received",
}
# Kernel TCP states (include/net/tcp_states.h) -> semconv network.connection.state.
_TCP_STATES = {
    1: "established",
    2: "syn_sent",
    3: "syn_received",
    4: "fin_wait_1",
    5: "fin_wait_2",
    6: "time_wait",
    7: "close",
    8: "close_wait",
    9: "last_ack",
    10: "listen",
    11: "closing",
    12: "syn_received",  # TCP_NEW_SYN_RECV: a request socket
}
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_DUMP_REQUEST = 0x301  # NLM_F_REQUEST | NLM_F_DUMP
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLMSG_HEADER = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_INET_DIAG_REQ = struct.Struct("=BBBBI48x")  # family, protocol, ext, pad, states, sockid


def _count_sock_diag() -> dict[tuple[str, str], int]:
    """Count inet sockets by transport and state through netlink ``sock_diag``.

    What ``ss`` does: the kernel sends one small binary record per socket (~0.5 ms for
    hundreds of sockets), instead of the text tables of ``/proc/net/tcp`` that psutil parses
    and then maps to pids by walking every ``/proc/*/fd`` (~10 ms). A table the kernel
    refuses (``udp_diag`` not loaded) counts nothing; ``OSError`` where netlink itself is
    unavailable, so the caller can fall back to psutil.
    """
    counts: Counter[tuple[str, str]] = Counter()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(1.0)  # local kernel answer; the timeout only guards against surprises
        sock.connect((0, 0))
        for family in (socket.AF_INET, socket.AF_INET6):
            for proto, transport in ((socket.IPPROTO_TCP, "tcp"), (socket.IPPROTO_UDP, "udp")):
                request = _INET_DIAG_REQ.pack(family, proto, 0, 0, 0xFFFFFFFF)
                header = _NLMSG_HEADER.pack(
                    _NLMSG_HEADER.size + len(request),
                    _SOCK_DIAG_BY_FAMILY,
                    _NLM_F_DUMP_REQUEST,
                    1,
                    0,
                )
                sock.send(header + request)
                done = False
                while not done:
                    data = sock.recv(65536)
                    offset = 0
                    while offset < len(data):
                        length, kind = _NLMSG_HEADER.unpack_from(data, offset)[:2]
                        if kind in (_NLMSG_DONE, _NLMSG_ERROR):  # error: no udp_diag module...
                            done = True
                            break
                        # inet_diag_msg follows the header: family, then state.
                        state = data[offset + _NLMSG_HEADER.size + 1]
                        counts[transport, _TCP_STATES.get(state, "") if proto == 6 else ""] += 1
                        offset += (length + 3) & ~3
                    if not data:
                        break
    return dict(counts)


def _default_cpu() -> dict[str, float]:
    return {"user": 100.0, "system": 50.0, "idle": 800.0, "iowait": 10.0}


def _default_memory() -> MemoryStats:
    gib = 1 << 30
    return MemoryStats(
        total=8 * gib,
        states={
            "used": 2 * gib,
            "free": 4 * gib,
            "cached": 2 * gib - (1 << 28),
            "buffers": 1 << 28,
        },
    )


@dataclass
class StaticSource:
    """A fake :class:`SystemSource` whose numbers are plain fields: set them, then collect.

    Cumulative counters (``cpu``, ``disk``, ``network``, process CPU) are cumulative, as in
    ``/proc``: to simulate load, *increase* them between collections. ``calls`` counts every
    method call by name, so tests can check that one collection reads the source once.
    """

    cpu: dict[str, float] = field(default_factory=_default_cpu)
    per_cpu: list[dict[str, float]] = field(
        default_factory=lambda: [
            {k: v / 2 for k, v in _default_cpu().items()},
            {k: v / 2 for k, v in _default_cpu().items()},
        ]
    )
    ncpu: int = 2
    mem: MemoryStats = field(default_factory=_default_memory)
    swap_stats: MemoryStats = field(
        default_factory=lambda: MemoryStats(
            total=1 << 30, states={"used": 1 << 28, "free": 3 << 28}
        )
    )
    disks: dict[str, DiskIO] = field(
        default_factory=lambda: {"sda": DiskIO(4096_000, 8192_000, 1000, 2000, 1.5, 3.0, 2.0)}
    )
    mounts: list[FilesystemUsage] = field(
        default_factory=lambda: [
            FilesystemUsage("/dev/sda1", "/", "ext4", 100 << 30, 40 << 30, 55 << 30),
            FilesystemUsage("/dev/sdb1", "/data", "xfs", 500 << 30, 100 << 30, 400 << 30),
        ]
    )
    nics: dict[str, NetworkIO] = field(
        default_factory=lambda: {"eth0": NetworkIO(1_000_000, 2_000_000, 1, 2, 100, 200, 3, 4)}
    )
    conns: dict[tuple[str, str], int] = field(
        default_factory=lambda: {("tcp", "established"): 3, ("tcp", "listen"): 2, ("udp", ""): 1}
    )
    proc: ProcessStats = field(
        default_factory=lambda: ProcessStats(
            pid=4242,
            cpu_user=1.5,
            cpu_system=0.5,
            rss=50 << 20,
            vms=500 << 20,
            threads=4,
            fds=12 if sys.platform != "win32" else None,
            uptime=10.0,
            voluntary_switches=10,
            involuntary_switches=5,
        )
    )
    gc: list[GcGeneration] = field(
        default_factory=lambda: [
            GcGeneration(100, 5000, 0),
            GcGeneration(9, 300, 0),
            GcGeneration(1, 20, 1),
        ]
    )
    calls: Counter[str] = field(default_factory=Counter)

    def cpu_times(self) -> Mapping[str, float]:
        """Return ``cpu``."""
        self.calls["cpu_times"] += 1
        return dict(self.cpu)

    def per_cpu_times(self) -> Sequence[Mapping[str, float]]:
        """Return ``per_cpu``."""
        self.calls["per_cpu_times"] += 1
        return [dict(c) for c in self.per_cpu]

    def cpu_count(self) -> int:
        """Return ``ncpu``."""
        self.calls["cpu_count"] += 1
        return self.ncpu

    def memory(self) -> MemoryStats:
        """Return ``mem``."""
        self.calls["memory"] += 1
        return self.mem

    def swap(self) -> MemoryStats:
        """Return ``swap_stats``."""
        self.calls["swap"] += 1
        return self.swap_stats

    def disk_io(self) -> Mapping[str, DiskIO]:
        """Return ``disks``."""
        self.calls["disk_io"] += 1
        return dict(self.disks)

    def filesystems(self) -> Sequence[FilesystemUsage]:
        """Return ``mounts``."""
        self.calls["filesystems"] += 1
        return list(self.mounts)

    def network_io(self) -> Mapping[str, NetworkIO]:
        """Return ``nics``."""
        self.calls["network_io"] += 1
        return dict(self.nics)

    def connections(self) -> Mapping[tuple[str, str], int]:
        """Return ``conns``."""
        self.calls["connections"] += 1
        return dict(self.conns)

    def process(self) -> ProcessStats:
        """Return ``proc``."""
        self.calls["process"] += 1
        return self.proc

    def gc_stats(self) -> Sequence[GcGeneration]:
        """Return ``gc``."""
        self.calls["gc_stats"] += 1
        return list(self.gc)
