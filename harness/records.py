"""Raw Kafka records for the tests and the chaos runs: values made by hand in Confluent wire format, records
the consumers can never decode, and producing records to a topic once it exists.

The wire format is Confluent's (Schema Registry documentation, "Wire format"): magic byte 0, the schema id
as 4 bytes big-endian, then the Avro binary body. The services write and read it through confluent-kafka's
serializers (messaging/avro_codec.py); what is made here bypasses them, to write what no serializer would.
"""

from __future__ import annotations

import io
import json
import random
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from harness.waiting import wait_until
from messaging.settings import KafkaSettings, kafka_client_config, kafka_settings

# OrderCreated's full name with fields no reader of OrderCreated can resolve (orderId a long).
INCOMPATIBLE_ORDER_WRITER: dict[str, Any] = {
    "type": "record",
    "name": "OrderCreated",
    "namespace": "orderprocessing.events",
    "fields": [{"name": "orderId", "type": "long"}, {"name": "note", "type": "string"}],
}
# The kinds of poison poison_records() makes, each with the error type it is dead-lettered with.
POISON_KINDS = {
    "garbage": "InvalidWireFormat",
    "unknown-schema-id": "UnknownSchemaId",
    "incompatible-writer": "IncompatibleWriterSchema",
}


def wire_value(schema_id: int, body: bytes) -> bytes:
    """A record value in Confluent wire format: magic byte 0, schema_id (4 bytes big-endian), body."""
    return struct.pack(">bI", 0, schema_id) + body


def avro_body(schema: Mapping[str, Any] | str, record: Mapping[str, Any]) -> bytes:
    """The Avro binary body of record under schema (a parsed schema or its JSON text), without any header.

    Raises what fastavro raises for a record the schema cannot hold.
    """
    parsed = fastavro.parse_schema(json.loads(schema) if isinstance(schema, str) else dict(schema))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, dict(record))
    return body.getvalue()


def zigzag(n: int) -> bytes:
    """n as Avro writes an int or long (zig-zag, then a little-endian base-128 varint; Avro specification,
    "Binary encoding"), for bodies written byte by byte."""
    n = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([low])
        out += bytes([low | 0x80])


@dataclass(frozen=True)
class Poison:
    """A record the consumer can never decode, and the error type it must be dead-lettered with."""

    key: str
    kind: str  # a key of POISON_KINDS
    value: bytes

    @property
    def error_type(self) -> str:
        """The error type its dead-letter record names."""
        return POISON_KINDS[self.kind]


def poison_records(
    registry: SchemaRegistryClient, count: int, rng: random.Random, subject: str = "poison-incompatible-value"
) -> list[Poison]:
    """count poison records keyed poison-<i>, the kinds of POISON_KINDS in turn.

    garbage: random bytes whose first is not the magic byte; unknown-schema-id: wire format naming an id the
    registry never handed out; incompatible-writer: a valid record of INCOMPATIBLE_ORDER_WRITER, registered
    under subject (not the topic's, whose compatibility level would refuse it). Raises the registry client's
    error when the registration fails.
    """
    schema_id = registry.register_schema(subject, Schema(json.dumps(INCOMPATIBLE_ORDER_WRITER), "AVRO"))
    kinds = list(POISON_KINDS)
    records = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        if kind == "garbage":
            value = bytes([rng.randrange(1, 256)]) + rng.randbytes(rng.randrange(0, 64))
        elif kind == "unknown-schema-id":
            value = wire_value(rng.randrange(1_000_000_000, 2_000_000_000), rng.randbytes(20))
        else:
            value = wire_value(schema_id, avro_body(INCOMPATIBLE_ORDER_WRITER, {"orderId": i, "note": "not an order"}))
        records.append(Poison(f"poison-{i}", kind, value))
    return records


def produce_records(
    kafka: str | KafkaSettings,
    topic: str,
    records: Iterable[tuple[str | bytes, bytes]],
    *,
    timestamp_ms: int | None = None,
    timeout: float = 30.0,
) -> list[Message]:
    """Produce (key, value) records to topic (acks=all) once it exists; the delivered records, in order.

    kafka: the cluster (messaging.settings.kafka_settings: an address takes its security from the environment).
    timestamp_ms sets every record's timestamp (default: the producer's clock). Raises AssertionError when the
    topic does not exist within timeout seconds or a record is not confirmed within timeout seconds.
    """
    producer = Producer(kafka_client_config(kafka_settings(kafka), acks="all"))
    wait_until(lambda: topic in producer.list_topics(timeout=5).topics, timeout, message=f"topic {topic}")
    delivered: list[tuple[KafkaError | None, Message]] = []
    extra = {} if timestamp_ms is None else {"timestamp": timestamp_ms}
    for key, value in records:
        producer.produce(
            topic,
            key=key.encode() if isinstance(key, str) else key,
            value=value,
            on_delivery=lambda error, message: delivered.append((error, message)),
            **extra,
        )
    left = producer.flush(timeout)
    assert left == 0, f"{left} record(s) not confirmed by the broker within {timeout:g}s"
    errors = [error for error, _ in delivered if error is not None]
    assert not errors, errors
    return [message for _, message in delivered]
