"""A row that can never be published is parked with its reason and holds back only the later rows of its own
key; transient failures are retried; the repair functions list, retry and discard parked rows.

The relay runs against librdkafka's built-in mock cluster (a real producer, so a record over message.max.bytes
is refused as librdkafka refuses it) and a temporary SQLite outbox; the codec is a stand-in without registry.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from sqlalchemy import Engine, Table, insert, select

from harness.waiting import wait_until
from messaging.avro_codec import RegistryUnavailable, UnencodableEvent
from messaging.registry import SchemaNotRegistered, SchemaRefused, refused_fields
from observability.metrics import Metrics
from outbox.claims import OutboxClaims
from outbox.failures import classify, classify_delivery
from outbox.metrics import report_outbox_health
from outbox.parking import discard_parked, list_parked, outbox_health, retry_parked
from outbox.relay import OutboxRelay
from tests.unit import outbox_stand_ins
from tests.unit.outbox_stand_ins import TOPIC, StandInCodec

APICURIO_409 = (
    "io.apicurio.registry.rules.RuleViolationException: Incompatible artifact: order-events-value [AVRO], "
    "num of incompatible diffs: {1}, list of diff types: [customerName at /fields/5]"
)
CONFLUENT_409 = (
    'Schema being registered is incompatible with an earlier schema for subject "order-events-value", details: '
    "[{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'loyaltyTier' at path "
    "'/fields/8' in the new schema has no default value and is missing in the old schema', "
    "additionalInfo:'loyaltyTier'}]"
)


# -- classification ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (RegistryUnavailable("connection refused"), False),
        (BufferError("Local: Queue full"), False),
        (KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT)), False),
        (KafkaException(KafkaError(KafkaError._TRANSPORT)), False),
        (KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)), False),
        (TimeoutError("slow"), False),
        (UnencodableEvent("ValueError: not a decimal"), True),
        (SchemaRefused("order-events-value", 409, APICURIO_409), True),
        (SchemaRefused("order-events-value", 422, "Invalid schema"), True),
        # AUTO_REGISTER_SCHEMAS=false and not registered yet: the pipeline's registration cures it; rows wait.
        (SchemaNotRegistered("order-events-value", "Schema not found"), False),
        (KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)), True),
        (KafkaException(KafkaError(KafkaError.RECORD_LIST_TOO_LARGE)), True),
        (KafkaException(KafkaError(KafkaError.INVALID_RECORD)), True),
    ],
)
def test_failures_are_permanent_only_when_waiting_cannot_cure_them(exc: BaseException, permanent: bool) -> None:
    failure = classify(exc)
    assert failure.permanent is permanent
    assert failure.reason.startswith(type(exc).__name__.replace("Exception", "Error"))


def test_delivery_reports_are_classified_by_their_error_code() -> None:
    too_large = classify_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert too_large.permanent and "MSG_SIZE_TOO_LARGE" in too_large.reason
    assert not classify_delivery(KafkaError(KafkaError._MSG_TIMED_OUT)).permanent


def test_registry_refusals_name_their_fields_in_either_registrys_wording() -> None:
    assert refused_fields(APICURIO_409) == ["customerName"]
    assert refused_fields(CONFLUENT_409) == ["loyaltyTier"]
    assert refused_fields("Invalid schema") == []
    assert SchemaRefused("s", 409, APICURIO_409).fields == ["customerName"]


# -- the relay -------------------------------------------------------------------------------------


outbox = outbox_stand_ins.outbox
mock_cluster = outbox_stand_ins.mock_cluster


def add(engine: Engine, table: Table, key: str, text: str, created_at: float = 1.0) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(table).values(
                topic=TOPIC,
                key=key,
                event_type="Event",
                payload=json.dumps({"text": text}),
                created_at=created_at,
            )
        )


def published(servers: str, count: int) -> list[tuple[str, str]]:
    consumer = Consumer({"bootstrap.servers": servers, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    consumer.subscribe([TOPIC])
    seen: list[tuple[str, str]] = []

    def enough() -> bool:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            seen.append((message.key().decode(), message.value()[:40].decode()))
        return len(seen) >= count

    try:
        wait_until(enough, 30, interval=0, message=f"{count} records")
    finally:
        consumer.close()
    return seen


def remaining(engine: Engine, table: Table) -> list[tuple[str, str, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.key, table.c.payload, table.c.parked_at).order_by(table.c.id)).all()
    return [(r.key, json.loads(r.payload)["text"][:20], r.parked_at is not None) for r in rows]


def make_relay(
    engine: Engine, table: Table, servers: str, codec: StandInCodec, metrics: Metrics | None = None
) -> OutboxRelay:
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True, "linger.ms": 5, "log_level": 0})
    codecs: Any = {"Event": codec}
    return OutboxRelay(engine, table, producer, codecs, batch_size=50, idle_poll_seconds=0.05, metrics=metrics)


def test_the_relay_observes_publish_latency_and_metrics_read_the_outbox_when_scraped(outbox, mock_cluster) -> None:
    engine, table = outbox
    written = time.time() - 2.0  # rows that waited two seconds for the relay
    for i in range(5):
        add(engine, table, f"k{i}", f"ok-{i}", created_at=written)
    add(engine, table, "p", "unencodable", created_at=written)
    metrics = Metrics()
    relay = make_relay(engine, table, mock_cluster, StandInCodec(), metrics)
    report_outbox_health(metrics, relay.health)
    relay.start()
    try:
        assert len(published(mock_cluster, 5)) == 5
        latency = "outbox_publish_latency_seconds"
        wait_until(lambda: metrics.sample(f"{latency}_count", topic=TOPIC) == 5, 10, message="five confirmations")
        assert metrics.sample(f"{latency}_bucket", topic=TOPIC, le="1.0") == 0  # each waited two seconds at least
        assert metrics.sample(f"{latency}_bucket", topic=TOPIC, le="30.0") == 5
        assert 10.0 <= (metrics.sample(f"{latency}_sum", topic=TOPIC) or 0) < 150.0
        wait_until(lambda: relay.health().parked == 1, 10, message="the unencodable row to be parked")
        scraped = metrics.exposition().decode()  # read from the database now, not polled before
        assert "orderprocessing_outbox_backlog_events 0.0" in scraped
        assert "orderprocessing_outbox_parked_events 1.0" in scraped
        assert "orderprocessing_outbox_oldest_unpublished_age_seconds 0.0" in scraped
        add(engine, table, "p", "behind the parked row", created_at=time.time() - 60)
        assert metrics.sample("outbox_backlog_events") == 1
        assert 59.0 <= (metrics.sample("outbox_oldest_unpublished_age_seconds") or 0) < 120.0
    finally:
        relay.stop()


def test_unpublishable_rows_are_parked_and_hold_back_only_their_own_key(outbox, mock_cluster) -> None:
    engine, table = outbox
    big = "x" * 1_200_000  # over the producer's message.max.bytes (1,000,000): librdkafka refuses it
    add(engine, table, "a", "unencodable")
    add(engine, table, "b", big)
    add(engine, table, "a", "a-second")  # behind a's parked row: must wait, not overtake it
    for i in range(18):
        add(engine, table, f"k{i}", f"ok-{i}")
    add(engine, table, "b", "b-second")
    relay = make_relay(engine, table, mock_cluster, StandInCodec())
    relay.start()
    try:
        assert sorted(published(mock_cluster, 18)) == sorted((f"k{i}", f"ok-{i}") for i in range(18))
        wait_until(lambda: relay.backlog() == 2, 10, message="only the rows behind the parked ones to wait")
        assert remaining(engine, table) == [
            ("a", "unencodable", True),
            ("b", "x" * 20, True),
            ("a", "a-second", False),
            ("b", "b-second", False),
        ]
        parked = list_parked(engine, table)
        assert [(p.key, p.rows_behind, p.attempts) for p in parked] == [("a", 1, 1), ("b", 1, 1)]
        assert parked[0].failure_reason is not None and parked[0].failure_reason.startswith("UnencodableEvent")
        assert parked[1].failure_reason is not None and "MSG_SIZE_TOO_LARGE" in parked[1].failure_reason
        health = relay.health()
        assert (health.backlog, health.parked) == (2, 2)
        assert health.oldest_parked_reason == parked[0].failure_reason

        # Retried without a fix: parked again, one more attempt on record.
        assert retry_parked(engine, table, parked[0].id)
        wait_until(
            lambda: [p.attempts for p in list_parked(engine, table)] == [2, 1], 10, message="the retry to fail again"
        )
        assert not retry_parked(engine, table, 10_000)  # no such parked row

        # Discarded: the rows behind it go out, in their order.
        for row in parked:
            discarded = discard_parked(engine, table, row.id)
            assert discarded is not None and discarded.key == row.key
        assert discard_parked(engine, table, parked[0].id) is None
        everything = published(mock_cluster, 20)
        assert {("a", "a-second"), ("b", "b-second")} <= set(everything) and len(set(everything)) == 20
        wait_until(lambda: remaining(engine, table) == [], 10, message="the outbox to empty")
    finally:
        relay.stop()


def test_transient_failures_retry_with_their_attempts_counted_and_age_shown(outbox, mock_cluster) -> None:
    engine, table = outbox
    codec = StandInCodec()
    codec.registry_down = True
    add(engine, table, "r", "registry-down", created_at=1.0)
    add(engine, table, "s", "after-it", created_at=2.0)
    relay = make_relay(engine, table, mock_cluster, codec)
    relay.start()
    try:

        def attempts() -> int:
            with engine.connect() as conn:
                return int(conn.execute(select(table.c.attempts).where(table.c.key == "r")).scalar_one())

        wait_until(lambda: attempts() >= 2, 15, message="the row to be tried again")
        health = outbox_health(engine, table, clock=lambda: 101.0)
        assert (health.backlog, health.parked, health.oldest_unpublished_age_s) == (2, 0, 100.0)
        assert all(not parked for _key, _text, parked in remaining(engine, table))
        codec.registry_down = False
        assert sorted(published(mock_cluster, 2)) == [("r", "registry-down"), ("s", "after-it")]
        wait_until(lambda: relay.backlog() == 0, 10, message="the outbox to empty")
    finally:
        relay.stop()


def test_claims_skip_parked_rows_and_the_later_rows_of_their_key_only(outbox) -> None:
    engine, table = outbox
    for key in ("a", "b", "a", "c", "a"):
        add(engine, table, key, key)
    claims = OutboxClaims(engine, table, "me:1:1.00")
    claims.park([3], "KafkaError MSG_SIZE_TOO_LARGE")  # a's second row; its first (id 1) came before it
    assert [row.id for row in claims.claim(limit=10, lease_seconds=30)] == [1, 2, 4]
    assert claims.backlog() == 4
    assert outbox_health(engine, table).oldest_parked_reason == "KafkaError MSG_SIZE_TOO_LARGE"
