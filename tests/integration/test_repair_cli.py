"""order-repair on the real broker and registry: an order whose OrderCreated was dead-lettered (as the Fulfillment
Service does when the registry cannot resolve its schema id) ships once replayed, and once only however often
it is replayed; truncated and still-undecodable copies are never replayed; a spooled copy reaches its
dead-letter topic and leaves the spool."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from sqlalchemy import MetaData
from typer.testing import CliRunner

from events.settings import EventSettings
from events.topology import DEAD_LETTER_HEADERS, ORDER_EVENTS
from harness.orders import post_orders, wait_all_terminal
from harness.poison import OVERSIZED_BYTES, garbage, produce_raw
from harness.reconcile import ledger_requests, scan_fulfillment_events, scan_order_events, sqlite_path
from harness.system import make_system
from harness.topics import read_to_end, read_topic
from harness.waiting import wait_until
from messaging.avro_codec import wire_schema_id
from messaging.clients import make_consumer, make_producer
from messaging.dead_letter import PRODUCER_MAX_MESSAGE_BYTES, DeadLetterPublisher
from messaging.dead_letter_copy import dead_letter_copy
from messaging.dead_letter_spool import DeadLetterSpool, dead_letter_spool_table
from persistence.engine import make_engine
from repair.cli import app

pytestmark = pytest.mark.integration

H = DEAD_LETTER_HEADERS


def _settings(env: dict[str, str]) -> EventSettings:
    return EventSettings(
        **{name.lower(): value for name, value in env.items() if name.lower() in EventSettings.model_fields}
    )


def _repair(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run order-repair with the service's environment (its settings are read from there)."""
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def _end_offset(bootstrap_servers: str, topic: str) -> int:
    consumer = make_consumer(_settings({"KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}), "end-offset", "end-offset")
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        consumer.close()


def _groups(bootstrap_servers: str, expected: str) -> set[str] | None:
    """The consumer groups the broker knows, once it lists expected (a group that commits) among them."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})  # kept alive until the answer is in
    names = {group.group_id for group in admin.list_consumer_groups().result(10).valid}
    return names if expected in names else None


def test_a_dead_lettered_order_ships_once_however_often_it_is_replayed(stack, tmp_path: Path) -> None:
    system = make_system(
        stack.bootstrap_servers,
        stack.registry_url,
        tmp_path,
        PROVIDER_FAILURE_RATE="0",
        STALE_ORDER_SECONDS="3600",  # no republication: only the replay may bring the order back
    )
    env = system.env["fulfillment"]
    settings = _settings(env)
    dlq = settings.order_events_dlq_topic
    system.create_topics()
    system.orders.start()
    try:
        # The order's OrderCreated is dead-lettered and the fulfillment group's offset moved past it: what the
        # Fulfillment Service leaves behind when the registry could not resolve the record's schema id.
        (order_id,) = post_orders(system.orders.url, 1)
        (record,) = read_topic(system.bootstrap_servers, system.order_topic, stop=lambda rs: len(rs) >= 1, timeout=30)
        schema_id = wire_schema_id(record.value())
        publisher = DeadLetterPublisher(make_producer(settings, "dead-letterer"), dlq, H)
        publisher.publish_all([(record, "UnknownSchemaId", f"schema id {schema_id} is not in the registry")])
        group = make_consumer(settings, env["CONSUMER_GROUP"], "offset-mover")
        group.commit(offsets=[TopicPartition(system.order_topic, 0, record.offset() + 1)], asynchronous=False)
        group.close()
        # Two records the service dead-letters itself: one too large to copy whole, one garbage.
        produce_raw(
            system.bootstrap_servers,
            system.order_topic,
            [(b"oversized-poison", garbage(OVERSIZED_BYTES)), (b"small-poison", garbage(200))],
        )
        system.fulfillment.start()
        wait_until(lambda: system.dead_letters()["published"] == 2, 60, message="the poison to be dead-lettered")
        wait_until(lambda: system.fulfillment_health()["consumerLag"] == 0, 30, message="the consumer to catch up")
        assert httpx.get(f"{system.fulfillment.url}/api/fulfillment/orders/{order_id}").status_code == 404
        assert httpx.get(f"{system.orders.url}/api/orders/{order_id}").json()["status"] == "Pending"

        code, listed = _repair(env, "dlq", "list")
        assert code == 0, listed
        lines = listed.splitlines()
        assert lines[-1] == "3 record(s)"
        order_line = next(line for line in lines if order_id in line)
        assert "UnknownSchemaId" in order_line and f"{system.order_topic}[0]@{record.offset()}" in order_line
        assert " yes " in next(line for line in lines if "oversized-poison" in line)

        code, found = _repair(env, "dlq", "list", "--key", order_id, "--json")
        (copy,) = [json.loads(line) for line in found.splitlines()]
        assert (copy["errorType"], copy["originalOffset"], copy["truncated"]) == ("UnknownSchemaId", 0, False)
        code, shown = _repair(env, "dlq", "show", "--partition", "0", "--offset", str(copy["offset"]))
        assert code == 0, shown
        assert json.loads(shown)["event"]["orderId"] == order_id
        code, window = _repair(env, "dlq", "list", "--from-offset", "1", "--to-offset", "1")
        assert window.splitlines()[-1] == "1 record(s)"

        before = _end_offset(system.bootstrap_servers, system.order_topic)
        code, dry = _repair(env, "dlq", "replay", "--dry-run")
        assert code == 0, dry
        assert dry.splitlines()[-1] == "would replay 1, skipped 2, failed 0 of 3 selected (dry run: nothing produced)"
        assert _end_offset(system.bootstrap_servers, system.order_topic) == before

        for _ in range(2):
            code, replayed = _repair(env, "dlq", "replay")
            assert code == 0, replayed
            assert replayed.splitlines()[-1] == "replayed 1, skipped 2, failed 0 of 3 selected"
            assert "truncated copy" in replayed and "still cannot be processed: InvalidWireFormat" in replayed
        assert _end_offset(system.bootstrap_servers, system.order_topic) == before + 2
        names = wait_until(lambda: _groups(system.bootstrap_servers, env["CONSUMER_GROUP"]), 30, message="groups")
        assert not [name for name in names if name.startswith("order-repair")]  # the tool read, never committed

        final = wait_all_terminal(system.orders.url, [order_id], timeout=60)
        assert final[order_id]["status"] == "Fulfilled"
        wait_until(lambda: system.fulfillment_health()["consumerLag"] == 0, 30, message="both replays consumed")
    finally:
        system.stop()
    ledger = sqlite_path(env["PROVIDER_DATABASE_URL"])
    assert ledger_requests(ledger) == {order_id: 1}
    created = scan_order_events(
        read_to_end(system.bootstrap_servers, system.order_topic), system.registry_url, system.order_topic
    )
    assert created.copies[order_id] == 3  # the original and two replays
    fulfilled = scan_fulfillment_events(
        read_to_end(system.bootstrap_servers, system.fulfillment_topic), system.registry_url, system.fulfillment_topic
    )
    assert len(fulfilled.tracking[order_id]) == 1


def test_a_spooled_copy_reaches_its_dead_letter_topic_and_leaves_the_spool(stack, tmp_path: Path) -> None:
    system = make_system(stack.bootstrap_servers, stack.registry_url, tmp_path)  # for its names; never started
    system.create_topics()
    env = system.env["fulfillment"]
    dlq = env[ORDER_EVENTS.dead_letter_env]
    engine = make_engine(env["DATABASE_URL"])
    metadata = MetaData()
    table = dead_letter_spool_table(metadata)
    metadata.create_all(engine)
    (offset,) = produce_raw(system.bootstrap_servers, system.order_topic, [(b"spooled-poison", garbage(300))])
    (original,) = read_topic(system.bootstrap_servers, system.order_topic, stop=lambda rs: len(rs) >= 1, timeout=30)
    copy = dead_letter_copy(H, original, "InvalidWireFormat", "magic byte 255", PRODUCER_MAX_MESSAGE_BYTES)
    DeadLetterSpool(engine, table).add(dlq, [(copy, "TOPIC_AUTHORIZATION_FAILED: not authorised")])

    code, listed = _repair(env, "spool", "list")  # DATABASE_URL from the environment
    assert code == 0, listed
    assert "spooled-poison" in listed and "TOPIC_AUTHORIZATION_FAILED" in listed
    code, dry = _repair(env, "spool", "replay", "--dry-run")
    assert code == 0 and dry.startswith("would replay") and DeadLetterSpool(engine, table).count() == 1

    code, replayed = _repair(env, "spool", "replay")
    assert code == 0, replayed
    assert replayed.splitlines()[-1] == "replayed 1, skipped 0, failed 0 of 1 selected"
    assert DeadLetterSpool(engine, table).count() == 0
    (parked,) = read_topic(system.bootstrap_servers, dlq, stop=lambda rs: len(rs) >= 1, timeout=30)
    assert (parked.key(), parked.value()) == (b"spooled-poison", original.value())
    headers = {name: value.decode() for name, value in parked.headers() or []}
    assert (headers[H.original_offset], headers[H.error_type]) == (str(offset), "InvalidWireFormat")
