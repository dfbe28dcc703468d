"""Create latency with Kafka up, with the broker stopped and with the registry stopped.

`python -m bench.outage [--rate 100] [--seconds 20]`: one stack, both services, an open-loop load per
phase; afterwards it waits until the outbox has published every accepted order's event.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from harness.load import LoadSpec, run_load
from harness.orders import post_orders, wait_all_terminal
from harness.percentiles import latency_summary
from harness.system import make_system
from harness.waiting import wait_until
from infra.stack import LocalStack


def main(argv: list[str] | None = None) -> int:
    """Measure the three phases and print the table; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench.outage", description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        stack = LocalStack.ephemeral(directory / "stack")
        stack.start()
        system = make_system(stack.bootstrap_servers, stack.registry_url, directory)
        system.start()
        try:
            wait_all_terminal(system.orders.url, post_orders(system.orders.url, 10), timeout=60)  # warm up
            rows = []
            for phase in ("kafka up", "broker stopped", "registry stopped"):
                if phase == "broker stopped":
                    stack.broker.stop()
                if phase == "registry stopped":
                    stack.broker.start()
                    stack.registry.stop()
                spec = LoadSpec(
                    url=system.orders.url, rate=args.rate, duration=args.seconds, connections=64, tag=phase.split()[0]
                )
                result = run_load(spec, directory / f"{phase.replace(' ', '-')}.pickle")
                ms = latency_summary(result.ok_latencies())
                figures = [math.nan if ms[q] is None else ms[q] for q in ("p50", "p95", "p99", "max")]
                rows.append((phase, result.sent, result.ok, *figures))
            stack.registry.start()
            backlog = wait_until(
                lambda: system.order_readiness(timeout=10)["outboxBacklog"] == 0,
                120,
                interval=0.5,
                message="the outbox to drain",
            )
            print(f"outbox drained: {backlog}")
            print(f"\ncreate latency at {args.rate:g} orders/s, {args.seconds:g} s per phase (open loop, ms)\n")
            print("| phase | sent | 201 | P50 | P95 | P99 | max |\n| --- | --- | --- | --- | --- | --- | --- |")
            for phase, sent, ok_count, p50, p95, p99, top in rows:
                print(f"| {phase} | {sent} | {ok_count} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {top:.1f} |")
        finally:
            system.stop()
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
