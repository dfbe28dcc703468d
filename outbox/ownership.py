"""Who holds an outbox claim: `host:pid:start time`, so a relay can tell a dead owner from a live one.

The owner of this process is computed on first use, not at import (psutil reads /proc; tools that only
import the package never pay for it).
"""

from __future__ import annotations

import functools
import os
import socket

import psutil


@functools.cache
def current_owner() -> str:
    """This process as a claim owner: `<hostname>:<pid>:<process start time, epoch s with 2 decimals>`."""
    started = psutil.Process(os.getpid()).create_time()
    return f"{socket.gethostname()}:{os.getpid()}:{started:.2f}"


def owner_is_gone(owner: str) -> bool:
    """True only when owner certainly no longer runs: same host, and its pid is dead or now another process.

    An owner on another host, or a string that is not an owner, is never gone: its leases expire on their own.
    """
    try:
        host, pid, started = owner.rsplit(":", 2)
        pid_number, started_at = int(pid), float(started)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    try:
        return abs(psutil.Process(pid_number).create_time() - started_at) > 0.05
    except psutil.NoSuchProcess:
        return True
