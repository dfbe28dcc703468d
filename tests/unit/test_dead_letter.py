"""The dead-letter path never loops on a poison record: a copy too large for the producer is cut to fit, a
missing dead-letter topic is created, what the topic refuses for good is spooled in the service's database, and
only an outage (broker away, timeouts) makes the batch be read again."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from sqlalchemy import MetaData

from events.topology import DEAD_LETTER_HEADERS
from messaging.dead_letter import PRODUCER_MAX_MESSAGE_BYTES, DeadLetterError, DeadLetterPublisher
from messaging.dead_letter_copy import dead_letter_copy, record_size
from messaging.dead_letter_spool import DeadLetterSpool, dead_letter_spool_table
from observability.metrics import Metrics
from persistence.engine import make_engine

H = DEAD_LETTER_HEADERS
POISON_BYTES = 1_010_000  # accepted by the broker (1 MiB + 12 by default), above the producer's 1,000,000


def _message(value: bytes | None = b"\x01garbage", key: bytes | None = b"order-1", offset: int = 7) -> Message:
    return Message(topic="order-events", partition=2, offset=offset, key=key, value=value, timestamp=(1, 1_700))


# -- truncation ---------------------------------------------------------------------------------------------


def test_a_record_that_fits_is_copied_byte_for_byte() -> None:
    message = _message(b"\x01" + b"x" * 5_000)
    copy = dead_letter_copy(H, message, "InvalidWireFormat", "magic byte 1", PRODUCER_MAX_MESSAGE_BYTES)
    assert (copy.key, copy.value, copy.truncated) == (message.key(), message.value(), False)
    assert copy.header(H.truncated) == "false"
    assert copy.header(H.original_size) == "5001"


def test_a_record_too_large_for_the_producer_is_cut_to_fit_with_its_size_in_headers() -> None:
    value = bytes(range(256)) * (POISON_BYTES // 256) + b"\x00" * (POISON_BYTES % 256)
    copy = dead_letter_copy(H, _message(value), "InvalidWireFormat", "magic byte 0", PRODUCER_MAX_MESSAGE_BYTES)
    assert copy.truncated
    assert copy.key == b"order-1"  # the key stays whole: it names the order
    assert copy.value is not None and value.startswith(copy.value)
    assert 990_000 < len(copy.value) < PRODUCER_MAX_MESSAGE_BYTES
    assert record_size(copy.key, copy.value, copy.headers) <= PRODUCER_MAX_MESSAGE_BYTES
    assert copy.header(H.original_size) == str(POISON_BYTES)
    assert copy.header(H.truncated) == "true"
    assert copy.header(H.error_type) == "InvalidWireFormat"
    assert (copy.header(H.original_topic), copy.header(H.original_partition)) == ("order-events", "2")
    assert (copy.header(H.original_offset), copy.header(H.original_timestamp)) == ("7", "1700")


def test_an_oversized_key_is_cut_too() -> None:
    copy = dead_letter_copy(H, _message(b"v" * 10, key=b"k" * POISON_BYTES), "InvalidEvent", "x", 1_000_000)
    assert copy.truncated and copy.value == b"v" * 10
    assert record_size(copy.key, copy.value, copy.headers) <= 1_000_000


def test_the_error_message_header_is_bounded() -> None:
    copy = dead_letter_copy(H, _message(), "InvalidEvent", "é" * 10_000, PRODUCER_MAX_MESSAGE_BYTES)
    assert copy.header(H.error_message) == "é" * 2_000


def test_librdkafka_accepts_the_cut_copy_at_its_default_limit() -> None:
    """The size bound is librdkafka's own: the original is refused on produce, the copy is not."""
    producer = Producer({"test.mock.num.brokers": 1, "message.timeout.ms": 5_000})
    message = _message(b"\xff" * POISON_BYTES)
    with pytest.raises(KafkaException) as refused:
        producer.produce("dlq", key=message.key(), value=message.value())
    assert refused.value.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    copy = dead_letter_copy(H, message, "InvalidWireFormat", "x" * 2_000, PRODUCER_MAX_MESSAGE_BYTES)
    producer.produce("dlq", key=copy.key, value=copy.value, headers=copy.headers)  # raises if too large
    producer.purge()
    producer.flush(1)


# -- the spool decision -----------------------------------------------------------------------------------


@dataclass
class _Topic:
    error: KafkaError | None = None
    partitions: dict[int, Any] = field(default_factory=dict)


@dataclass
class _Metadata:
    topics: dict[str, _Topic]


class FakeProducer:
    """A producer whose topic metadata, produce() failures and delivery reports the test sets."""

    def __init__(self, topic_exists: bool = True) -> None:
        self.topic_exists = topic_exists
        self.lookup_error: KafkaException | None = None
        self.produce_error: KafkaError | None = None
        self.delivery_error: KafkaError | None = None
        self.unconfirmed = 0
        self.sent: list[dict[str, Any]] = []
        self._pending: list[Any] = []

    def list_topics(self, topic: str, timeout: float) -> _Metadata:
        if self.lookup_error is not None:
            raise self.lookup_error
        error = None if self.topic_exists else KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
        return _Metadata({topic: _Topic(error)})

    def produce(self, topic: str, key: bytes, value: bytes, headers: list, on_delivery: Any) -> None:
        if self.produce_error is not None:
            raise KafkaException(self.produce_error)
        if not self.topic_exists:
            self._pending.append((on_delivery, KafkaError(KafkaError._UNKNOWN_TOPIC)))
            return
        if self.delivery_error is None:
            self.sent.append({"topic": topic, "key": key, "value": value, "headers": dict(headers)})
        self._pending.append((on_delivery, self.delivery_error))

    def flush(self, timeout: float) -> int:
        for report, error in self._pending:
            report(error, None)
        self._pending = []
        return self.unconfirmed


@pytest.fixture
def spool(tmp_path: Path) -> DeadLetterSpool:
    engine = make_engine(f"sqlite:///{tmp_path}/service.db")
    metadata = MetaData()
    table = dead_letter_spool_table(metadata)
    metadata.create_all(engine)
    return DeadLetterSpool(engine, table)


def _publisher(
    producer: FakeProducer, spool: DeadLetterSpool | None, create: Any = None, metrics: Metrics | None = None
) -> DeadLetterPublisher:
    return DeadLetterPublisher(
        producer,  # type: ignore[arg-type]
        "order-events.dlq",
        H,
        create_topic=create,
        spool=spool,
        metrics=metrics,
    )


def test_a_confirmed_copy_is_published_and_counted(spool: DeadLetterSpool) -> None:
    producer = FakeProducer()
    metrics = Metrics()
    publisher = _publisher(producer, spool, metrics=metrics)
    publisher.publish_all([(_message(), "InvalidWireFormat", "bad magic byte")])
    assert [s["key"] for s in producer.sent] == [b"order-1"]
    assert producer.sent[0]["headers"][H.error_type] == b"InvalidWireFormat"
    assert publisher.counts().to_json() == {"published": 1, "spooled": 0}
    publisher.publish_all([(_message(offset=8), "InvalidWireFormat", "bad magic byte")])
    counted = metrics.sample("dead_lettered_records_total", error_type="InvalidWireFormat", outcome="published")
    assert counted == 2


def test_a_missing_dead_letter_topic_is_created_then_published_to(spool: DeadLetterSpool) -> None:
    producer = FakeProducer(topic_exists=False)
    created = []

    def create() -> None:
        created.append(True)
        producer.topic_exists = True

    publisher = _publisher(producer, spool, create)
    publisher.publish_all([(_message(), "InvalidEvent", "no items")])
    assert created == [True]
    assert len(producer.sent) == 1
    assert publisher.counts().to_json() == {"published": 1, "spooled": 0}


def test_a_topic_that_cannot_be_created_sends_the_copies_to_the_spool(spool: DeadLetterSpool) -> None:
    def refuse() -> None:
        raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))

    metrics = Metrics()
    publisher = _publisher(FakeProducer(topic_exists=False), spool, refuse, metrics)
    publisher.publish_all([(_message(offset=1), "InvalidEvent", "x"), (_message(offset=2), "UnknownSchemaId", "y")])
    assert publisher.counts().to_json() == {"published": 0, "spooled": 2}
    for error_type in ("InvalidEvent", "UnknownSchemaId"):
        assert metrics.sample("dead_lettered_records_total", error_type=error_type, outcome="spooled") == 1
        assert metrics.sample("dead_lettered_records_total", error_type=error_type, outcome="published") is None
    with spool._engine.connect() as conn:  # the rows keep the copy and its headers
        rows = conn.execute(spool._table.select().order_by(spool._table.c.id)).mappings().all()
    assert [r["source_offset"] for r in rows] == [1, 2]
    assert dict(json.loads(rows[1]["headers"]))[H.error_type] == "UnknownSchemaId"
    assert "TOPIC_AUTHORIZATION_FAILED" in rows[0]["reason"]
    assert rows[0]["record_value"] == b"\x01garbage"


def test_a_missing_topic_with_no_way_to_create_it_is_spooled(spool: DeadLetterSpool) -> None:
    publisher = _publisher(FakeProducer(topic_exists=False), spool, None)
    publisher.publish_all([(_message(), "InvalidEvent", "x")])
    assert publisher.counts().spooled == 1


@pytest.mark.parametrize(
    "code", [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD]
)
def test_a_copy_the_topic_refuses_for_good_is_spooled(spool: DeadLetterSpool, code: int) -> None:
    producer = FakeProducer()
    producer.delivery_error = KafkaError(code)
    publisher = _publisher(producer, spool)
    publisher.publish_all([(_message(), "InvalidEvent", "x")])
    assert publisher.counts().to_json() == {"published": 0, "spooled": 1}


def test_a_copy_refused_on_produce_for_size_is_spooled(spool: DeadLetterSpool) -> None:
    producer = FakeProducer()
    producer.produce_error = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    publisher = _publisher(producer, spool)
    publisher.publish_all([(_message(), "InvalidEvent", "x")])
    assert publisher.counts().spooled == 1


def test_a_record_read_again_is_spooled_once(spool: DeadLetterSpool) -> None:
    producer = FakeProducer()
    producer.delivery_error = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    publisher = _publisher(producer, spool)
    for _ in range(2):
        publisher.publish_all([(_message(), "InvalidEvent", "x")])
    assert publisher.counts().spooled == 1


@pytest.mark.parametrize("code", [KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT, KafkaError.NOT_ENOUGH_REPLICAS])
def test_an_outage_is_waited_out_not_spooled(spool: DeadLetterSpool, code: int) -> None:
    producer = FakeProducer()
    producer.delivery_error = KafkaError(code)
    publisher = _publisher(producer, spool)
    with pytest.raises(DeadLetterError):
        publisher.publish_all([(_message(), "InvalidEvent", "x")])
    assert publisher.counts().to_json() == {"published": 0, "spooled": 0}


def test_acks_outstanding_at_the_deadline_are_an_outage(spool: DeadLetterSpool) -> None:
    producer = FakeProducer()
    producer.unconfirmed = 1
    with pytest.raises(DeadLetterError):
        _publisher(producer, spool).publish_all([(_message(), "InvalidEvent", "x")], timeout=0.1)
    assert spool.count() == 0


def test_a_broker_that_does_not_answer_the_topic_lookup_is_an_outage(spool: DeadLetterSpool) -> None:
    producer = FakeProducer()
    producer.lookup_error = KafkaException(KafkaError(KafkaError._TRANSPORT))
    with pytest.raises(DeadLetterError):
        _publisher(producer, spool).publish_all([(_message(), "InvalidEvent", "x")])
    assert spool.count() == 0


def test_a_topic_creation_that_times_out_is_an_outage(spool: DeadLetterSpool) -> None:
    def unreachable() -> None:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))

    with pytest.raises(DeadLetterError):
        _publisher(FakeProducer(topic_exists=False), spool, unreachable).publish_all([(_message(), "X", "x")])
    assert spool.count() == 0


def test_a_failing_spool_leaves_the_record_to_be_read_again(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/service.db")
    broken = DeadLetterSpool(engine, dead_letter_spool_table(MetaData()))  # its table was never created
    producer = FakeProducer()
    producer.delivery_error = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    publisher = _publisher(producer, broken)
    with pytest.raises(DeadLetterError):
        publisher.publish_all([(_message(), "InvalidEvent", "x")])
    assert publisher.counts().to_json() == {"published": 0, "spooled": None}
