"""rebalance-kill: a second Fulfillment Service instance joins; the first is SIGKILLed during the rebalance."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from chaos.run import Run
from chaos.scenario import Scenario
from events.topology import ORDER_EVENTS
from harness.reconcile import Reconciliation
from infra.ports import free_port
from infra.services import fulfillment_service


def _log_since(path: Path, offset: int) -> str:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


def inject(run: Run) -> None:
    """Start a second instance and SIGKILL the first at the first sign of the rebalance."""
    first = run.system.fulfillment
    second = fulfillment_service(free_port(), run.system.env["fulfillment"], run.system.data_dir / "logs")
    run.services.append(second)
    mark = first.log_file.stat().st_size

    def lines(path: Path, offset: int, word: str) -> list[str]:
        # The rebalance logger's lines, as plain text ("...concurrent_consumer: assigned [...]") or JSON
        # ("logger": "...concurrent_consumer", "event": "assigned [...]"); returned as "<logger>: <event>".
        found = []
        for line in _log_since(path, offset).splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if str(record.get("logger", "")).endswith("concurrent_consumer"):
                        line = f"{record['logger']}: {record.get('event', '')}"
            if f"concurrent_consumer: {word}" in line:
                found.append(line)
        return found

    with run.fault("second fulfillment instance joins; the first is SIGKILLed mid-rebalance") as fault:
        second.start()
        # The rebalance is under way once the newcomer has joined (its first, empty, cooperative assignment)
        # or the first instance starts giving partitions up; kill at the first sign of either.
        trigger = run.poll(
            lambda: (lines(second.log_file, 0, "assigned") + lines(first.log_file, mark, "revoked"))[:1],
            timeout=30,
            interval=0.01,
        )
        first.kill()
        newcomer_owned = [line for line in lines(second.log_file, 0, "assigned") if "assigned []" not in line]
        fault.evidence.append(f"killed on: {trigger[0].split(': ', 1)[-1] if trigger else None}")
        fault.evidence.append(f"first instance had finished revoking: {bool(lines(first.log_file, mark, 'revoked'))}")
        fault.evidence.append(f"newcomer owned partitions yet: {bool(newcomer_owned)}")
    run.check(
        "the kill landed in a rebalance (newcomer joined, not yet given partitions)",
        bool(trigger) and not newcomer_owned,
        "; ".join(fault.evidence),
    )


def verify(run: Run, recon: Reconciliation) -> None:
    """The topic has partitions to share, and the group caught up afterwards."""
    consumer_topics = run.partitions(run.system.order_topic)
    run.check(f"{run.system.order_topic} has >= 2 partitions", consumer_topics >= 2, f"{consumer_topics} partitions")
    run.check_group_caught_up("the group's lag back to 0")


SCENARIO = Scenario(
    "rebalance-kill",
    "two fulfillment instances, one SIGKILLed during a rebalance",
    inject,
    # Topics are created by the services at start-up: both need the partition count from the start.
    env={ORDER_EVENTS.partitions_env: "4"},
    verify=verify,
)
