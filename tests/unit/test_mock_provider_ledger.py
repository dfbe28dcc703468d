"""The mock shipping provider's idempotency, kept in its ledger: a repeated request for an order returns the
shipment already created and counts the request, never a second shipment."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from sqlalchemy import select

from fulfillment_service.shipping import MockShippingProvider, ProviderBehaviour, shipments
from persistence.engine import make_engine


def test_a_repeated_request_returns_the_first_shipment_and_is_counted(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/ledger.db")
    provider = MockShippingProvider(engine, ProviderBehaviour(0, 0, 0.0), random.Random(3))

    async def main() -> tuple[list, list, object, object]:
        provider.start()
        try:
            first = [await provider.create_shipment(f"order-{n}", None) for n in range(3)]
            # the same keys again, some of them in one group commit with a new key
            again = await asyncio.gather(*(provider.create_shipment(f"order-{n}", None) for n in (0, 1, 0, 3)))
            return first, list(again), await provider.find_shipment("order-1"), await provider.find_shipment("nope")
        finally:
            await provider.stop()

    first, again, found, missing = asyncio.run(main())

    assert len({s.tracking_number for s in first}) == 3
    assert again[:3] == [first[0], first[1], first[0]]
    assert again[3].tracking_number not in {s.tracking_number for s in first}
    assert (found, missing) == (first[1], None)
    with engine.connect() as conn:
        rows = dict(conn.execute(select(shipments.c.idempotency_key, shipments.c.requests)).all())
    assert rows == {"order-0": 3, "order-1": 2, "order-2": 1, "order-3": 1}
    engine.dispose()
