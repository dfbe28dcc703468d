"""The codecs of the project's two events: the generated model and its embedded schema as reader."""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient

from contract_models.events import (
    FULFILLMENT_STATUS_CHANGED_SCHEMA,
    ORDER_CREATED_SCHEMA,
    FulfillmentStatusChanged,
    OrderCreated,
)
from messaging.avro_codec import EventCodec


def order_created_codec(registry: SchemaRegistryClient, topic: str) -> EventCodec[OrderCreated]:
    return EventCodec(registry, topic, ORDER_CREATED_SCHEMA, OrderCreated)


def status_changed_codec(registry: SchemaRegistryClient, topic: str) -> EventCodec[FulfillmentStatusChanged]:
    return EventCodec(registry, topic, FULFILLMENT_STATUS_CHANGED_SCHEMA, FulfillmentStatusChanged)
