"""AsyncAPI 3.0 document of the event contract, from the Avro schemas and the event topology.

Channels are the topics of `events.topology` with their default names and partitions (so the document does not
depend on the environment it is generated in); each event channel carries its Avro schema verbatim and the W3C
trace context headers, and each dead-letter channel the headers the topology names beside those.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from events.topology import (
    DEAD_LETTER_HEADER_DOCS,
    DEAD_LETTER_HEADERS,
    RETENTION_MS,
    TOPICS,
    EventType,
    TopicDeclaration,
)
from messaging.settings import KafkaSettings
from observability.trace_context import TRACEPARENT, TRACESTATE

AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
KAFKA_BINDING = "0.5.0"


def _key(topic: TopicDeclaration) -> dict[str, Any]:
    return {"type": "string", "format": "uuid", "description": topic.key_doc}


def _event_message(schema: dict[str, Any], topic: TopicDeclaration, event: EventType) -> dict[str, Any]:
    name = event.name
    return {
        "name": name,
        "title": name,
        "summary": schema.get("doc", name),
        "contentType": "application/octet-stream",
        "description": (
            f"Avro binary in the Confluent wire format: magic byte 0, the 4-byte big-endian id of the writer "
            f"schema in the Schema Registry (subject `{topic.subject(event=event)}`, compatibility "
            f"{topic.compatibility}), then the Avro body. Readers resolve every registered writer version against "
            "their reader schema"
            + ("; the record's type is the full name of the writer schema's record." if len(topic.events) > 1 else ".")
        ),
        "headers": {"type": "object", "properties": _trace_headers()},
        "payload": {"schemaFormat": AVRO_FORMAT, "schema": schema},
        "bindings": {
            "kafka": {
                "key": _key(topic),
                "schemaIdLocation": "payload",
                "schemaIdPayloadEncoding": "confluent",
                "schemaLookupStrategy": topic.subject_strategy,
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


# The W3C Trace Context headers (https://www.w3.org/TR/trace-context/) every event record may carry.
_TRACE_HEADERS = {
    TRACEPARENT: {
        "type": "string",
        "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        "description": "W3C Trace Context traceparent: the trace the record belongs to (an order's, from its request "
        "on) and the span that published it, which the consumer's processing continues. Absent on records written "
        "outside any trace. A dead-letter copy keeps the original's.",
    },
    TRACESTATE: {"type": "string", "description": "W3C Trace Context tracestate, when the trace has one."},
}


def _trace_headers() -> dict[str, Any]:
    """The trace headers' schemas, a fresh copy for each use (shared objects would be written as YAML aliases)."""
    return copy.deepcopy(_TRACE_HEADERS)


def _dead_letter_message(name: str, topic: TopicDeclaration) -> dict[str, Any]:
    source_topic = topic.name
    names = DEAD_LETTER_HEADERS.names()
    headers = {header: {"type": "string", "description": DEAD_LETTER_HEADER_DOCS[header]} for header in names}
    return {
        "name": name,
        "title": name,
        "summary": f"A record of {source_topic} that can never be processed, parked with the reason.",
        "contentType": "application/octet-stream",
        "headers": {"type": "object", "required": names, "properties": {**_trace_headers(), **headers}},
        "payload": {
            "type": "string",
            "format": "binary",
            "description": f"The original record's value, byte for byte (usually Avro of {source_topic}); cut to "
            f"fit the producer's message.max.bytes when too large, with `{DEAD_LETTER_HEADERS.truncated}` `true` "
            f"and the original size in `{DEAD_LETTER_HEADERS.original_size}`.",
        },
        "bindings": {"kafka": {"key": _key(topic), "bindingVersion": KAFKA_BINDING}},
    }


def _channel(topic: str, partitions: int, retention_ms: int, description: str, messages: list[str]) -> dict[str, Any]:
    return {
        "address": topic,
        "description": description,
        "messages": {message: {"$ref": f"#/components/messages/{message}"} for message in messages},
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


def document(schemas: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The AsyncAPI document of every topic in the topology; schemas: {event name: its Avro schema}."""
    settings = KafkaSettings.model_construct()  # defaults only: the environment must not leak in
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in TOPICS:
        producer, consumer, group = topic.producer.name, topic.consumer.name, topic.consumer.group
        channel = _channel_id(topic.name)
        names = [event.name for event in topic.events]
        channels[channel] = _channel(
            topic.name,
            topic.partitions,
            RETENTION_MS,
            f"{' and '.join(names)} events, published by the {producer}"
            + (", keyed alike so each order's events stay in order." if len(names) > 1 else "."),
            names,
        )
        for event in topic.events:
            name = event.name
            messages[name] = _event_message(schemas[name], topic, event)
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
                "bindings": {
                    "kafka": {"groupId": {"type": "string", "enum": [group]}, "bindingVersion": KAFKA_BINDING}
                },
            }
        name = topic.event.name
        dlq = topic.dead_letter
        dlq_channel = _channel_id(dlq)
        dlq_message = f"DeadLettered{name}"
        messages[dlq_message] = _dead_letter_message(dlq_message, topic)
        channels[dlq_channel] = _channel(
            dlq,
            topic.dead_letter_partitions,
            RETENTION_MS,
            f"Records of {topic.name} the {consumer} can never process (undecodable, unknown schema id, a writer "
            "schema its reader cannot resolve), copied unchanged with the reason in the headers.",
            [dlq_message],
        )
        operations[f"send{dlq_message}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{dlq_channel}"},
            "summary": f"The {consumer} parks a {topic.name} record it can never process.",
            "messages": [{"$ref": f"#/channels/{dlq_channel}/messages/{dlq_message}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Order Processing Events",
            "version": "1.0.0",
            "description": (
                "Events between the Order Service and the Fulfillment Service. Generated by `make codegen` from "
                "schemas/avro/*.avsc and the event topology (events/topology.py); do not edit."
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


def render(schemas: Mapping[str, dict[str, Any]]) -> str:
    """The document as YAML, stable across runs; schemas: {event name: its Avro schema}."""
    header = "# generated by `make codegen` from schemas/avro/*.avsc and events/topology.py; do not edit\n"
    return header + yaml.safe_dump(document(schemas), sort_keys=False, allow_unicode=True, width=120)
