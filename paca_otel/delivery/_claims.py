"""Who holds an outbox claim: ids unique per process, and whether a holder is certainly gone.

A dispatcher claims outbox rows under an owner id (see :meth:`Outbox.claim`). The lease bounds
how long a dead worker's claims block its rows; this module shortens that in the common case,
a worker killed (SIGKILL, OOM) and restarted on the same machine: the restarted worker sees
that the holder's process no longer exists and takes the rows back at once.

An owner id is ``PID-TOKEN@DOMAIN``. The token tells apart dispatchers of one process (and a
forked child from its parent); the domain names where the pid means something: a hash of the
kernel's boot id and the pid namespace (``/proc/self/ns/pid``). Only a process in the same
domain judges a holder, and only "gone" when no process has that pid there, which cannot be
wrong: pids are unique within a namespace for as long as the process (even a zombie) exists.
A reused pid makes a dead holder look alive, the safe mistake: its rows wait for the lease.
Without ``/proc`` (macOS, Windows) ids carry no domain and claims simply lapse with the lease.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

__all__ = ["holder_is_gone", "new_owner"]

_domains: dict[int, str | None] = {}


def _domain() -> str | None:
    """This process's pid domain (boot id + pid namespace), ``None`` where unknown."""
    pid = os.getpid()
    if pid not in _domains:
        try:
            # bytes.decode("ascii") needs no codec module; read_text(encoding="ascii") imports
            # encodings.ascii on first use, on the dispatcher's thread: a pre-fork server
            # forking meanwhile leaves that module's import lock held forever in the child.
            boot = Path("/proc/sys/kernel/random/boot_id").read_bytes().decode("ascii").strip()
            namespace = os.readlink("/proc/self/ns/pid")
        except (OSError, UnicodeDecodeError):
            _domains[pid] = None
        else:
            _domains[pid] = hashlib.sha256(f"{boot}|{namespace}".encode()).hexdigest()[:12]
    return _domains[pid]


def new_owner() -> str:
    """A fresh owner id for a dispatcher of this process."""
    domain = _domain()
    owner = f"{os.getpid()}-{secrets.token_hex(6)}"
    return f"{owner}@{domain}" if domain else owner


def holder_is_gone(owner: str) -> bool:
    """Whether the process behind ``owner`` certainly no longer exists.

    ``False`` whenever that cannot be known: another machine, boot or pid namespace, an id
    without a domain, or a pid that exists (possibly reused by an unrelated process).
    """
    head, sep, domain = owner.partition("@")
    if not sep or domain != _domain():
        return False
    try:
        pid = int(head.split("-", 1)[0])
    except ValueError:
        return False
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the pid exists (Linux: a /proc domain)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        return False
    return False
