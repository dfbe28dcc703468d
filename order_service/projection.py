"""Projects fulfillment events onto orders: the order's status follows its fulfillment."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine

from contract_models.events import FulfillmentStatusChanged
from order_service import store
from order_service.domain import apply_fulfillment
from persistence.engine import write_transaction

log = logging.getLogger(__name__)


class FulfillmentProjection:
    """Applies a batch of FulfillmentStatusChanged events in one transaction (idempotent, monotonic).

    on_changed: called after the commit with the ids of the orders whose status or details changed.
    """

    def __init__(self, engine: Engine, on_changed: Callable[[list[str]], None] | None = None) -> None:
        self._engine = engine
        self._on_changed = on_changed

    def __call__(self, events: list[FulfillmentStatusChanged]) -> None:
        """Apply events in order in one transaction; blocking. Raises what the database raises (nothing is
        applied then), so the batch is handled again."""
        if not events:
            return
        changed: list[str] = []
        now_us = time.time_ns() // 1000
        with write_transaction(self._engine) as conn:
            current = store.get_orders(conn, sorted({str(e.orderId) for e in events}))
            views = {order_id: store.fulfillment_view(row) for order_id, row in current.items()}
            for event in events:
                order_id = str(event.orderId)
                view = views.get(order_id)
                if view is None:
                    # Not an order of this service (or its row is gone): nothing to project onto.
                    log.warning("fulfillment event %s for unknown order %s", event.eventId, order_id)
                    continue
                estimated_ms = int(event.estimatedDelivery.timestamp() * 1000) if event.estimatedDelivery else None
                updated = apply_fulfillment(
                    view,
                    event.status,
                    event.sequence,
                    event.trackingNumber,
                    event.carrier,
                    estimated_ms,
                    event.reason,
                )
                if updated is not None:
                    views[order_id] = updated
                    changed.append(order_id)
            store.save_fulfillment_views(conn, {order_id: views[order_id] for order_id in changed}, now_us)
        if changed and self._on_changed:
            self._on_changed(list(dict.fromkeys(changed)))
