"""A writer asks the registry for its schema's id once, then writes every record with it: the bytes are the
Confluent wire format the serializer writes (magic byte, the id, the Avro body), and a record that does not fit
the schema is still refused as unencodable."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from contract_models.events import ORDER_CANCELLED_SCHEMA, OrderCancelled
from harness.records import avro_body, wire_value
from messaging.avro_codec import EventCodec, UnencodableEvent

SUBJECT = "order-events-orderprocessing.events.OrderCancelled"


class CountingRegistry:
    """Holds the schema under SUBJECT with schema_id (42 until a test moves it); counts lookups."""

    def __init__(self) -> None:
        self.lookups = 0
        self.schema_id = 42

    def lookup_schema(self, subject_name: str, schema: Any, normalize_schemas: bool = False, **_: Any) -> Any:
        self.lookups += 1
        return SimpleNamespace(schema_id=self.schema_id, guid=None, subject=subject_name, version=1, schema=schema)

    def clear_caches(self) -> None:
        pass

    def get_schema(self, schema_id: int) -> Any:
        assert schema_id == self.schema_id
        return SimpleNamespace(schema_str=ORDER_CANCELLED_SCHEMA)


def _event(n: int, reason: str | None = None) -> OrderCancelled:
    return OrderCancelled.model_validate(
        {
            "eventId": f"6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e{n:02x}",
            "eventType": "OrderCancelled",
            "timestamp": datetime(2025, 1, 2, n, tzinfo=UTC),
            "orderId": "6f1f0c2e-5a3b-4c1d-9e8f-0a1b2c3d4e60",
            "reason": reason,
        }
    )


@pytest.fixture
def registry() -> CountingRegistry:
    return CountingRegistry()


@pytest.fixture
def codec(registry: CountingRegistry) -> EventCodec[OrderCancelled]:
    client: Any = registry
    return EventCodec(
        client, "order-events", ORDER_CANCELLED_SCHEMA, OrderCancelled, subject=SUBJECT, auto_register=False
    )


def test_every_record_is_the_wire_format_under_the_id_looked_up_once(
    codec: EventCodec[OrderCancelled], registry: CountingRegistry
) -> None:
    events = [_event(n, reason="customer asked" if n % 2 else None) for n in range(5)]

    values = [codec.encode(event) for event in events]

    assert values == [wire_value(42, avro_body(ORDER_CANCELLED_SCHEMA, e.model_dump())) for e in events]
    assert all(codec.decode(value) == event for value, event in zip(values, events, strict=True))
    assert registry.lookups == 1


def test_a_record_outside_the_schema_is_unencodable_after_the_first_too(codec: EventCodec[OrderCancelled]) -> None:
    codec.encode(_event(1))
    broken = {**_event(2).model_dump(), "reason": 12}

    with pytest.raises(UnencodableEvent):
        codec.encode(broken)


class MovedRegistration:
    """The registry's answer to a writer's registration check: the subject now holds the schema under id 43."""

    subject = SUBJECT

    def registered_id(self) -> int:
        return 43


def test_an_id_the_registry_moved_is_reported_once_and_the_next_record_carries_the_new_one(
    codec: EventCodec[OrderCancelled], registry: CountingRegistry
) -> None:
    codec.encode(_event(1))
    codec._registration = MovedRegistration()  # type: ignore[assignment]

    first = codec.check_registration(1.0)
    again = codec.check_registration(2.0)  # nothing written in between
    registry.schema_id = 43
    value = codec.encode(_event(2))

    assert (first.status, first.schema_id, first.reregistered) == ("ok", 43, True)
    assert (again.status, again.schema_id, again.reregistered) == ("ok", 43, False)
    assert value[1:5] == (43).to_bytes(4, "big") and registry.lookups == 2
