"""The generated AsyncAPI document is valid AsyncAPI 3.0 and says what the code does.

The schema is the official one, schemas/3.0.0.json of the npm package @asyncapi/specs 6.11.1, vendored here
unchanged (license: asyncapi-specs.LICENSE).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import avro.schema
import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from codegen import asyncapi
from events.topology import DEAD_LETTER_HEADERS, FULFILLMENT_EVENTS, ORDER_EVENTS, TOPICS, TopicDeclaration
from messaging.dead_letter_copy import dead_letter_headers

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "schemas/asyncapi/asyncapi.yaml"
ASYNCAPI_SCHEMA = json.loads((Path(__file__).parent / "asyncapi-3.0.0.schema.json").read_text())


@functools.cache
def validator() -> Draft7Validator:
    # Every definition carries its own $id: register them all, so no reference is fetched from the network.
    resources = [
        (uri, Resource.from_contents(schema, default_specification=DRAFT7))
        for uri, schema in ASYNCAPI_SCHEMA["definitions"].items()
    ]
    registry: Registry[Any] = Registry().with_resources(resources)
    return Draft7Validator(ASYNCAPI_SCHEMA, registry=registry)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT.read_text())


def test_document_is_valid_asyncapi_3(document: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(document)]
    assert errors == []


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (lambda d: d["operations"]["sendOrderCreated"].pop("action"), "'action' is a required property"),
        (lambda d: d["channels"]["orderEvents"].update(address=42), "42 is not of type"),
        (lambda d: d.update(asyncapi="2.6.0"), "'3.0.0' was expected"),
    ],
)
def test_validation_catches_a_broken_document(document: dict[str, Any], edit: Any, complaint: str) -> None:
    broken = copy.deepcopy(document)
    edit(broken)
    messages = [e.message for e in validator().iter_errors(broken)] + [
        c.message for e in validator().iter_errors(broken) for c in e.context or []
    ]
    assert any(complaint in message for message in messages), messages


def test_channels_are_the_event_and_dead_letter_topics(document: dict[str, Any]) -> None:
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {"order-events", "fulfillment-events", "order-events.dlq", "fulfillment-events.dlq"}


@pytest.mark.parametrize("declared", TOPICS, ids=lambda topic: topic.name)
def test_event_messages_carry_the_committed_avro_schema_and_the_order_key(
    document: dict[str, Any], declared: TopicDeclaration
) -> None:
    (channel,) = [c for c in document["channels"].values() if c["address"] == declared.name]
    refs = {ref["$ref"].rsplit("/", 1)[-1] for ref in channel["messages"].values()}
    assert refs == {event.name for event in declared.events}
    for event in declared.events:
        committed = json.loads((ROOT / "schemas/avro" / event.schema_file).read_text())
        message = document["components"]["messages"][event.name]
        assert message["payload"]["schemaFormat"] == "application/vnd.apache.avro+json;version=1.9.0"
        assert message["payload"]["schema"] == committed
        avro.schema.parse(json.dumps(message["payload"]["schema"]))
        kafka = message["bindings"]["kafka"]
        assert kafka["key"]["type"] == "string" and kafka["key"]["format"] == "uuid"
        assert kafka["schemaIdLocation"] == "payload" and kafka["schemaIdPayloadEncoding"] == "confluent"
        assert kafka["schemaLookupStrategy"] == declared.subject_strategy
        assert f"subject `{declared.subject(event=event)}`" in message["description"]


def test_order_events_subjects_are_named_per_record_type() -> None:
    # TopicRecordNameStrategy: <topic>-<record full name>; the released subject stays the history's source.
    assert ORDER_EVENTS.subject() == "order-events-orderprocessing.events.OrderCreated"
    assert ORDER_EVENTS.history_subject() == "order-events-value"
    assert FULFILLMENT_EVENTS.subject() == "fulfillment-events-value"
    assert FULFILLMENT_EVENTS.history_subject() is None


class AnyRecord:
    """Stands in for a consumed record, to see which headers the dead-letter publisher writes."""

    def topic(self) -> str:
        return "topic"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)

    def value(self) -> bytes:
        return b"value"

    def headers(self) -> list[tuple[str, bytes]]:
        return [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), ("tracestate", b"v=1")]


def test_dead_letter_messages_document_the_headers_the_code_writes(document: dict[str, Any]) -> None:
    copied = [name for name, _ in dead_letter_headers(DEAD_LETTER_HEADERS, AnyRecord(), "type", "message")]  # type: ignore[arg-type]
    trace = ["traceparent", "tracestate"]  # the original's, kept when it has them
    assert copied[:2] == trace
    written = copied[2:]
    for name in ("DeadLetteredOrderCreated", "DeadLetteredFulfillmentStatusChanged"):
        headers = document["components"]["messages"][name]["headers"]
        assert list(headers["properties"]) == trace + written
        assert headers["required"] == written
    for name in ("OrderCreated", "FulfillmentStatusChanged"):  # what the relay sends for a row written in a trace
        headers = document["components"]["messages"][name]["headers"]
        assert list(headers["properties"]) == trace and "required" not in headers
    # Kafka Connect's dead-letter context headers first, under their Connect names; this project's extras after.
    assert written == [
        "__connect.errors.topic",
        "__connect.errors.partition",
        "__connect.errors.offset",
        "__connect.errors.exception.class.name",
        "__connect.errors.exception.message",
        "__orderprocessing.dlq.original.timestamp",
        "__orderprocessing.dlq.dead-lettered.at",
        "__orderprocessing.dlq.original.size",
        "__orderprocessing.dlq.truncated",
    ]


def test_generation_is_deterministic_and_committed() -> None:
    schemas = {
        e.name: json.loads((ROOT / "schemas/avro" / e.schema_file).read_text()) for t in TOPICS for e in t.events
    }
    assert asyncapi.render(schemas) == asyncapi.render(schemas) == DOCUMENT.read_text()
