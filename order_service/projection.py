"""Projects fulfillment events onto orders: the order's status follows its fulfillment.

This is the handler of the fulfillment-events consumer, which calls it on its own thread with each batch;
the event edge is here (the decoded events already carry UTC datetimes), the rules are the domain's.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine

from contract_models.events import FulfillmentStatusChanged
from order_service import store
from order_service.domain import apply_fulfillment
from persistence.engine import write_transaction

log = logging.getLogger(__name__)


class FulfillmentProjection:
    """Applies a batch of FulfillmentStatusChanged events in one transaction (idempotent, monotonic).

    on_changed is called with the ids of the orders that changed, after the commit; clock gives the
    current UTC time, which becomes their updated_at.
    """

    def __init__(
        self,
        engine: Engine,
        on_changed: Callable[[list[uuid.UUID]], None] | None = None,
        clock: Callable[[], datetime] = functools.partial(datetime.now, UTC),
    ) -> None:
        self._engine = engine
        self._on_changed = on_changed
        self._clock = clock

    def __call__(self, events: list[FulfillmentStatusChanged]) -> None:
        """Apply events in order in one transaction; blocking. Raises what the database raises (nothing is
        applied then), so the batch is handled again."""
        if not events:
            return
        changed: list[uuid.UUID] = []
        now = self._clock()
        with write_transaction(self._engine) as conn:
            views = store.fulfillment_views(conn, {event.orderId for event in events})
            for event in events:
                view = views.get(event.orderId)
                if view is None:
                    # Not an order of this service (or its row is gone): nothing to project onto.
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
                )
                if updated is not None:
                    views[event.orderId] = updated
                    changed.append(event.orderId)
            store.save_fulfillment_views(conn, {order_id: views[order_id] for order_id in changed}, now)
        if changed and self._on_changed:
            self._on_changed(list(dict.fromkeys(changed)))
