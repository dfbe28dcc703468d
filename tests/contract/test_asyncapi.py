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
from codegen.__main__ import EVENT_TOPICS
from messaging.registry import subject_for

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


@pytest.mark.parametrize(("file", "topic"), EVENT_TOPICS.items())
def test_event_messages_carry_the_committed_avro_schema_and_the_order_key(
    document: dict[str, Any], file: str, topic: str
) -> None:
    committed = json.loads((ROOT / "schemas/avro" / file).read_text())
    (channel,) = [c for c in document["channels"].values() if c["address"] == topic]
    (ref,) = channel["messages"].values()
    message = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
    assert message["payload"]["schemaFormat"] == "application/vnd.apache.avro+json;version=1.9.0"
    assert message["payload"]["schema"] == committed
    avro.schema.parse(json.dumps(message["payload"]["schema"]))
    kafka = message["bindings"]["kafka"]
    assert kafka["key"]["type"] == "string" and kafka["key"]["format"] == "uuid"
    assert kafka["schemaIdLocation"] == "payload" and kafka["schemaIdPayloadEncoding"] == "confluent"
    assert subject_for(topic) in message["description"]


def test_dead_letter_messages_document_the_headers_the_code_writes(document: dict[str, Any]) -> None:
    for name in ("DeadLetteredOrderCreated", "DeadLetteredFulfillmentStatusChanged"):
        headers = document["components"]["messages"][name]["headers"]
        assert list(headers["properties"]) == asyncapi.DEAD_LETTER_HEADERS
        assert headers["required"] == asyncapi.DEAD_LETTER_HEADERS
    assert asyncapi.DEAD_LETTER_HEADERS[:6] == [
        "error.type",
        "error.message",
        "original.topic",
        "original.partition",
        "original.offset",
        "original.timestamp",
    ]


def test_generation_is_deterministic_and_committed() -> None:
    events = {topic: json.loads((ROOT / "schemas/avro" / file).read_text()) for file, topic in EVENT_TOPICS.items()}
    assert asyncapi.render(events) == asyncapi.render(events) == DOCUMENT.read_text()
