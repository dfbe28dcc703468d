"""The order rules applied to OrderCreated events, the fulfillment rules to FulfillmentStatusChanged, and
the codec turning a broken rule into an InvalidEvent poison record."""

from __future__ import annotations

import io
import json
import uuid
from decimal import Decimal
from types import SimpleNamespace

import fastavro
import pytest

from contract_models.events import (
    FULFILLMENT_STATUS_CHANGED_SCHEMA,
    ORDER_CREATED_SCHEMA,
    FulfillmentStatus,
)
from contracts.fulfillment_rules import check_status_changed
from contracts.order_rules import check_order_created, validate_order
from contracts.violation import RuleViolation
from events.codecs import codec_for
from events.topology import FULFILLMENT_EVENTS, ORDER_EVENTS
from messaging.avro_codec import PoisonRecord
from tests.sample_events import order_created, order_line, status_changed

NIL = uuid.UUID(int=0)


def test_an_order_the_service_would_write_passes():
    check_order_created(order_created())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"items": [order_line(quantity=-5)], "totalAmount": Decimal("-5.00")}, "items[0].quantity"),
        ({"items": [order_line(quantity=0)], "totalAmount": Decimal("0.00")}, "items[0].quantity"),
        ({"items": [], "totalAmount": Decimal("0.00")}, "items"),
        ({"totalAmount": Decimal("999.00")}, "totalAmount"),
        ({"items": [order_line(price=Decimal("-1.00"))], "totalAmount": Decimal("0.00")}, "items[0].price"),
        ({"items": [order_line(price=Decimal("1000000.01"))], "totalAmount": Decimal("1000000.01")}, "items[0].price"),
        ({"eventType": "OrderCancelled"}, "eventType"),
        ({"customerId": ""}, "customerId"),
        ({"items": [order_line(productId="")], "totalAmount": Decimal("1.00")}, "items[0].productId"),
        ({"orderId": NIL}, "orderId"),
        ({"eventId": NIL}, "eventId"),
        ({"customerName": " Ada "}, "body"),
        ({"customerName": "A\x00da"}, "customerName"),
        ({"items": [order_line()] * 1001, "totalAmount": Decimal("1001.00")}, "items"),
    ],
)
def test_events_that_break_the_order_rules_name_the_rule(overrides, field):
    with pytest.raises(RuleViolation) as raised:
        check_order_created(order_created(**overrides))
    assert field in [error["field"] for error in raised.value.errors]


def test_the_api_and_the_consumer_share_one_definition():
    event = order_created(items=[order_line(quantity=10_001)], totalAmount=Decimal("10001.00"))
    with pytest.raises(RuleViolation) as from_event:
        check_order_created(event)
    body = {"customerId": "c-1", "customerName": "Ada", "items": [{**order_line().model_dump(), "quantity": 10_001}]}
    with pytest.raises(RuleViolation) as from_api:
        validate_order(body)
    assert from_event.value.errors == from_api.value.errors


def test_what_the_fulfillment_service_publishes_passes():
    check_status_changed(status_changed(FulfillmentStatus.Pending, sequence=0))
    check_status_changed(status_changed(FulfillmentStatus.Shipped, trackingNumber="SHIP-1", carrier="MockCarrier"))
    check_status_changed(status_changed(FulfillmentStatus.Failed, reason="gave up after 5 attempt(s): 503"))


@pytest.mark.parametrize(
    ("status", "overrides", "field"),
    [
        (FulfillmentStatus.Shipped, {"carrier": "MockCarrier"}, "trackingNumber"),
        (FulfillmentStatus.Delivered, {"trackingNumber": "SHIP-1", "carrier": " "}, "carrier"),
        (FulfillmentStatus.Failed, {}, "reason"),
        (FulfillmentStatus.Pending, {"sequence": -1}, "sequence"),
        (FulfillmentStatus.Pending, {"attempts": -3}, "attempts"),
        (FulfillmentStatus.Pending, {"orderId": NIL}, "orderId"),
        (FulfillmentStatus.Shipped, {"trackingNumber": "S" * 201, "carrier": "c"}, "trackingNumber"),
        (FulfillmentStatus.Shipped, {"trackingNumber": "S\x001", "carrier": "c"}, "trackingNumber"),
        (FulfillmentStatus.Failed, {"reason": "r" * 2001}, "reason"),
    ],
)
def test_status_changes_that_could_never_be_stored_are_refused(status, overrides, field):
    with pytest.raises(RuleViolation) as raised:
        check_status_changed(status_changed(status, **overrides))
    assert field in [error["field"] for error in raised.value.errors]


class _Registry:
    """Stands in for the registry: every schema id is the given writer schema."""

    def __init__(self, schema: str) -> None:
        self.schema = schema

    def get_schema(self, _schema_id: int) -> SimpleNamespace:
        return SimpleNamespace(schema_str=self.schema)


def _wire(schema: str, event: object) -> bytes:
    """event in the Confluent wire format under schema id 1, written with schema."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(json.loads(schema)), event.model_dump())  # type: ignore[attr-defined]
    return b"\x00\x00\x00\x00\x01" + body.getvalue()


def test_the_codecs_turn_a_broken_rule_into_an_invalid_event_poison_record():
    codec = codec_for(_Registry(ORDER_CREATED_SCHEMA), ORDER_EVENTS, "order-events")  # type: ignore[arg-type]
    broken = order_created(items=[order_line(quantity=0)], totalAmount=Decimal("0.00"))
    with pytest.raises(PoisonRecord) as raised:
        codec.decode(_wire(ORDER_CREATED_SCHEMA, broken))
    assert raised.value.kind == "InvalidEvent" and "items[0].quantity" in raised.value.message
    status = codec_for(_Registry(FULFILLMENT_STATUS_CHANGED_SCHEMA), FULFILLMENT_EVENTS, "fulfillment-events")  # type: ignore[arg-type]
    with pytest.raises(PoisonRecord, match="reason"):
        status.decode(_wire(FULFILLMENT_STATUS_CHANGED_SCHEMA, status_changed(FulfillmentStatus.Failed)))


@pytest.mark.parametrize(
    ("status", "sequence"),
    [
        (FulfillmentStatus.Pending, 2**40),
        (FulfillmentStatus.Pending, 2**31 - 1),
        (FulfillmentStatus.Pending, 1),
        (FulfillmentStatus.Shipped, 0),
        (FulfillmentStatus.Delivered, 1),
    ],
)
def test_a_sequence_out_of_its_status_place_is_refused(status, sequence):
    extra = {"trackingNumber": "SHIP-1", "carrier": "c"} if status is not FulfillmentStatus.Pending else {}
    with pytest.raises(RuleViolation) as raised:
        check_status_changed(status_changed(status, sequence=sequence, **extra))
    assert "sequence" in [error["field"] for error in raised.value.errors]
