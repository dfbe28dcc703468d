"""Every lookup and registration of a schema asks the registry to normalize it, so a schema registered in
another layout (a pretty-printed file, the services' compact text) is found, not "not registered" for ever:
the writer's serializer with AUTO_REGISTER_SCHEMAS=false, the writer's registration check, and the tools of
the deploy pipeline (`make schema-register`, `make schema-check`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from contract_models.events import ORDER_CANCELLED_SCHEMA, OrderCancelled
from messaging.avro_codec import EventCodec, wire_schema_id
from messaging.registry import SchemaNotRegistered, SubjectRegistration
from tools.registry_api import Registry

SUBJECT = "order-events-orderprocessing.events.OrderCancelled"
EVENT = {
    "eventId": "6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e5f",
    "eventType": "OrderCancelled",
    "timestamp": datetime(2025, 1, 2, tzinfo=UTC),
    "orderId": "6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e60",
    "reason": None,
}


class FakeRegistryClient:
    """A registry client that finds a schema under a subject only when asked to normalize (as Apicurio does for
    a schema registered in another layout), recording each lookup's normalize_schemas."""

    def __init__(self) -> None:
        self.lookups: list[bool] = []

    def lookup_schema(self, subject_name: str, schema: Any, normalize_schemas: bool = False, **_: Any) -> Any:
        self.lookups.append(normalize_schemas)
        if not normalize_schemas:
            raise _not_found()
        return SimpleNamespace(schema_id=42, guid=None, subject=subject_name, version=1, schema=schema)

    def register_schema_full_response(self, *_: Any, **__: Any) -> Any:
        raise AssertionError("a writer with AUTO_REGISTER_SCHEMAS=false registers nothing")


def _not_found() -> Exception:
    return SchemaRegistryError(404, 40403, "The given schema does not match any schema under the subject")


def test_a_writer_that_may_not_register_looks_its_schema_up_normalized() -> None:
    client = FakeRegistryClient()
    codec = EventCodec(
        client,  # type: ignore[arg-type]
        "order-events",
        ORDER_CANCELLED_SCHEMA,
        OrderCancelled,
        subject=SUBJECT,
        auto_register=False,
    )

    value = codec.encode(OrderCancelled.model_validate(EVENT))

    assert client.lookups == [True]
    assert wire_schema_id(value) == 42


class Recorder:
    """An httpx transport answering like a registry that holds one schema under SUBJECT in another layout:
    found by a normalized lookup only."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        normalized = request.url.params.get("normalize") == "true"
        if request.url.path.endswith(f"/subjects/{SUBJECT}") and request.method == "POST":
            return httpx.Response(200, json={"id": 7, "version": 1}) if normalized else httpx.Response(404, json={})
        if request.url.path.endswith("/versions") and request.method == "POST":
            return httpx.Response(200, json={"id": 7})
        if request.url.path.endswith("/subjects/order-events-value/versions"):
            return httpx.Response(200, json=[1])
        if request.url.path.endswith("/subjects/order-events-value/versions/1"):
            return httpx.Response(200, json={"schema": ORDER_CANCELLED_SCHEMA})
        return httpx.Response(404, json={})

    def posts(self) -> Iterator[httpx.Request]:
        return (r for r in self.requests if r.method == "POST")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_the_writers_registration_check_looks_up_and_registers_normalized(recorder: Recorder) -> None:
    pretty = json.dumps(json.loads(ORDER_CANCELLED_SCHEMA), indent=2)
    registration = SubjectRegistration({"url": "http://registry.test/apis/ccompat/v7"}, SUBJECT, pretty)
    registration._client = httpx.Client(transport=httpx.MockTransport(recorder))

    assert registration.registered_id() == 7
    assert registration.register() == 7
    assert registration.carry_over("order-events-value") == [7]

    posts = list(recorder.posts())
    assert len(posts) == 3 and all(r.url.params.get("normalize") == "true" for r in posts)


def test_the_pipelines_tools_look_up_and_register_normalized(recorder: Recorder) -> None:
    registry = Registry("http://registry.test/apis/ccompat/v7")
    registry._http = httpx.Client(transport=httpx.MockTransport(recorder))

    assert registry.lookup(SUBJECT, ORDER_CANCELLED_SCHEMA) == 7
    assert registry.register(SUBJECT, ORDER_CANCELLED_SCHEMA).status_code == 200

    posts = list(recorder.posts())
    assert len(posts) == 2 and all(r.url.params.get("normalize") == "true" for r in posts)


def test_a_schema_the_registry_does_not_hold_in_any_layout_is_still_not_registered() -> None:
    class Empty(FakeRegistryClient):
        def lookup_schema(self, subject_name: str, schema: Any, normalize_schemas: bool = False, **_: Any) -> Any:
            self.lookups.append(normalize_schemas)
            raise _not_found()

    codec = EventCodec(
        Empty(),  # type: ignore[arg-type]
        "order-events",
        ORDER_CANCELLED_SCHEMA,
        OrderCancelled,
        subject=SUBJECT,
        auto_register=False,
    )
    with pytest.raises(SchemaNotRegistered):
        codec.encode(OrderCancelled.model_validate(EVENT))
