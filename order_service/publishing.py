"""The Order Service's event edge: the OrderCreated event announcing an accepted order, the OrderCancelled event
asking for its cancellation, and the proof that an order can be published before it is accepted (the Avro codec
converts the events' datetimes and Decimals)."""

from __future__ import annotations

import uuid

from contract_models.events import ORDER_CREATED_SCHEMA, OrderCancelled, OrderCreated
from contract_models.events import OrderItem as EventItem
from contract_models.events import ShippingAddress as EventAddress
from contracts.order_rules import address_document
from messaging.avro_codec import WIRE_HEADER_BYTES, AvroBodyWriter, UnencodableEvent
from order_service.domain import Order
from order_service.errors import EventNotEncodable, EventTooLarge


def order_created(order: Order) -> OrderCreated:
    """The OrderCreated event announcing order, stamped with its acceptance time (a new event id each call); its
    shippingAddress is null for an order placed without one."""
    address = order.shipping_address
    return OrderCreated(
        eventId=uuid.uuid4(),
        timestamp=order.created_at,
        orderId=order.order_id,
        customerId=order.customer_id,
        customerName=order.customer_name,
        items=[
            EventItem(
                productId=line.product_id, productName=line.product_name, quantity=line.quantity, price=line.price
            )
            for line in order.lines
        ],
        totalAmount=order.total,
        shippingAddress=None if address is None else EventAddress(**address_document(address)),
    )


def order_cancelled(order: Order) -> OrderCancelled:
    """The OrderCancelled event asking to cancel order, stamped with the request's time (a new event id each
    call). Raises ValueError for an order no cancellation was requested for."""
    if order.cancellation is None:
        raise ValueError(f"no cancellation was requested for order {order.order_id}")
    return OrderCancelled(
        eventId=uuid.uuid4(),
        timestamp=order.cancellation.requested_at,
        orderId=order.order_id,
        reason=order.cancellation.reason,
    )


class PublishableCheck:
    """Proves an event can be published: the outbox relay will encode the event (read back from its exact
    JSON payload: Decimal, UUID and datetime survive that unchanged) with the committed schema, so that must
    succeed, and the record must fit the max_event_bytes the producer sends."""

    def __init__(self, max_event_bytes: int) -> None:
        self._encode = AvroBodyWriter(ORDER_CREATED_SCHEMA)
        self.max_event_bytes = max_event_bytes

    def __call__(self, event: OrderCreated) -> None:
        """Return if event can be published. Raises EventNotEncodable (the committed schema refuses it) or
        EventTooLarge (the record, wire-format header included, exceeds max_event_bytes)."""
        try:
            body = self._encode(event.model_dump())
        except UnencodableEvent as exc:
            raise EventNotEncodable(str(exc)) from exc
        size = WIRE_HEADER_BYTES + len(body)
        if size > self.max_event_bytes:
            raise EventTooLarge(size, self.max_event_bytes)
