"""TCP ports on the loopback interface: picking a free one, and probing whether one is bound or answering."""

from __future__ import annotations

import errno
import random
import socket
from pathlib import Path

HOST = "127.0.0.1"

# Free ports are picked from here up to the start of the kernel's ephemeral range.
_PORT_FLOOR = 20000


def free_port(host: str = HOST) -> int:
    """A TCP port on host that is free right now (an int in 1..65535).

    Picked below the kernel's ephemeral range when there is room: a client reconnecting to
    a stopped broker on an ephemeral port can be handed that very port as its source port
    (a TCP self-connect), and the broker could then not bind it again on restart.
    """
    ephemeral_start = _ephemeral_range_start()
    if ephemeral_start - _PORT_FLOOR >= 1000:
        for _ in range(100):
            port = random.randrange(_PORT_FLOOR, ephemeral_start)
            if bind_succeeds(port, host, reuse_addr=False):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports_in_a_row(count: int, host: str = HOST) -> int:
    """The first of count consecutive TCP ports on host that are all free right now (e.g. WORKER_METRICS_PORT for
    count workers)."""
    while True:
        first = free_port(host)
        if all(bind_succeeds(first + offset, host, reuse_addr=False) for offset in range(1, count)):
            return first


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def bind_succeeds(port: int, host: str = HOST, *, reuse_addr: bool = True) -> bool:
    """Whether a server socket could bind port now; raises OSError for any failure but "address in use".

    reuse_addr matches the JVMs' server sockets: a port in TIME_WAIT from our own last run counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse_addr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def port_accepts(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on port (0.5 s connect timeout)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
