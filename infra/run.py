"""`make run`: Kafka, the Schema Registry and both services on the standard ports, until Ctrl-C.

Each service's output goes to its log file under <dir>/logs and, line by line, to the terminal prefixed with the
service's name as compose shows it (``order-service        | ...``); Kafka and the registry log to their files
only. The ports are options (`make run ORDER_PORT=6001 ...` passes them).

``python -m infra.run --stack-only`` runs Kafka and the Schema Registry alone (for services started
elsewhere, e.g. from an IDE). Everything started is watched by one supervise loop: when a process
exits on its own the end of its log is printed and everything else is stopped (exit status 1).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from infra.broker import DEFAULT_CONTROLLER_PORT, DEFAULT_KAFKA_PORT
from infra.fetch import FetchError
from infra.jvm import StackError
from infra.prefixed_output import Terminal
from infra.registry import DEFAULT_REGISTRY_PORT
from infra.services import ROOT, ServiceProcess, ServiceStartError, fulfillment_service, order_service, service_env
from infra.stack import LocalStack
from infra.supervision import Supervised, supervise


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: ports, the state directory and --stack-only."""
    parser = argparse.ArgumentParser(prog="python -m infra.run", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=ROOT / ".run", help="state, data and log directory")
    parser.add_argument("--order-port", type=int, default=5001)
    parser.add_argument("--fulfillment-port", type=int, default=5002)
    parser.add_argument("--kafka-port", type=int, default=DEFAULT_KAFKA_PORT)
    parser.add_argument("--controller-port", type=int, default=DEFAULT_CONTROLLER_PORT)
    parser.add_argument("--registry-port", type=int, default=DEFAULT_REGISTRY_PORT)
    parser.add_argument("--stack-only", action="store_true", help="only Kafka and the Schema Registry")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start everything, wait for Ctrl-C/SIGTERM or a process dying, stop everything; the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    stack = LocalStack(args.dir / "stack", args.kafka_port, args.controller_port, args.registry_port)
    logs = args.dir / "logs"
    services: list[ServiceProcess] = []
    if not args.stack_only:
        # The services' output reaches a person through the prefixes: plain text when this runs on a terminal
        # (the services themselves see a pipe, which means JSON), unless LOG_FORMAT says otherwise.
        console = {"LOG_FORMAT": "console"} if sys.stdout.isatty() and "LOG_FORMAT" not in os.environ else {}
        env = service_env(stack.bootstrap_servers, stack.registry_url, args.dir / "data", **console)
        services = [
            order_service(args.order_port, env["order"], logs),
            fulfillment_service(args.fulfillment_port, env["fulfillment"], logs),
        ]
        terminal = Terminal(sys.stdout, [service.label for service in services])
        for service in services:
            service.echo = terminal.sink(service.label)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _interrupt)  # unwinds a start-up like Ctrl-C, so what started is stopped

    started = time.monotonic()
    try:
        print(f"starting Kafka and the Schema Registry in {stack.directory} ...", flush=True)
        stack.start()
        for service in services:
            print(f"starting {service.module} ...", flush=True)
            service.start()
    except (StackError, FetchError, ServiceStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        _shutdown(services, stack)
        return 1
    except KeyboardInterrupt:
        print("interrupted during startup", file=sys.stderr)
        _shutdown(services, stack)
        return 130
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    print(f"\nready after {time.monotonic() - started:.0f}s", flush=True)
    if services:
        orders, fulfillment = services
        print(
            f"  Order Service        {orders.url}/api/orders   (Swagger UI {orders.url}/docs)\n"
            f"  Fulfillment Service  {fulfillment.url}/api/fulfillment/health   (Swagger UI {fulfillment.url}/docs)\n"
            f"  metrics              {orders.url}/metrics   {fulfillment.url}/metrics",
            flush=True,
        )
    print(
        f"  Kafka                {stack.bootstrap_servers}\n"
        f"  Schema Registry      {stack.registry_url}\n"
        f"  logs                 {f'{logs}/ and ' if services else ''}{stack.directory}/\n"
        "press Ctrl-C to stop everything",
        flush=True,
    )
    watched: list[Supervised] = [*services, stack.broker, stack.registry]
    code = 0
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop everything, exit 0
        code = supervise(watched, stop)
    _shutdown(services, stack)
    return code


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _shutdown(services: list[ServiceProcess], stack: LocalStack) -> None:
    print("\nstopping ...", flush=True)
    for service in reversed(services):
        service.stop()
    stack.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
