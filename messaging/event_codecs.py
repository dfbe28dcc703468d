"""The codecs of the project's two events: the generated model, its embedded schema as reader, its rules."""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient

from contract_models.events import (
    FULFILLMENT_STATUS_CHANGED_SCHEMA,
    ORDER_CREATED_SCHEMA,
    FulfillmentStatusChanged,
    OrderCreated,
)
from contracts.fulfillment_rules import check_status_changed
from contracts.order_rules import check_order_created
from messaging.avro_codec import EventCodec


def order_created_codec(registry: SchemaRegistryClient, topic: str) -> EventCodec[OrderCreated]:
    """OrderCreated on topic; a decoded event that breaks the order rules is an InvalidEvent poison record."""
    return EventCodec(registry, topic, ORDER_CREATED_SCHEMA, OrderCreated, rules=check_order_created)


def status_changed_codec(registry: SchemaRegistryClient, topic: str) -> EventCodec[FulfillmentStatusChanged]:
    """FulfillmentStatusChanged on topic; one that breaks the fulfillment rules is an InvalidEvent."""
    return EventCodec(
        registry, topic, FULFILLMENT_STATUS_CHANGED_SCHEMA, FulfillmentStatusChanged, rules=check_status_changed
    )
