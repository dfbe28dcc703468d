"""AsyncAPI 3.0 document of the event contract, from the Avro schemas and the topic configuration.

Channels are the topics `messaging.topics.project_topics` creates (with the default settings, so the
document does not depend on the environment it is generated in); each event channel carries its Avro
schema verbatim, and each dead-letter channel the headers `messaging.dead_letter` adds.
"""

from __future__ import annotations

from typing import Any

import yaml

from messaging.dead_letter import dead_letter_headers
from messaging.registry import COMPATIBILITY, subject_for
from messaging.settings import KafkaSettings
from messaging.topics import project_topics

AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
KAFKA_BINDING = "0.5.0"
# Who writes and who reads each event (consumer groups are the services' default settings).
PRODUCERS = {"OrderCreated": "Order Service", "FulfillmentStatusChanged": "Fulfillment Service"}
CONSUMERS = {
    "OrderCreated": ("Fulfillment Service", "fulfillment-service"),
    "FulfillmentStatusChanged": ("Order Service", "order-service"),
}

_DEAD_LETTER_HEADER_DOCS = {
    "error.type": "Why the record could not be processed, e.g. IncompatibleWriterSchema, UnknownSchemaId, "
    "InvalidWireFormat, InvalidEvent.",
    "error.message": "The error in detail (at most 2,000 characters).",
    "original.topic": "Topic the record was read from.",
    "original.partition": "Its partition, in decimal.",
    "original.offset": "Its offset, in decimal.",
    "original.timestamp": "Its timestamp, epoch milliseconds in decimal.",
    "dead-lettered.at": "When it was dead-lettered, epoch milliseconds in decimal.",
}


class _AnyRecord:
    """Stands in for a consumed record, to ask dead_letter_headers which headers it writes."""

    def topic(self) -> str:
        return "topic"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


DEAD_LETTER_HEADERS = [name for name, _ in dead_letter_headers(_AnyRecord(), "type", "message")]  # type: ignore[arg-type]


def _key() -> dict[str, Any]:
    return {"type": "string", "format": "uuid", "description": "The orderId of the order the record is about."}


def _event_message(name: str, schema: dict[str, Any], topic: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": name,
        "summary": schema.get("doc", name),
        "contentType": "application/octet-stream",
        "description": (
            f"Avro binary in the Confluent wire format: magic byte 0, the 4-byte big-endian id of the writer "
            f"schema in the Schema Registry (subject `{subject_for(topic)}`, compatibility {COMPATIBILITY}), "
            "then the Avro body. Readers resolve every registered writer version against their reader schema."
        ),
        "payload": {"schemaFormat": AVRO_FORMAT, "schema": schema},
        "bindings": {
            "kafka": {
                "key": _key(),
                "schemaIdLocation": "payload",
                "schemaIdPayloadEncoding": "confluent",
                "schemaLookupStrategy": "TopicNameStrategy",
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _dead_letter_message(name: str, source_topic: str) -> dict[str, Any]:
    headers = {name: {"type": "string", "description": _DEAD_LETTER_HEADER_DOCS[name]} for name in DEAD_LETTER_HEADERS}
    return {
        "name": name,
        "title": name,
        "summary": f"A record of {source_topic} that can never be processed, parked with the reason.",
        "contentType": "application/octet-stream",
        "headers": {"type": "object", "required": list(DEAD_LETTER_HEADERS), "properties": headers},
        "payload": {
            "type": "string",
            "format": "binary",
            "description": f"The original record's value, byte for byte (usually Avro of {source_topic}).",
        },
        "bindings": {"kafka": {"key": _key(), "bindingVersion": KAFKA_BINDING}},
    }


def _channel(topic: str, partitions: int, retention_ms: int, description: str, message: str) -> dict[str, Any]:
    return {
        "address": topic,
        "description": description,
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        "bindings": {
            "kafka": {
                "topic": topic,
                "partitions": partitions,
                "replicas": 1,
                "topicConfiguration": {"cleanup.policy": ["delete"], "retention.ms": retention_ms},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _channel_id(topic: str) -> str:
    head, *rest = topic.replace(".", "-").split("-")
    return head + "".join(part.capitalize() for part in rest)


def document(events: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The AsyncAPI document for events: {topic: Avro schema of the event on it}."""
    settings = KafkaSettings.model_construct()  # defaults only: the environment must not leak in
    topics = {spec.name: spec for spec in project_topics(settings)}
    dead_letter_of = {
        settings.order_events_topic: settings.order_events_dlq_topic,
        settings.fulfillment_events_topic: settings.fulfillment_events_dlq_topic,
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic, schema in events.items():
        name = schema["name"]
        producer = PRODUCERS[name]
        consumer, group = CONSUMERS[name]
        spec = topics[topic]
        channel = _channel_id(topic)
        messages[name] = _event_message(name, schema, topic)
        channels[channel] = _channel(
            topic, spec.partitions, spec.retention_ms, f"{name} events, published by the {producer}.", name
        )
        operations[f"send{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"The {producer} publishes {name} (through its transactional outbox).",
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
        }
        operations[f"receive{name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"The {consumer} consumes {name}.",
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
            "bindings": {"kafka": {"groupId": {"type": "string", "enum": [group]}, "bindingVersion": KAFKA_BINDING}},
        }
        dlq = dead_letter_of[topic]
        dlq_spec = topics[dlq]
        dlq_channel = _channel_id(dlq)
        dlq_message = f"DeadLettered{name}"
        messages[dlq_message] = _dead_letter_message(dlq_message, topic)
        channels[dlq_channel] = _channel(
            dlq,
            dlq_spec.partitions,
            dlq_spec.retention_ms,
            f"Records of {topic} the {consumer} can never process (undecodable, unknown schema id, a writer "
            "schema its reader cannot resolve), copied unchanged with the reason in the headers.",
            dlq_message,
        )
        operations[f"send{dlq_message}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{dlq_channel}"},
            "summary": f"The {consumer} parks a {topic} record it can never process.",
            "messages": [{"$ref": f"#/channels/{dlq_channel}/messages/{dlq_message}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Order Processing Events",
            "version": "1.0.0",
            "description": (
                "Events between the Order Service and the Fulfillment Service. Generated by `make codegen` from "
                "schemas/avro/*.avsc and the topic configuration (messaging/topics.py); do not edit."
            ),
        },
        "defaultContentType": "application/octet-stream",
        "servers": {
            "local": {
                "host": settings.kafka_bootstrap_servers,
                "protocol": "kafka",
                "description": "The broker of `make run`; the Schema Registry is Apicurio's Confluent-compatible API.",
                "bindings": {
                    "kafka": {
                        "schemaRegistryUrl": settings.schema_registry_url,
                        "schemaRegistryVendor": "confluent",
                        "bindingVersion": KAFKA_BINDING,
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render(events: dict[str, dict[str, Any]]) -> str:
    """The document as YAML, stable across runs."""
    header = "# generated by `make codegen` from schemas/avro/*.avsc and messaging/topics.py; do not edit\n"
    return header + yaml.safe_dump(document(events), sort_keys=False, allow_unicode=True, width=120)
