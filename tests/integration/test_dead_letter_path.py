"""The dead-letter path on the real broker and registry: a poison record too large to copy as it is, or a
dead-letter topic that does not exist (or cannot), never stops the orders behind it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.topology import DEAD_LETTER_HEADERS, ORDER_EVENTS
from harness.orders import post_orders, wait_all_terminal
from harness.poison import OVERSIZED_BYTES, garbage, produce_raw
from harness.system import System, make_system
from harness.topics import read_topic
from harness.waiting import wait_until
from messaging.dead_letter import PRODUCER_MAX_MESSAGE_BYTES

pytestmark = pytest.mark.integration

H = DEAD_LETTER_HEADERS
VALID_ORDERS = 5


def _headers(record) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers() or []}


@pytest.fixture
def topics_left_to_the_operator(stack, tmp_path: Path) -> Iterator[System]:
    """Both services with CREATE_TOPICS=false, the event topics created beforehand, the dead-letter topics not."""
    system = make_system(stack.bootstrap_servers, stack.registry_url, tmp_path, CREATE_TOPICS="false")
    system.create_topics(dead_letters=False)
    system.start()
    try:
        yield system
    finally:
        system.stop()


def test_an_oversized_poison_record_is_dead_lettered_truncated_and_the_orders_behind_it_go_on(system):
    poison = garbage(OVERSIZED_BYTES)
    (offset,) = produce_raw(system.bootstrap_servers, system.order_topic, [(b"oversized-poison", poison)])
    valid = post_orders(system.orders.url, VALID_ORDERS)  # behind the poison record in the one partition

    final = wait_all_terminal(system.orders.url, valid, timeout=60)
    assert {o["status"] for o in final.values()} <= {"Fulfilled", "Failed"}

    dlq = system.env["fulfillment"][ORDER_EVENTS.dead_letter_env]
    parked = read_topic(system.bootstrap_servers, dlq, stop=lambda rs: len(rs) >= 1, timeout=30)
    (copy,) = [r for r in parked if r.key() == b"oversized-poison"]
    headers = _headers(copy)
    assert headers[H.truncated] == "true"
    assert headers[H.original_size] == str(OVERSIZED_BYTES)
    assert headers[H.error_type] == "InvalidWireFormat"
    assert (headers[H.original_topic], headers[H.original_offset]) == (system.order_topic, str(offset))
    assert headers[H.original_partition] == "0"
    assert int(headers[H.original_timestamp]) > 0
    assert poison.startswith(copy.value())
    assert len(copy.value()) < PRODUCER_MAX_MESSAGE_BYTES
    wait_until(
        lambda: system.fulfillment_health()["consumerLag"] == 0, 30, message="the consumer to commit past the poison"
    )
    assert system.dead_letters() == {"published": 1, "spooled": 0}


def test_a_missing_dead_letter_topic_is_created_and_the_orders_behind_the_poison_go_on(topics_left_to_the_operator):
    system = topics_left_to_the_operator
    dlq = system.env["fulfillment"][ORDER_EVENTS.dead_letter_env]
    produce_raw(system.bootstrap_servers, system.order_topic, [(b"small-poison", garbage(200))])
    valid = post_orders(system.orders.url, VALID_ORDERS)

    wait_all_terminal(system.orders.url, valid, timeout=60)
    parked = read_topic(system.bootstrap_servers, dlq, stop=lambda rs: len(rs) >= 1, timeout=30)
    assert [r.key() for r in parked] == [b"small-poison"]
    assert _headers(parked[0])[H.error_type] == "InvalidWireFormat"
    wait_until(lambda: system.fulfillment_health()["consumerLag"] == 0, 30, message="the consumer to move on")
    assert system.dead_letters() == {"published": 1, "spooled": 0}


def test_a_dead_letter_topic_that_cannot_be_created_is_replaced_by_the_local_spool(stack, tmp_path: Path):
    # Topic names are at most 249 characters: the broker refuses to create this one (INVALID_TOPIC_EXCEPTION).
    uncreatable = "dlq-" + "x" * 250
    system = make_system(
        stack.bootstrap_servers, stack.registry_url, tmp_path, CREATE_TOPICS="false", ORDER_EVENTS_DLQ_TOPIC=uncreatable
    )
    system.create_topics(dead_letters=False)
    system.start()
    try:
        poison = garbage(OVERSIZED_BYTES)
        produce_raw(system.bootstrap_servers, system.order_topic, [(b"spooled-poison", poison)])
        valid = post_orders(system.orders.url, VALID_ORDERS)

        wait_all_terminal(system.orders.url, valid, timeout=60)
        wait_until(lambda: system.dead_letters()["spooled"] == 1, 30, message="the poison record to be spooled")
        assert system.dead_letters()["published"] == 0
        assert system.fulfillment_health()["status"] == "ok"
    finally:
        system.stop()
    with sqlite3.connect(tmp_path / "fulfillment-service.db") as db:
        rows = db.execute("SELECT dead_letter_topic, record_key, length(record_value), headers FROM dead_letter_spool")
        ((topic, key, size, headers),) = rows.fetchall()
    assert (topic, key) == (uncreatable, b"spooled-poison")
    assert size < PRODUCER_MAX_MESSAGE_BYTES  # the same truncated copy the topic would have had
    assert [H.original_size, str(OVERSIZED_BYTES)] in json.loads(headers)
