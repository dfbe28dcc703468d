"""order-events deleted and created again: every order published afterwards is still fulfilled, none skipped.

Three ways a consumer group can meet a recreated topic with a position from the old one:
- it was stopped while the topic was recreated, and a late commit of its previous run left the old offset
  on the new topic;
- its work finished, and its offsets were due for commit, after the recreation;
- it was running (here: frozen) and kept its in-memory position while the new topic grew past it.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition

from harness.orders import post_orders, wait_all_terminal
from harness.system import System, running_system
from harness.topic_admin import recreate_topic
from harness.waiting import wait_until
from messaging.consumer.start_offsets import commit_metadata

pytestmark = pytest.mark.integration


def end_offset(system: System) -> int:
    """The high watermark of order-events partition 0 (these systems run with one partition)."""
    consumer = Consumer({"bootstrap.servers": system.bootstrap_servers, "group.id": "end-offset-reader"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(system.order_topic, 0), timeout=10, cached=False)[1]
    finally:
        consumer.close()


def publish_after_recreation(system: System, count: int) -> list[str]:
    """Post count orders and wait until all of them are on the recreated order-events."""
    ids = post_orders(system.orders.url, count)
    wait_until(lambda: end_offset(system) >= count, 60, message=f"{count} orders on the recreated topic")
    return ids


def assert_all_fulfilled(system: System, ids: list[str]) -> None:
    final = wait_all_terminal(system.orders.url, ids, timeout=90)
    assert {o["status"] for o in final.values()} == {"Fulfilled"}
    wait_until(lambda: system.fulfillment_health()["consumerLag"] == 0, 30, message="the group to catch up")


@pytest.fixture
def steady_system(stack, tmp_path):
    with running_system(
        stack, tmp_path, PROVIDER_FAILURE_RATE="0", PROVIDER_CONTROL_ENABLED="true", PROVIDER_TIMEOUT_SECONDS="30"
    ) as system:
        yield system


def fulfil(system: System, count: int) -> None:
    ids = post_orders(system.orders.url, count)
    wait_all_terminal(system.orders.url, ids, timeout=90)
    wait_until(lambda: system.fulfillment_health()["consumerLag"] == 0, 30, message=f"the group to commit {count}")


def commit_late(system: System, offset: int, topic_id: str) -> None:
    """Commit offset for the fulfillment group as its previous run would have, had the commit arrived late
    (after the recreation): under the old topic's id. Kafka drops a group's offsets with the topic, so this
    is how a group comes to hold an old offset on a new topic."""
    group = system.env["fulfillment"]["CONSUMER_GROUP"]
    consumer = Consumer({"bootstrap.servers": system.bootstrap_servers, "group.id": group})
    try:
        late = TopicPartition(system.order_topic, 0, offset, commit_metadata(topic_id))
        consumer.commit(offsets=[late], asynchronous=False)
    finally:
        consumer.close()


def test_recreated_while_fulfillment_is_stopped(steady_system):
    system = steady_system
    fulfil(system, 20)
    system.fulfillment.stop()
    recreation = recreate_topic(system.bootstrap_servers, system.order_topic)
    after = publish_after_recreation(system, 30)  # more than the old committed offset (20)
    commit_late(system, 20, recreation.old_id)
    system.fulfillment.start()
    assert_all_fulfilled(system, after)


def test_recreated_while_orders_are_in_flight_then_stopped(steady_system):
    system = steady_system
    fulfil(system, 20)
    system.set_provider(minLatencyMs=5000, maxLatencyMs=5000)
    in_flight = post_orders(system.orders.url, 10)
    wait_until(lambda: system.fulfillment_health()["inFlight"] >= 10, 30, message="orders in the provider call")
    # Their work finishes, and their offsets (up to 30) are committed, after the topic is recreated.
    recreate_topic(system.bootstrap_servers, system.order_topic)
    wait_all_terminal(system.orders.url, in_flight, timeout=60)
    wait_until(lambda: system.fulfillment_health()["inFlight"] == 0, 30, message="the last commits")
    system.fulfillment.stop()
    after = publish_after_recreation(system, 40)  # more than the offsets committed for the old topic
    system.fulfillment.start()  # with the provider's usual latency again
    assert_all_fulfilled(system, after)


def test_recreated_under_a_running_consumer_that_grew_past_its_position(steady_system):
    system = steady_system
    fulfil(system, 10)
    with system.fulfillment.paused():  # shorter than the group's session timeout (10 s): it keeps its partition
        recreate_topic(system.bootstrap_servers, system.order_topic)
        after = publish_after_recreation(system, 15)  # past the consumer's position (10) before it fetches
    assert_all_fulfilled(system, after)
