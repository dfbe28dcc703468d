"""The local stack runs a real Kafka broker and Schema Registry, and keeps state across restarts."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from harness.records import produce_records
from infra.broker import Broker
from infra.jvm import PortInUseError, StackError
from infra.ports import HOST, free_port
from infra.stack import LocalStack
from messaging.settings import kafka_settings
from messaging.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration

PROBE_SCHEMA = """
{
  "type": "record",
  "name": "StackProbe",
  "namespace": "test.infra",
  "fields": [{"name": "id", "type": "string"}]
}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack.ephemeral(tmp_path_factory.mktemp("stack")) as local:
        yield local


def _create_topic(bootstrap: str, name: str) -> None:
    ensure_topics(kafka_settings(bootstrap), [TopicSpec(name, partitions=1, retention_ms=3_600_000)], timeout=15)


def _consume_one(bootstrap: str, topic: str, group: str, timeout: float = 20.0) -> Message:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            consumer.commit(message=message, asynchronous=False)
            return message
        raise AssertionError(f"no record on {topic} within {timeout}s")
    finally:
        consumer.close()


COORDINATOR_NOT_READY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def _committed_offset(bootstrap: str, topic: str, group: str, timeout: float = 30.0) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                (partition,) = consumer.committed([TopicPartition(topic, 0)], timeout=5)
                return int(partition.offset)
            except KafkaException as exc:
                # Right after a restart the group coordinator is still loading or moving: ask again. librdkafka
                # does not flag NOT_COORDINATOR retriable on this call, so the codes are named here.
                error = exc.args[0]
                transient = error.retriable() or error.code() in COORDINATOR_NOT_READY
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        consumer.close()


def test_produce_and_consume(stack: LocalStack) -> None:
    topic = f"probe-{uuid.uuid4().hex[:8]}"
    _create_topic(stack.bootstrap_servers, topic)
    produce_records(stack.bootstrap_servers, topic, [(b"k1", b"hello")], timeout=15)

    message = _consume_one(stack.bootstrap_servers, topic, group="probe")

    assert (message.key(), message.value()) == (b"k1", b"hello")


def test_schema_survives_registry_restart(stack: LocalStack) -> None:
    subject = f"probe-{uuid.uuid4().hex[:8]}-value"
    schema_id = SchemaRegistryClient({"url": stack.registry_url}).register_schema(subject, Schema(PROBE_SCHEMA, "AVRO"))

    stack.registry.stop()
    stack.registry.start()

    # A fresh client, so nothing is answered from the previous client's cache.
    client = SchemaRegistryClient({"url": stack.registry_url})
    assert subject in client.get_subjects()
    assert client.get_latest_version(subject).schema_id == schema_id


def test_topic_offsets_and_records_survive_broker_restart(stack: LocalStack) -> None:
    topic = f"durable-{uuid.uuid4().hex[:8]}"
    _create_topic(stack.bootstrap_servers, topic)
    produce_records(stack.bootstrap_servers, topic, [(b"k1", b"kept")], timeout=15)
    _consume_one(stack.bootstrap_servers, topic, group="durable")

    stack.broker.stop()
    stack.broker.start()

    topics = AdminClient({"bootstrap.servers": stack.bootstrap_servers}).list_topics(timeout=10).topics
    assert topic in topics
    assert _committed_offset(stack.bootstrap_servers, topic, "durable") == 1
    message = _consume_one(stack.bootstrap_servers, topic, group="fresh")
    assert message.value() == b"kept"
    # The registry stayed up meanwhile; its Kafka clients reconnect for new writes.
    subject = f"after-broker-restart-{uuid.uuid4().hex[:8]}-value"
    SchemaRegistryClient({"url": stack.registry_url}).register_schema(subject, Schema(PROBE_SCHEMA, "AVRO"))


def test_paused_broker_stops_answering_until_resumed(stack: LocalStack) -> None:
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    stack.broker.pause()
    try:
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=1.5)
    finally:
        stack.broker.resume()
    assert admin.list_topics(timeout=10).brokers


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind((HOST, 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        broker = Broker(tmp_path / "kafka", port=taken, controller_port=free_port())
        with pytest.raises(PortInUseError, match=f"port {taken}"):
            broker.start()


def test_exit_during_startup_reports_log_tail(tmp_path: Path) -> None:
    # A heap far too small for Kafka makes the JVM exit right away.
    broker = Broker(tmp_path / "kafka", port=free_port(), controller_port=free_port(), heap_mb=1)
    with pytest.raises(StackError, match=r"(?s)exited with status.*heap"):
        broker.start()
    assert not broker.running
