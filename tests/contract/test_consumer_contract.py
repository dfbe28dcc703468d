"""Consumers read every released event version, and park what they can never read instead of crashing.

Records are written the way producers write them: the writer schema registered in the real Schema Registry
under the topic's subject, the record in Confluent wire format (magic byte, schema id, Avro body). They are
read with the services' own reader, `EventCodec.decode` with the generated reader schema, and with the codec the
consuming service decodes its topic with (`events.codecs.codec_for`, per event type by the writer's record name).
Every file in schemas/avro/history/ is a case of its own, so each new release is covered as it is recorded.
"""

from __future__ import annotations

import copy
import io
import json
import struct
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import BaseModel

from contract_models.events import (
    FULFILLMENT_STATUS_CHANGED_SCHEMA,
    ORDER_CANCELLED_SCHEMA,
    ORDER_CREATED_SCHEMA,
    FulfillmentStatus,
    FulfillmentStatusChanged,
    OrderCancelled,
    OrderCreated,
    ShippingAddress,
)
from events.codecs import codec_for
from events.topology import DEAD_LETTER_HEADERS, ORDER_EVENTS, TOPICS
from harness.orders import TERMINAL, post_orders, wait_all_terminal
from harness.records import avro_body, produce_records, wire_value
from harness.system import System
from harness.topics import read_topic
from messaging.avro_codec import EventCodec
from tests.sample_events import order_created, status_changed

pytestmark = pytest.mark.integration

HISTORY = Path(__file__).resolve().parents[2] / "schemas/avro/history"
READERS: dict[str, tuple[str, type[BaseModel]]] = {
    "OrderCreated": (ORDER_CREATED_SCHEMA, OrderCreated),
    "FulfillmentStatusChanged": (FULFILLMENT_STATUS_CHANGED_SCHEMA, FulfillmentStatusChanged),
    "OrderCancelled": (ORDER_CANCELLED_SCHEMA, OrderCancelled),
}
RELEASED = sorted(HISTORY.glob("*.avsc"))
ADDRESS = {
    "recipientName": "Marie Curie",
    "addressLines": ["36 Quai de Bethune"],
    "city": "Paris",
    "postalCode": "75004",
    "country": "FR",
}
# The topic declaring each event type, and the event type (name -> (declaration, EventType)).
DECLARED = {event.name: (topic, event) for topic in TOPICS for event in topic.events}
# The dead-letter header names (their spelling is pinned by test_asyncapi against the Kafka Connect convention).
DEAD_LETTER_HEADER_NAMES = set(DEAD_LETTER_HEADERS.names())


def sample(schema: Any, names: dict[str, Any] | None = None) -> Any:
    """A value of every field of an Avro schema, none left to its default."""
    names = {} if names is None else names
    if isinstance(schema, list):
        return sample(next(branch for branch in schema if branch != "null"), names)
    if isinstance(schema, str):
        if schema in names:
            return sample(names[schema], names)
        return {"string": "text", "int": 7, "long": 7, "boolean": True, "double": 1.5, "float": 1.5}[schema]
    logical = schema.get("logicalType")
    if logical == "uuid":
        return uuid.UUID("12345678-1234-5678-1234-567812345678")
    if logical == "timestamp-millis":
        return datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    if logical == "decimal":
        return Decimal(1234).scaleb(-schema["scale"])
    kind = schema["type"]
    if kind == "record":
        names[schema["name"]] = names[f"{schema.get('namespace', '')}.{schema['name']}"] = schema
        return {field["name"]: sample(field["type"], names) for field in schema["fields"]}
    if kind == "enum":
        names[schema["name"]] = schema
        return schema["symbols"][-1]
    if kind == "array":
        return [sample(schema["items"], names), sample(schema["items"], names)]
    if kind == "map":
        return {"k": sample(schema["values"], names)}
    return sample(kind, names)


@pytest.fixture
def registry(stack: Any) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": stack.registry_url})


@pytest.mark.parametrize("released", RELEASED, ids=[p.stem for p in RELEASED])
def test_every_released_version_is_read_by_the_current_reader(registry: SchemaRegistryClient, released: Path) -> None:
    writer = json.loads(released.read_text())
    reader_text, model = READERS[writer["name"]]
    topic = f"consumer-{uuid.uuid4().hex[:8]}"
    record = sample(writer)

    data = AvroSerializer(registry, released.read_text(), conf={"auto.register.schemas": True})(
        record, SerializationContext(topic, MessageField.VALUE)
    )
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0
    assert registry.get_latest_version(f"{topic}-value").schema_id == schema_id

    event = EventCodec(registry, topic, reader_text, model).decode(data)

    reader = json.loads(reader_text)
    written = {field["name"] for field in writer["fields"]}
    expected = {
        field["name"]: record[field["name"]] if field["name"] in written else field["default"]
        for field in reader["fields"]
    }
    assert event.model_dump() == expected


@pytest.mark.parametrize("released", RELEASED, ids=[p.stem for p in RELEASED])
def test_a_current_record_is_read_by_every_released_reader(registry: SchemaRegistryClient, released: Path) -> None:
    # Forward: a consumer still on a released version reads what today's producer writes (the shipping address
    # of OrderCreated among it), skipping the fields it does not know, and reading an enum symbol it does not know
    # (FulfillmentStatus Cancelled) as its enum's default (Pending; docs/adr/0003).
    reader = json.loads(released.read_text())
    writer_text, _ = READERS[reader["name"]]
    writer = json.loads(writer_text)
    topic = f"consumer-{uuid.uuid4().hex[:8]}"
    record = sample(writer)
    data = AvroSerializer(registry, writer_text, conf={"auto.register.schemas": True})(
        record, SerializationContext(topic, MessageField.VALUE)
    )

    decoded = fastavro.schemaless_reader(
        io.BytesIO(data[5:]), fastavro.parse_schema(writer), fastavro.parse_schema(reader)
    )

    assert decoded == {field["name"]: as_read(record[field["name"]], field["type"]) for field in reader["fields"]}


def valid_record(writer: dict[str, Any]) -> dict[str, Any]:
    """A record of writer's fields, every optional one set, that passes the event's rules as the services check
    them (an OrderCreated's total is the sum of its lines, a status its own sequence): what a released producer
    of that version wrote."""
    name, stamp = writer["name"], datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)  # Avro keeps milliseconds
    if name == "OrderCreated":
        event: BaseModel = order_created(timestamp=stamp, shippingAddress=ShippingAddress(**ADDRESS))
    elif name == "OrderCancelled":
        event = OrderCancelled(eventId=uuid.uuid4(), timestamp=stamp, orderId=uuid.uuid4(), reason="changed my mind")
    else:
        status = next(f["type"]["symbols"][-1] for f in writer["fields"] if f["name"] == "status")
        event = status_changed(
            FulfillmentStatus(status),
            timestamp=stamp,
            trackingNumber="SHIP-1",
            carrier="DHL",
            estimatedDelivery=stamp,
            reason="the provider refused",
            attempts=1,
        )
    written = event.model_dump()
    return {field["name"]: written[field["name"]] for field in writer["fields"]}


def test_every_released_and_declared_event_type_has_a_reader_here() -> None:
    # A released or declared event type without a reader here would go untested.
    assert {json.loads(p.read_text())["name"] for p in RELEASED} <= set(READERS) == set(DECLARED)


@pytest.mark.parametrize("released", RELEASED, ids=[p.stem for p in RELEASED])
def test_every_released_version_is_read_by_the_consuming_services_topic_codec(
    registry: SchemaRegistryClient, released: Path
) -> None:
    # As a released producer wrote it: its schema registered under the event's subject on the topic, the record
    # in wire format with that id. The consumer's codec picks the type by the writer's record name.
    writer = json.loads(released.read_text())
    declaration, event_type = DECLARED[writer["name"]]
    topic = f"consumer-{uuid.uuid4().hex[:8]}-{declaration.name}"
    subject = declaration.subject(topic, event_type)
    schema_id = registry.register_schema(subject, Schema(released.read_text(), "AVRO"))
    record = valid_record(writer)
    data = wire_value(schema_id, avro_body(writer, record))

    event = codec_for(registry, declaration, topic).decode(data, str(record["orderId"]).encode())

    _, model = READERS[writer["name"]]
    assert isinstance(event, model)
    reader = json.loads(READERS[writer["name"]][0])
    written = {field["name"] for field in writer["fields"]}
    expected = {
        field["name"]: record[field["name"]] if field["name"] in written else field["default"]
        for field in reader["fields"]
    }
    assert event.model_dump() == expected


def as_read(value: Any, reader_type: Any) -> Any:
    """value of a field as a reader of reader_type resolves it: a symbol its enum lacks becomes the enum's default
    (Avro schema resolution), anything else stays."""
    if isinstance(reader_type, dict) and reader_type.get("type") == "enum" and value not in reader_type["symbols"]:
        return reader_type["default"]
    return value


def test_an_order_created_with_an_address_is_read_by_the_v1_reader_and_one_without_by_the_v2_reader(
    registry: SchemaRegistryClient,
) -> None:
    v1 = (HISTORY / "OrderCreated.v1.avsc").read_text()
    topic = f"consumer-{uuid.uuid4().hex[:8]}"
    address = {
        "recipientName": "Marie Curie",
        "addressLines": ["36 Quai de Bethune"],
        "city": "Paris",
        "postalCode": "75004",
        "country": "FR",
    }
    with_address = order_created(shippingAddress=ShippingAddress(**address)).model_dump()
    v2_data = AvroSerializer(registry, ORDER_CREATED_SCHEMA)(
        with_address, SerializationContext(topic, MessageField.VALUE)
    )
    without = {k: v for k, v in order_created().model_dump().items() if k != "shippingAddress"}
    v1_data = AvroSerializer(registry, v1)(without, SerializationContext(f"{topic}-v1", MessageField.VALUE))

    old_reader = fastavro.schemaless_reader(
        io.BytesIO(v2_data[5:]),
        fastavro.parse_schema(json.loads(ORDER_CREATED_SCHEMA)),
        fastavro.parse_schema(json.loads(v1)),
    )
    new_reader = EventCodec(registry, f"{topic}-v1", ORDER_CREATED_SCHEMA, OrderCreated).decode(v1_data)
    same_version = EventCodec(registry, topic, ORDER_CREATED_SCHEMA, OrderCreated).decode(v2_data)

    assert "shippingAddress" not in old_reader and old_reader["orderId"] == with_address["orderId"]
    assert (new_reader.orderId, new_reader.shippingAddress) == (without["orderId"], None)
    assert same_version.shippingAddress is not None and same_version.shippingAddress.model_dump() == address


def test_a_writer_without_the_defaulted_fields_reads_with_defaults(registry: SchemaRegistryClient) -> None:
    # An older producer that knew only the required fields: the reader fills in every default.
    reader = json.loads(FULFILLMENT_STATUS_CHANGED_SCHEMA)
    writer = copy.deepcopy(reader)
    writer["fields"] = [field for field in writer["fields"] if "default" not in field]
    topic = f"consumer-{uuid.uuid4().hex[:8]}"
    record = sample(writer)
    data = AvroSerializer(registry, json.dumps(writer))(record, SerializationContext(topic, MessageField.VALUE))

    event = EventCodec(registry, topic, FULFILLMENT_STATUS_CHANGED_SCHEMA, FulfillmentStatusChanged).decode(data)

    assert {f["name"] for f in writer["fields"]} == {"eventId", "orderId", "status", "timestamp"}
    assert (event.eventId, event.status, event.timestamp) == (record["eventId"], record["status"], record["timestamp"])
    assert (event.sequence, event.attempts, event.trackingNumber, event.carrier) == (0, 0, None, None)
    assert (event.estimatedDelivery, event.reason) == (None, None)


def unresolvable_writer() -> dict[str, Any]:
    """Same full name as OrderCreated, but customerId is an int: no reader of OrderCreated can resolve it."""
    writer = json.loads(ORDER_CREATED_SCHEMA)
    for field in writer["fields"]:
        if field["name"] == "customerId":
            field["type"] = "int"
    return writer


def test_an_unreadable_writer_schema_is_dead_lettered_and_consumption_goes_on(system: System) -> None:
    registry = SchemaRegistryClient({"url": system.registry_url})
    writer = unresolvable_writer()
    # The topic's subject is FULL_TRANSITIVE and would refuse this schema; another subject takes it, and
    # the record names it by id, as a misconfigured producer would.
    schema_id = registry.register_schema(f"stray-{uuid.uuid4().hex[:8]}-value", Schema(json.dumps(writer), "AVRO"))
    record = sample(writer)
    value = wire_value(schema_id, avro_body(writer, record))
    key = str(record["orderId"]).encode()
    timestamp_ms = int(time.time() * 1000) - 5_000

    (produced,) = produce_records(
        system.bootstrap_servers, system.order_topic, [(key, value)], timestamp_ms=timestamp_ms, timeout=60
    )

    dlq = system.env["fulfillment"][ORDER_EVENTS.dead_letter_env]
    assert dlq == system.order_topic + ".dlq"
    parked = read_topic(system.bootstrap_servers, dlq, stop=lambda rs: any(r.key() == key for r in rs), timeout=60)
    (dead,) = [r for r in parked if r.key() == key]
    headers = {name: raw.decode() for name, raw in dead.headers() or []}
    assert headers.keys() >= DEAD_LETTER_HEADER_NAMES
    assert headers["__connect.errors.exception.class.name"] == "IncompatibleWriterSchema"
    assert headers["__connect.errors.exception.message"]
    assert headers["__connect.errors.topic"] == system.order_topic
    assert headers["__connect.errors.partition"] == str(produced.partition())
    assert headers["__connect.errors.offset"] == str(produced.offset())
    assert headers["__orderprocessing.dlq.original.timestamp"] == str(timestamp_ms)
    assert headers["__orderprocessing.dlq.original.size"] == str(len(value))
    assert headers["__orderprocessing.dlq.truncated"] == "false"
    assert dead.value() == value  # parked byte for byte

    # The consumer is not stuck behind the poison record: a new order still goes all the way.
    (order_id,) = post_orders(system.orders.url, 1)
    final = wait_all_terminal(system.orders.url, [order_id], timeout=90)
    assert final[order_id]["status"] in TERMINAL
