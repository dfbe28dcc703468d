"""Poison records written straight into a topic, as a broken or hostile producer would: bytes the consumers can
never decode, up to the broker's own size limit (beyond the 1,000,000 bytes a client at its defaults sends)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, Message, Producer

from harness.waiting import wait_until
from messaging.settings import KafkaSettings, kafka_client_config, kafka_settings

# A record the broker accepts (its message.max.bytes is 1 MiB + 12 by default) but a producer at librdkafka's
# default message.max.bytes (1,000,000) refuses: a dead-letter copy of it must be cut to fit.
OVERSIZED_BYTES = 1_010_000
# What the writing producer allows itself: enough for an OVERSIZED_BYTES value with its key and framing.
WRITER_MAX_MESSAGE_BYTES = 1_048_576


def garbage(size: int, seed: int = 0) -> bytes:
    """size bytes that are not the Confluent wire format (magic byte 0xff: neither 0 nor the 1 of the GUID
    format, so no reader asks the registry about them): InvalidWireFormat to a reader."""
    pattern = bytes((seed + i * 31) % 256 for i in range(256))
    return (b"\xff" + pattern * (size // 256 + 1))[:size]


def produce_raw(
    kafka: str | KafkaSettings, topic: str, records: Sequence[tuple[bytes, bytes]], timeout: float = 30.0
) -> list[int]:
    """Write (key, value) records to topic uncompressed, once it exists; returns their offsets in order. kafka:
    the cluster (messaging.settings.kafka_settings: an address takes its security from the environment).

    AssertionError when the topic does not appear or a record is not confirmed within timeout seconds.
    """
    producer = Producer(
        kafka_client_config(
            kafka_settings(kafka),
            **{"message.max.bytes": WRITER_MAX_MESSAGE_BYTES, "compression.type": "none", "linger.ms": 5},
        )
    )
    wait_until(lambda: topic in producer.list_topics(timeout=5).topics, timeout, message=f"topic {topic}")
    offsets: dict[int, int] = {}
    errors: list[str] = []

    def report(index: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                offsets[index] = msg.offset()

        return on_delivery

    for index, (key, value) in enumerate(records):
        producer.produce(topic, key=key, value=value, on_delivery=report(index))
        producer.poll(0)
    left = producer.flush(timeout)
    assert left == 0 and not errors, f"{left} records unconfirmed, errors: {errors}"
    return [offsets[i] for i in range(len(records))]
