"""Projects fulfillment events onto orders: the order's status follows its fulfillment.

This is the handler of the fulfillment-events consumer, which calls it on its own worker thread with each batch
(messaging.consumer.dispatch.BatchDispatcher); the event edge is here (the decoded events already carry UTC
datetimes), the rules are the domain's, and the unit of work reads and writes the orders.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from opentelemetry.trace import Span

from contract_models.events import FulfillmentStatusChanged
from messaging.consumer.tracing import batch_spans
from observability.logs import order_context
from observability.trace_context import within
from order_service.domain import FulfillmentView, apply_fulfillment
from order_service.unit_of_work import OrderUnitOfWork

log = logging.getLogger(__name__)


class FulfillmentProjection:
    """Applies a batch of FulfillmentStatusChanged events in one transaction of uow (idempotent, monotonic).

    on_changed is called with the ids of the orders that changed, after the commit; clock gives the
    current UTC time, which becomes their updated_at.
    """

    def __init__(
        self,
        uow: OrderUnitOfWork,
        on_changed: Callable[[list[uuid.UUID]], None] | None = None,
        clock: Callable[[], datetime] = functools.partial(datetime.now, UTC),
    ) -> None:
        self._uow = uow
        self._on_changed = on_changed
        self._clock = clock

    def __call__(self, events: list[FulfillmentStatusChanged]) -> None:
        """Apply events in order in one transaction; blocking. Raises what the unit of work raises (nothing is
        applied then), so the batch is handled again. After the commit, logs one INFO line per change of an order,
        in the trace of the event that made it (its record's processing span, messaging.consumer.tracing.batch_spans):
        "order status applied" (with its orderId and the new status) when its status moved on, "cancellation
        refused" (with the Fulfillment Service's reason) when the batch recorded a refusal of its cancellation."""
        if not events:
            return
        spans = batch_spans()
        applied: dict[uuid.UUID, FulfillmentView] = {}
        applied_by: dict[uuid.UUID, int] = {}
        before: dict[uuid.UUID, FulfillmentView] = {}

        def change(current: Mapping[uuid.UUID, FulfillmentView]) -> dict[uuid.UUID, FulfillmentView]:
            applied.clear()  # a transaction tried again starts over
            applied_by.clear()
            applied.update(_apply(events, current, applied_by, spans))
            before.clear()
            before.update({order_id: current[order_id] for order_id in applied})
            return applied

        changed = self._uow.change_fulfillments({event.orderId for event in events}, change, self._clock())
        for order_id in changed:  # committed: one line per change this batch made to an order
            with order_context(order_id), within(_span(spans, applied_by[order_id])):
                view, was = applied[order_id], before[order_id]
                if (view.status, view.sequence) != (was.status, was.sequence):
                    log.info("order status applied", extra={"status": view.status.value, "sequence": view.sequence})
                if view.cancellation_refused is not None and was.cancellation_refused is None:
                    log.info(
                        "cancellation refused", extra={"status": view.status.value, "reason": view.cancellation_refused}
                    )
        if changed and self._on_changed:
            self._on_changed(changed)


def _span(spans: Sequence[Span], index: int) -> Span | None:
    return spans[index] if index < len(spans) else None


def _apply(
    events: list[FulfillmentStatusChanged],
    current: Mapping[uuid.UUID, FulfillmentView],
    applied_by: dict[uuid.UUID, int],
    spans: Sequence[Span],
) -> dict[uuid.UUID, FulfillmentView]:
    """The views events change, from current (the orders' views, by id), in the order they first changed;
    applied_by gets the index of the event that set each changed view (spans: the events' processing spans)."""
    views = dict(current)
    changed: list[uuid.UUID] = []
    for index, event in enumerate(events):
        view = views.get(event.orderId)
        if view is None:
            # Not an order of this service (or its row is gone): nothing to project onto.
            with order_context(event.orderId), within(_span(spans, index)):
                log.warning("fulfillment event %s for unknown order %s", event.eventId, event.orderId)
            continue
        updated = apply_fulfillment(
            view,
            event.status,
            event.sequence,
            event.trackingNumber,
            event.carrier,
            event.estimatedDelivery,
            event.reason,
            event.cancellationRefused,
        )
        if updated is not None:
            views[event.orderId] = updated
            applied_by[event.orderId] = index
            if event.orderId not in changed:
                changed.append(event.orderId)
    return {order_id: views[order_id] for order_id in changed}
