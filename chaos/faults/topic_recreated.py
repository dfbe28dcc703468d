"""topic-recreated: order-events deleted and created again under load, as an operator resetting the topic would.

The operator holds the writer still (the Order Service frozen with SIGSTOP: its POSTs wait, nothing is
refused), lets the fulfillment group catch up (so the deletion takes no unprocessed order with it), deletes
and recreates the topic, and lets the writer go; its backlog lands on the new, empty topic at once. The old
topic's records are read before it goes, so the reconciliation still finds every order published.

Meanwhile the Fulfillment Service does not fetch (frozen too, for less than its group session timeout, as
in a long pause of its process, so it keeps its partitions and its positions on the old topic) until the
new topic has grown past those positions. A consumer that carried on from its old positions would skip
every order below them; every order must still be fulfilled, once.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

from confluent_kafka import Consumer, TopicPartition

from chaos.run import Run
from chaos.scenario import Scenario
from events.topology import ORDER_EVENTS
from harness.reconcile import Reconciliation
from harness.topic_admin import recreate_topic
from harness.topics import read_to_end
from messaging.settings import KafkaSettings, kafka_client_config

# The fulfillment group's session timeout is 10 s (messaging.clients): frozen for less, it keeps its partitions.
_FULFILLMENT_FROZEN_MAX_S = 7.0


def _ends(kafka: KafkaSettings, topic: str, partitions: int) -> dict[int, int]:
    """The end offset (high watermark) of each partition of topic."""
    consumer = Consumer(kafka_client_config(kafka, **{"group.id": "chaos-end-offsets"}))
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def inject(run: Run) -> None:
    """Freeze the Order Service, let the group catch up, freeze the Fulfillment Service, recreate order-events,
    let the Order Service's backlog land past the consumer's old positions, continue the Fulfillment Service."""
    topic, bootstrap = run.system.order_topic, run.system.kafka
    run.state["log_mark"] = run.system.fulfillment.log_file.stat().st_size
    with run.fault(f"{topic} deleted and recreated under a paused consumer") as fault, ExitStack() as paused:
        with run.system.orders.paused():
            caught_up = run.poll(lambda: run.fulfillment_group_lag() == 0, timeout=20, interval=0.2)
            paused.enter_context(run.system.fulfillment.paused())
            frozen_at = time.monotonic()
            # The orders on the old topic go with it; the reconciliation still counts them as published.
            run.order_events_before = read_to_end(bootstrap, topic)
            partitions = run.partitions(topic)
            old_ends = _ends(bootstrap, topic, partitions)
            recreation = recreate_topic(bootstrap, topic, timeout=20)
        # The Order Service publishes its backlog; wait until it outgrows the old positions (bounded).
        grown = run.poll(
            lambda: all(end > old_ends[p] for p, end in _ends(bootstrap, topic, partitions).items()),
            timeout=max(1.0, _FULFILLMENT_FROZEN_MAX_S - (time.monotonic() - frozen_at)),
        )
        paused.close()  # the Fulfillment Service fetches again
        fault.evidence.append(f"topic id {recreation.old_id} -> {recreation.new_id}")
        fault.evidence.append(f"old end offsets {old_ends}, new ones {_ends(bootstrap, topic, partitions)}")
    run.check("the fulfillment group had consumed the old topic", bool(caught_up), "" if caught_up else "lag left")
    run.check("the topic was recreated (a new topic id)", recreation.new_id != recreation.old_id)
    run.check("the new topic outgrew the consumer's old positions before it fetched again", bool(grown))


def verify(run: Run, recon: Reconciliation) -> None:
    """The group caught up on the new topic. How the consumer noticed the new topic (an offset out of range,
    a changed topic id, or a fresh assignment) depends on timing; its warnings, if any, are kept as evidence."""
    run.check_group_caught_up("consumer lag on the recreated topic back to 0")
    log_file = run.system.fulfillment.log_file
    with log_file.open("rb") as handle:
        handle.seek(run.state["log_mark"])
        text = handle.read().decode(errors="replace")
    restarts = [line.split("positions: ", 1)[-1] for line in text.splitlines() if "consumer.positions" in line]
    run.faults[-1].evidence += [line[:300] for line in restarts[:4]] or ["no restart logged (a fresh assignment)"]


SCENARIO = Scenario(
    "topic-recreated",
    "order-events deleted and recreated under load, under a paused consumer",
    inject,
    env={ORDER_EVENTS.partitions_env: "2"},
    verify=verify,
)
