"""`make run`: Kafka, the Schema Registry and both services on the standard ports, until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from infra.fetch import FetchError
from infra.services import ROOT, ServiceProcess, ServiceStartError, fulfillment_service, order_service, service_env
from infra.stack import LocalStack, StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.run", description=__doc__)
    parser.add_argument("--dir", type=Path, default=ROOT / ".run", help="state, data and log directory")
    parser.add_argument("--order-port", type=int, default=5001)
    parser.add_argument("--fulfillment-port", type=int, default=5002)
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=9093)
    parser.add_argument("--registry-port", type=int, default=8081)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    stack = LocalStack(args.dir / "stack", args.kafka_port, args.controller_port, args.registry_port)
    env = service_env(stack.bootstrap_servers, stack.registry_url, args.dir / "data")
    logs = args.dir / "logs"
    services: list[ServiceProcess] = [
        order_service(args.order_port, env["order"], logs),
        fulfillment_service(args.fulfillment_port, env["fulfillment"], logs),
    ]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    started = time.monotonic()
    try:
        print("starting Kafka and the Schema Registry ...", flush=True)
        stack.start()
        for service in services:
            print(f"starting {service.module} ...", flush=True)
            service.start()
    except (StackError, FetchError, ServiceStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        _shutdown(services, stack)
        return 1
    except KeyboardInterrupt:
        _shutdown(services, stack)
        return 130

    orders, fulfillment = services
    print(
        f"\nready after {time.monotonic() - started:.0f}s\n"
        f"  Order Service        {orders.url}/api/orders   (Swagger UI {orders.url}/docs)\n"
        f"  Fulfillment Service  {fulfillment.url}/api/fulfillment/health   (Swagger UI {fulfillment.url}/docs)\n"
        f"  Kafka                {stack.bootstrap_servers}\n"
        f"  Schema Registry      {stack.registry_url}\n"
        f"  logs                 {logs}/ and {args.dir / 'stack'}/\n"
        "press Ctrl-C to stop everything",
        flush=True,
    )
    code = 0
    try:
        while not stop.wait(1.0):
            for name, running in [(s.module, s.running) for s in services] + [
                ("kafka", stack.broker.running),
                ("schema registry", stack.registry.running),
            ]:
                if not running:
                    print(f"error: {name} exited unexpectedly; see the logs", file=sys.stderr)
                    code = 1
                    stop.set()
    except KeyboardInterrupt:
        pass
    _shutdown(services, stack)
    return code


def _shutdown(services: list[ServiceProcess], stack: LocalStack) -> None:
    print("\nstopping ...", flush=True)
    for service in reversed(services):
        service.stop()
    stack.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
