"""A topic carrying several event types: each record decodes as the type its writer schema's record names, and
a record of a type the topic does not carry fails as it would on a topic of one type."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from contract_models.events import (
    FULFILLMENT_STATUS_CHANGED_SCHEMA,
    ORDER_CREATED_SCHEMA,
    FulfillmentStatusChanged,
    OrderCreated,
)
from harness.records import avro_body, wire_value
from messaging.avro_codec import EventCodec, PoisonRecord
from messaging.topic_codec import TopicCodec
from tests.sample_events import order_created, status_changed

OTHER = json.dumps({"type": "record", "name": "Stranger", "namespace": "elsewhere", "fields": []})


class NotFound(Exception):
    http_status_code = 404


class Registry:
    """Schemas by id, counting lookups."""

    def __init__(self, schemas: dict[int, str]) -> None:
        self.schemas = schemas
        self.lookups = 0

    def get_schema(self, schema_id: int) -> SimpleNamespace:
        self.lookups += 1
        if schema_id not in self.schemas:
            raise NotFound(f"schema {schema_id} not found")
        return SimpleNamespace(schema_str=self.schemas[schema_id])


@pytest.fixture
def registry() -> Registry:
    return Registry({1: ORDER_CREATED_SCHEMA, 2: FULFILLMENT_STATUS_CHANGED_SCHEMA, 3: OTHER})


@pytest.fixture
def codec(registry: Registry) -> TopicCodec:
    client: Any = registry
    return TopicCodec(
        client,
        {
            "orderprocessing.events.OrderCreated": EventCodec(client, "t", ORDER_CREATED_SCHEMA, OrderCreated),
            "orderprocessing.events.FulfillmentStatusChanged": EventCodec(
                client, "t", FULFILLMENT_STATUS_CHANGED_SCHEMA, FulfillmentStatusChanged
            ),
        },
    )


def _record(schema_id: int, schema: str, event: Any) -> bytes:
    return wire_value(schema_id, avro_body(schema, event.model_dump()))


def test_each_record_decodes_as_the_type_its_writer_schema_names(codec: TopicCodec, registry: Registry) -> None:
    created, changed = order_created(), status_changed()

    first = codec.decode(_record(1, ORDER_CREATED_SCHEMA, created))
    second = codec.decode(_record(2, FULFILLMENT_STATUS_CHANGED_SCHEMA, changed))
    again = codec.decode(_record(1, ORDER_CREATED_SCHEMA, order_created()))

    assert isinstance(first, OrderCreated) and first.orderId == created.orderId
    assert isinstance(second, FulfillmentStatusChanged) and second.eventId == changed.eventId
    assert isinstance(again, OrderCreated)
    assert registry.lookups <= 4  # each id's type is looked up once (and its writer schema once per codec)


def test_a_type_the_topic_does_not_carry_is_an_unsafe_writer_schema(codec: TopicCodec) -> None:
    with pytest.raises(PoisonRecord) as raised:
        codec.decode(wire_value(3, b""))
    assert raised.value.kind == "UnsafeWriterSchema"
    assert "elsewhere.Stranger is not one this consumer reads" in raised.value.message


@pytest.mark.parametrize(
    ("value", "kind"),
    [(wire_value(99, b"\x00"), "UnknownSchemaId"), (b"not avro", "InvalidWireFormat"), (None, "EmptyValue")],
)
def test_records_whose_type_cannot_be_told_fail_as_on_a_topic_of_one_type(
    codec: TopicCodec, value: bytes | None, kind: str
) -> None:
    with pytest.raises(PoisonRecord) as raised:
        codec.decode(value)
    assert raised.value.kind == kind
