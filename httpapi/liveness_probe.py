"""`python -m httpapi.liveness_probe [SERVICE]`: is the service in this container alive? Exit 0 yes, 1 no.

The container image's HEALTHCHECK (and the Fulfillment Service's Kubernetes liveness probe) runs it. Alive means
the process answers HTTP on its liveness route within the timeout: the Order Service's `GET /health/live` with
200 (order-service.yaml); the Fulfillment Service has no liveness route of its own, so any HTTP answer of its
`GET /api/fulfillment/health` counts (fulfillment-service.yaml: 200 ok or degraded, 503 with the database down,
which a restart would not cure). A refused or timed-out connection is not alive.

SERVICE is `order-service` or `fulfillment-service`; without it the probe reads the command of PID 1 (the
container's process, `/proc/1/cmdline`): `python -m order_service`, the `order-service` console script and
the same for fulfillment. Any other command (`python -m repair ...`) serves no HTTP and is reported alive.
The port is $PORT, else the service's default; the host is 127.0.0.1 (the services listen on HOST=0.0.0.0 in
the image). Only the standard library is imported, so a probe costs a fraction of a second.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_SECONDS = 4.0
PID1_CMDLINE = Path("/proc/1/cmdline")  # the container's process: NUL-separated words of its command line


@dataclass(frozen=True)
class Liveness:
    """Where a service answers whether it is alive: its default port (its settings' `port`) and route."""

    default_port: int
    path: str
    any_status: bool  # True: every HTTP status means alive; False: only 2xx


SERVICES: dict[str, Liveness] = {
    "order-service": Liveness(5001, "/health/live", any_status=False),
    "fulfillment-service": Liveness(5002, "/api/fulfillment/health", any_status=True),
}
# What PID 1's command line names for each service: its package (`python -m`) or its console script.
COMMAND_NAMES: dict[str, str] = {
    "order_service": "order-service",
    "fulfillment_service": "fulfillment-service",
    "order-service": "order-service",
    "fulfillment-service": "fulfillment-service",
}


def service_of(argv: list[str]) -> str | None:
    """The service a command line runs (`python -m order_service`, `/usr/local/bin/fulfillment-service`), or
    None for any other command."""
    if "-m" in argv[:-1]:
        return COMMAND_NAMES.get(argv[argv.index("-m") + 1])
    for word in argv[:2]:
        name = COMMAND_NAMES.get(Path(word).name)
        if name is not None:
            return name
    return None


def pid1_argv() -> list[str]:
    """PID 1's command line as its words ([] where /proc cannot be read)."""
    try:
        return [word for word in PID1_CMDLINE.read_bytes().decode(errors="replace").split("\0") if word]
    except OSError:
        return []


def is_alive(liveness: Liveness, port: int, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(alive, what was seen) for GET http://127.0.0.1:port<liveness.path>."""
    url = f"http://127.0.0.1:{port}{liveness.path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return True, f"{url}: {response.status}"
    except urllib.error.HTTPError as error:
        return liveness.any_status, f"{url}: {error.code}"
    except (OSError, ValueError) as error:
        return False, f"{url}: {error}"


def main(argv: list[str] | None = None) -> int:
    """Exit status of the probe: 0 alive (or nothing to probe), 1 not alive; one line on stdout says why."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        if args[0] not in SERVICES:
            print(f"unknown service {args[0]!r}; known: {', '.join(SERVICES)}")
            return 2
        name: str | None = args[0]
    else:
        name = service_of(pid1_argv())
    if name is None:
        print("no service runs here; nothing to probe")
        return 0
    liveness = SERVICES[name]
    alive, seen = is_alive(liveness, int(os.environ.get("PORT") or liveness.default_port))
    print(f"{name} {'alive' if alive else 'NOT alive'}: {seen}")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
